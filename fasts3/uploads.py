"""Upload preparation: user items -> :class:`~fasts3.engine.upload_plan.PutOp`.

Validates what ``put``/``put_many``/``put_files`` were given (before anything is sent), picks
the content type and headers, and decides how the bytes travel: small ``str``/``bytes`` values
inline in the task, larger values and file objects staged in the temp root first (mode 0600,
free space checked, removed after the batch), local files read by the workers directly.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import shutil
import stat
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import content_types
from .engine.upload_plan import PutOp
from .errors import S3Error, S3InvalidObject, S3NotFound, S3URLError
from .headers import PutOptions, put_headers
from .objects import S3PutObject
from .session import upload_headers
from .urls import split_url

if TYPE_CHECKING:
    from .engine.engine import Engine

BAD_VALUE = "Cannot upload a {}: give str, bytes or a readable binary file object"
TEXT_FILE = "File objects given to put must be readable and opened in binary mode"


def is_put_object(o: Any) -> bool:
    """True for an :class:`S3PutObject` or any object with ``key`` and ``value``/``path``."""
    return isinstance(o, S3PutObject) or (hasattr(o, "key") and
                                          (hasattr(o, "value") or hasattr(o, "path")))


def put_item(o: Any, field: str, url_of: Callable[[str], str]) -> Any:
    """An :class:`S3PutObject`-like item from ``o``: itself, or a ``(key, value_or_path)``
    pair; anything else (a bare string, a 3-tuple, a ``None`` value) raises
    :class:`S3InvalidObject`. ``url_of(key)`` resolves a key for the error message."""
    if is_put_object(o):
        return o
    if not isinstance(o, (tuple, list)) or len(o) != 2:
        raise S3InvalidObject(f"Give (key, {field}) pairs or S3PutObject, not {o!r:.80}")
    if field == "value":
        # values are checked with the key, in order, by build_put_op (see check_value)
        return _Value(o[0], o[1])
    if o[1] is None:
        raise S3InvalidObject("A local path is needed, not None", url=url_of(o[0]))
    return S3PutObject(o[0], **{field: o[1]})


class _Value:
    """A ``(key, value)`` pair to upload, its value not checked yet."""

    __slots__ = ("key", "value")

    def __init__(self, key: Any, value: Any) -> None:
        self.key = key
        self.value = value


def check_value(value: Any, key: Any, url_of: Callable[[str], str]) -> None:
    """Raise :class:`S3InvalidObject` if ``value`` cannot be uploaded (not ``str``, ``bytes``
    or a readable binary file). Checked before the key, as Metaflow does, so a bad value is
    reported as such even when its key is bad too; the error names the URL if the key
    resolves, else the key."""
    if isinstance(value, (str, bytes, bytearray, memoryview)):
        return
    if hasattr(value, "read") and not isinstance(value, io.TextIOBase):
        return
    try:
        url = url_of(key)
    except S3URLError:
        url = str(key)
    raise S3InvalidObject(TEXT_FILE if hasattr(value, "read") else
                          BAD_VALUE.format(type(value).__name__), url=url)


def build_put_op(
    engine: Engine,
    item: Any,
    overwrite: bool,
    url_of: Callable[[str], str],
    defaults: PutOptions = PutOptions(),
) -> PutOp:
    """The op uploading ``item`` with the engine's config and upload options (encryption,
    KMS key, storage class; ``defaults`` for the put options the item leaves unset, see
    :func:`object_headers`); values to stage go to the engine's temp directory. ``url_of``
    resolves the item's key. Raises :class:`S3URLError`, :class:`S3NotFound` (missing local
    file) or :class:`S3InvalidObject` before anything is sent."""
    config = engine.config
    if getattr(item, "path", None) is None:
        check_value(getattr(item, "value", None), item.key, url_of)
    url = url_of(item.key)
    bucket, okey = split_url(url)
    headers = object_headers(engine, item, url, defaults)
    body, path = None, getattr(item, "path", None)
    if path is not None:
        path = os.fspath(path)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise S3NotFound("Local file does not exist", url=path,
                             code="LocalFileNotFound") from None
        if not stat.S_ISREG(st.st_mode):
            raise S3InvalidObject("Not a regular file (a directory?)", url=path)
        size = st.st_size
    else:
        body, path, size = stage_value(getattr(item, "value", None), url,
                                       config.inline_put_limit,
                                       lambda: engine.new_paths(okey)[1])
    multipart = config.upload_part_size(size) if path and size >= config.multipart_threshold \
        else None
    return PutOp(url, bucket, okey, size, headers, body=body, path=path,
                 overwrite=overwrite, multipart_size=multipart)


def object_headers(engine: Engine, item: Any, url: str,
                   defaults: PutOptions = PutOptions()) -> dict[str, str]:
    """The headers of the object ``item`` (an :class:`S3PutObject`-like) creates at ``url``:
    content type (given, else guessed from the key), metadata, encryption, KMS key, storage
    class and the :class:`~fasts3.headers.PutOptions` (the item's fields, else ``defaults``,
    else the engine's). Raises :class:`S3URLError` for a bucket URL and
    :class:`S3InvalidObject` for a bad value."""
    encryption, kms_key_id, storage_class = engine.uploads[:3]
    okey = split_url(url)[1]
    if not okey:
        raise S3URLError("Cannot upload to a bucket; give a key", url=url)
    ctype = getattr(item, "content_type", None) or content_types.guess(okey)
    options = PutOptions.of(item).over(defaults).over(PutOptions(*engine.uploads[3:]))
    headers = put_headers(ctype, getattr(item, "metadata", None),
                          getattr(item, "encryption", None) or encryption, url, options)
    headers.update(upload_headers(headers.get("x-amz-server-side-encryption"), kms_key_id,
                                  storage_class))
    return headers


def stage_value(value: Any, url: str, inline_limit: int,
                new_path: Callable[[], str]) -> tuple[bytes | None, str | None, int]:
    """``(body, path, size)``: values up to ``inline_limit`` bytes travel in memory, larger
    ones and file objects are staged at ``new_path()`` first."""
    if isinstance(value, str):
        value = value.encode("utf-8")
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        if len(data) <= inline_limit:
            return data, None, len(data)
        path = new_path()
        return None, path, spill(path, url, len(data), lambda f: f.write(data))
    if hasattr(value, "read"):
        if isinstance(value, io.TextIOBase):
            raise S3InvalidObject(TEXT_FILE, url=url)
        path = new_path()
        try:
            size = spill(path, url, None, lambda f: shutil.copyfileobj(value, f, 1 << 20))
        except (TypeError, io.UnsupportedOperation):
            raise S3InvalidObject(TEXT_FILE, url=url) from None
        return None, path, size
    raise S3InvalidObject(BAD_VALUE.format(type(value).__name__), url=url)


def spill(path: str, url: str, size: int | None, write: Callable[[Any], object]) -> int:
    """Stage a value to upload in ``path`` (mode 0600); return its size in bytes. With a known
    ``size`` the free space is checked first; a full disk raises :class:`S3Error` with code
    ``NoSpaceLeft``. On any failure no file is left behind."""
    if size is not None:
        free = shutil.disk_usage(os.path.dirname(path)).free
        if free < size:
            raise S3Error(f"Not enough free space in the temp root to stage this upload ({size}"
                          f" bytes needed, {free} free)", url=url, code="NoSpaceLeft")
    try:
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
            write(f)
        return os.path.getsize(path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(path)
        if isinstance(e, OSError) and e.errno == errno.ENOSPC:
            raise S3Error("No space left in the temp root while staging this upload", url=url,
                          code="NoSpaceLeft") from None
        raise


def run_puts(engine: Engine, items: list[Any], overwrite: bool,
             url_of: Callable[[str], str],
             defaults: PutOptions = PutOptions()) -> list[tuple[str, str]]:
    """Upload ``items`` (validated first, see :func:`build_put_op`; ``defaults`` are the
    put options of the call) as one batch; return ``[(key, url)]`` of what was uploaded, in
    input order. Values staged in the temp directory are removed as soon as the batch ends
    (else every large ``put`` would keep a full copy on disk until the context closed)."""
    ops: list[PutOp] = []
    try:
        for item in items:
            ops.append(build_put_op(engine, item, overwrite, url_of, defaults))
        engine.run(ops, "put", total_bytes=sum(op.size for op in ops))
    finally:
        for item, op in zip(items, ops, strict=False):
            if op.path is not None and getattr(item, "path", None) is None:
                with contextlib.suppress(OSError):
                    os.unlink(op.path)
    return [(item.key, op.url) for item, op in zip(items, ops, strict=True) if op.uploaded]
