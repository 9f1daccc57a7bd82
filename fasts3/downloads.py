"""Download preparation: a user's request for one object -> a
:class:`~fasts3.engine.plan.GetOp` staged in the engine's temp directory (the mirror of
``uploads.py``), and the results; :func:`get_files` moves downloads to the user's paths.
Validation happens here, before anything is sent."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .engine import files
from .engine.plan import GetOp, HeadOp
from .errors import S3Error, S3InvalidObject, S3URLError
from .headers import info_of
from .objects import RangeInfo, S3GetObject, S3Object
from .urls import key_of, split_url

if TYPE_CHECKING:
    from .engine.engine import Engine


def get_op(engine: Engine, url: str, request: object = None, return_missing: bool = False,
           size: int | None = None, etag: str | None = None) -> GetOp:
    """The op downloading ``url`` into the engine's temp directory. ``request`` may be an
    :class:`~fasts3.S3GetObject` (or any object with ``offset``/``length``/``version_id``)
    giving a range or version; a plain key string means the whole object. ``size`` and
    ``etag`` come from a listing (they let a large object be fetched in parts at once).
    Raises :class:`~fasts3.errors.S3URLError` for a bucket URL or a malformed range."""
    rng = None
    version = None
    if request is not None and not isinstance(request, str):
        req = S3GetObject(url, getattr(request, "offset", 0) or 0,
                          getattr(request, "length", None), getattr(request, "version_id", None))
        if req.offset or req.length is not None:
            rng = (req.offset, req.length)
        version = req.version_id
    bucket, key = split_url(url)
    if not key:
        raise S3URLError("A bucket is not an object; give a key", url=url)
    final, temp = engine.new_paths(key)
    return GetOp(url, bucket, key, final, temp, engine.config.part_size, rng, return_missing,
                 version, size=size, etag=etag)


def result_of(op: GetOp, prefix: str | None, root: str | None,
              return_info: bool) -> S3Object:
    """The :class:`~fasts3.S3Object` of a finished download: ``key`` relative to ``prefix``
    (a missing object's to ``root``). Without ``return_info`` only the version and ETag are
    filled in and ``range_info`` is ``None`` (Metaflow's contract: ``has_info`` is False)."""
    if op.missing:
        return S3Object(op.url, root, exists=False)
    info = info_of(op.headers) if return_info else {}
    if not return_info:
        info["version_id"] = op.headers.get("x-amz-version-id")
        info["etag"] = (op.headers.get("etag") or "").strip('"') or None
    rinfo = RangeInfo(op.total if op.total is not None else op.length, op.start_offset,
                      op.length) if return_info else None
    return S3Object(op.url, prefix, path=op.final, size=op.length, exists=True,
                    range_info=rinfo, has_info=return_info, **info)


def head_op(url: str, request: object = None, return_missing: bool = False) -> HeadOp:
    """The op HEADing ``url`` (``request``: a key or :class:`~fasts3.S3GetObject`, whose
    ``version_id`` is asked for). Raises :class:`S3URLError` for a bucket URL."""
    bucket, key = split_url(url)
    if not key:
        raise S3URLError("A bucket is not an object; give a key", url=url)
    return HeadOp(url, bucket, key, return_missing, getattr(request, "version_id", None))


def info_result(op: HeadOp, root: str | None) -> S3Object:
    """The :class:`~fasts3.S3Object` of a finished HEAD, ``key`` relative to ``root``."""
    if op.result is None:
        return S3Object(op.url, root, exists=False)
    return S3Object(op.url, root, size=int(op.result.get("content-length", 0)), exists=True,
                    has_info=True, **info_of(op.result))


def get_files(engine: Engine, items: Iterable[Any], url_of: Any, root: str | None,
              return_missing: bool = False, return_info: bool = True) -> list[S3Object]:
    """Download ``(key, local_path)`` pairs (a key may be an :class:`~fasts3.S3GetObject`
    range) straight to those paths (``S3.get_files``); results in input order, ``path`` the
    absolute local path. ``url_of`` resolves a key.

    Every pair is checked before anything is sent (:class:`S3InvalidObject` for a malformed
    pair or a path that is a directory, :class:`S3URLError` for a bad key). Each download is
    staged in the engine's temp directory and moved into place by an atomic rename
    (``files.place``; parent directories are made; mode from the umask), so a path holds
    either its old content or the whole new object. With fail-fast, the first failure
    cancels the rest and is raised, after every download that did finish was moved into
    place. A missing key raises :class:`~fasts3.errors.S3NotFound` unless
    ``return_missing`` (then no file is written and the result has ``exists == False``).
    The files are the caller's: closing the client leaves them."""
    planned: list[tuple[GetOp, str]] = []
    for item in items:
        if not isinstance(item, (tuple, list)) or len(item) != 2 or item[1] is None:
            raise S3InvalidObject(f"Give (key, local_path) pairs, not {item!r:.80}")
        key, path = item
        if not isinstance(path, (str, os.PathLike)):
            raise S3InvalidObject(f"A local path must be a str or os.PathLike, not "
                                  f"{type(path).__name__}")
        dest = os.path.abspath(os.fspath(path))
        if os.path.isdir(dest):
            raise S3InvalidObject("The local path is a directory; give a file path", url=dest)
        planned.append((get_op(engine, url_of(key_of(key)), key, return_missing), dest))
    mode = 0o666 & ~_umask()
    failures: list[S3Error] = []
    try:
        engine.run([op for op, _ in planned], "get")
    finally:
        for op, dest in planned:
            if op.done and op.error is None and not op.missing:
                try:
                    files.place(op.final, dest, mode)
                    op.final = dest
                except OSError as e:
                    failures.append(S3Error(f"Could not move the download to {dest}: "
                                            f"{e.strerror or e}", op.url, "LocalIOError"))
    if failures:
        raise failures[0]
    return [result_of(op, root, root, return_info) for op, _ in planned]


_umask_lock = threading.Lock()


def _umask() -> int:
    """The process umask (set back at once, under a lock)."""
    with _umask_lock:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask
