"""The :class:`S3` context manager: resolves keys to URLs, builds ops, runs them on the worker
pool and wraps the results in :class:`~fasts3.objects.S3Object` (Metaflow-compatible)."""

from __future__ import annotations

import dataclasses
import io
import os
from collections.abc import Iterable
from typing import IO, TYPE_CHECKING, Any, Literal

from . import signals
from .config import TransferConfig
from .downloads import get_files, get_op, head_op, info_result, result_of
from .engine.engine import Engine, raise_first
from .engine.listing import Listed, directory_request, run_listings
from .engine.plan import GetOp
from .errors import S3URLError
from .headers import PutOptions
from .objects import S3GetObject, S3Object, S3PutObject
from .runroot import run_root
from .streaming import ObjectStream, default_window, key_feed, recursive_stream
from .uploads import check_value, put_item, run_puts
from .urls import key_of, make_root, resolve

if TYPE_CHECKING:
    from .seekable import S3File
    from .writer import S3Writer

KeyLike = str | S3GetObject | None
"""A key relative to the root (or a full ``s3://`` URL without one), an
:class:`~fasts3.S3GetObject`, or ``None`` for the root itself."""
PutValue = str | bytes | IO[bytes]
"""What ``put`` uploads: ``str`` (as UTF-8), ``bytes``, or a readable binary file."""
PathLike = str | os.PathLike


class S3:
    """A client for one S3 root, with a pool of worker processes and a temp directory.

    Use it as a context manager; on exit (also when the block raises) the workers stop and the
    temp directory with every downloaded file is removed. While it is open, SIGTERM raises
    :class:`fasts3.signals.Terminated` (a ``SystemExit``, code 143) in the main thread, so the
    same clean-up runs (unless the program installed its own SIGTERM handler; see
    ``fasts3.signals``). One client may be used from several threads: its batches run one at
    a time. Other processes open their own: it cannot be pickled, and in a forked child it
    raises ``S3Error`` (code ``ForkedClient``). See DESIGN.md for the semantics.

    The positional parameters are Metaflow's (``tmproot, bucket, prefix, run, s3root,
    encryption``); everything else is keyword-only.

    Args:
        tmproot: directory in which the temp directory (mode 0700) is created.
        bucket, prefix: the root as bucket and key prefix; or ``s3root="s3://bucket/prefix"``.
        run: a Metaflow FlowSpec or Run: root at ``<datatools root>/<flow>/<run id>``.
        endpoint_url: S3-compatible endpoint (else ``AWS_ENDPOINT_URL_S3`` or AWS).
        role: ARN of a role to assume through STS (refreshed automatically).
        session_vars: keyword arguments for ``boto3.session.Session``.
        client_params: keyword arguments for ``session.client("s3", ...)``.
        config: a :class:`TransferConfig` (default: from the machine and ``FASTS3_*``).
        progress: ``None`` (bar on a TTY), ``True``, ``False`` or ``"log"``.
        encryption: server-side encryption of uploads (``"AES256"``, ``"aws:kms"``).
        region, profile, anonymous, requester_pays, addressing_style: client options, see
            ``fasts3.session``.
        kms_key_id: KMS key of uploads (implies ``encryption="aws:kms"``).
        storage_class: storage class of uploads (e.g. ``"STANDARD_IA"``).
        inject_failure_rate: Metaflow's fault injection, 0-100: that percentage of request
            attempts (not listings) fails with a transient ``InjectedFailure`` before it is
            sent, and is retried like a real failure; below 100 the last attempt is never
            injected, so injection alone never fails a transfer. Overrides
            ``config.inject_failure_rate``; ``config.inject_seed`` makes it deterministic.
    """

    def __init__(
        self,
        tmproot: str = ".",
        bucket: str | None = None,
        prefix: str | None = None,
        run: Any = None,
        s3root: str | None = None,
        encryption: str | None = None,
        *,
        endpoint_url: str | None = None,
        role: str | dict[str, Any] | None = None,
        session_vars: dict[str, Any] | None = None,
        client_params: dict[str, Any] | None = None,
        config: TransferConfig | None = None,
        progress: bool | str | None = None,
        region: str | None = None,
        profile: str | None = None,
        anonymous: bool = False,
        requester_pays: bool = False,
        addressing_style: str | None = None,
        kms_key_id: str | None = None,
        storage_class: str | None = None,
        inject_failure_rate: int | None = None,
    ) -> None:
        if run is not None:
            s3root = run_root(run, bucket, prefix)
            bucket = prefix = None
        self._root = make_root(s3root, bucket, prefix)
        self._config = config or TransferConfig.from_env()
        if inject_failure_rate is not None:
            self._config = dataclasses.replace(self._config,
                                               inject_failure_rate=inject_failure_rate)
        self._engine = Engine.from_options(self._config, progress, tmproot, dict(
            endpoint_url=endpoint_url, role=role, session_vars=session_vars,
            client_params=client_params, region=region, profile=profile, anonymous=anonymous,
            requester_pays=requester_pays, addressing_style=addressing_style,
            encryption=encryption, kms_key_id=kms_key_id, storage_class=storage_class))
        self._sigterm_hold = signals.hold()  # SIGTERM cleans up while this is open

    # -- lifecycle ---------------------------------------------------------------------
    def __enter__(self) -> S3:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - never raise from a finalizer
            pass

    def __reduce__(self) -> Any:
        raise TypeError("an S3 client cannot be pickled (it owns worker processes and a "
                        "temp dir): open one in each process, e.g. in each data loader worker")

    def close(self) -> None:
        """Stop the workers and delete the temp directory (and every downloaded file).
        Idempotent."""
        engine = getattr(self, "_engine", None)
        if engine is not None:
            engine.close()
        hold, self._sigterm_hold = getattr(self, "_sigterm_hold", None), None
        signals.release(hold)

    @property
    def tmpdir(self) -> str:
        """The absolute temp directory holding downloads (removed on close)."""
        return self._engine.tmpdir

    # -- helpers -----------------------------------------------------------------------
    def _url(self, key: str | None) -> str:
        return resolve(self._root, key)

    def _get_op(self, item: KeyLike, return_missing: bool) -> GetOp:
        return get_op(self._engine, self._url(key_of(item)), item, return_missing)

    def _get_result(self, op: GetOp, return_info: bool, prefix: str | None = None) -> S3Object:
        return result_of(op, self._root if prefix is None else prefix, self._root,
                         return_info)

    # -- downloads ---------------------------------------------------------------------
    def get(self, key: KeyLike = None, return_missing: bool = False,
            return_info: bool = True) -> S3Object:
        """Download one object (or a range of it, given an :class:`S3GetObject`).

        Raises :class:`S3NotFound` if it does not exist, unless ``return_missing`` (then the
        result has ``exists == downloaded == False``); :class:`S3InvalidRange` if the range
        starts at or past the end.
        """
        return self.get_many([key], return_missing, return_info)[0]

    def get_many(self, keys: Iterable[KeyLike], return_missing: bool = False,
                 return_info: bool = True) -> list[S3Object]:
        """Download many objects (or ranges) in parallel; results in input order. Keys may
        repeat. Every key is validated before any request is sent."""
        ops = [self._get_op(k, return_missing) for k in keys]
        self._engine.run(ops, "get")
        return [self._get_result(op, return_info) for op in ops]

    def _expand(self, keys: Iterable[KeyLike], recursive: bool) -> list[tuple[str, list[Listed]]]:
        """List each key as a directory (``key/``); with ``recursive``, a key that is itself
        an object is included. Returns ``[(listed_url, found)]``; without ``recursive``
        ``found`` holds objects and prefixes (``size=None``) sorted by URL."""
        requests = [directory_request(resolve(self._root, key_of(k), allow_bucket=True),
                                      recursive) for k in keys]
        run_listings(self._engine, requests)
        out = []
        for req in requests:
            found = [req.found_self] if req.found_self is not None else []
            found.extend(req.objects)
            if not recursive:
                found.extend(req.prefixes)
                found.sort(key=lambda e: e.url)
            out.append((req.url, found))
        return out

    def get_recursive(self, keys: Iterable[KeyLike],
                      return_info: bool = False) -> list[S3Object]:
        """Download every object under each key taken as a directory (``log`` covers
        ``log/x``, never ``log_other/x``); a key that is itself an object returns it.

        As in Metaflow, a result's ``prefix`` is the requested key's URL and its ``key`` is
        relative to it (the object named by the key itself: ``key`` is its URL, ``prefix``
        ``None``); with ``return_info``, ``prefix`` is the root and ``key`` relative to it.
        GETs start while later listing pages are still on their way (``fasts3.streaming``);
        the results keep the listing's order."""
        window = default_window(self._config, recursive=True)
        stream, result = self._recursive(keys, window, True, return_info, fail_fast=True)
        with stream:
            ops = list(stream)
        raise_first(ops)
        return [result(op) for op in ops]

    def _dir_urls(self, keys: Iterable[KeyLike]) -> list[str]:
        return [resolve(self._root, key_of(k), allow_bucket=True) for k in keys]

    def _recursive(self, keys: Iterable[KeyLike], window: int, ordered: bool,
                   return_info: bool, fail_fast: bool = False) -> tuple[Any, Any]:
        return recursive_stream(self._engine, self._dir_urls(keys), self._root, window,
                                ordered, return_info, fail_fast)

    # -- streaming downloads -----------------------------------------------------------
    def iter_get(self, keys: Iterable[KeyLike], ordered: bool = False,
                 window: int | None = None, keep: bool = False,
                 return_missing: bool = False, return_info: bool = True) -> ObjectStream:
        """Download ``keys`` (or :class:`S3GetObject` ranges) and yield each
        :class:`S3Object` as soon as it is on disk: in completion order, or in input order
        with ``ordered`` (holding back only what ordering needs).

        ``window`` (default: twice the requests in flight, at least 16) is the number of
        objects downloaded ahead of the consumer. The file of the object a thread received
        is deleted when that thread asks for the next one unless ``keep``. ``keys`` may be
        any iterable (a generator is read lazily, ``window`` items ahead). A failed object
        raises its typed error from ``next()`` at its position; the iterator stays usable.
        ``break``/``close()`` cancels what is queued and leaves no partial file. See
        ``fasts3.streaming``."""
        feed = key_feed(keys, lambda item: self._get_op(item, return_missing))
        stream = self._engine.stream(feed, "get", ordered=ordered,
                                     window=window or default_window(self._config),
                                     on_unclaimed=GetOp.discard)
        return ObjectStream(stream, lambda op: self._get_result(op, return_info), keep)

    def iter_recursive(self, keys: Iterable[KeyLike] | None = None, ordered: bool = False,
                       window: int | None = None, keep: bool = False,
                       return_info: bool = False) -> ObjectStream:
        """Like :meth:`iter_get` over every object under each key taken as a directory (as
        :meth:`get_recursive`; the root without keys): GETs start while the listing is
        still running, and memory stays bounded whatever the number of objects."""
        if keys is None:
            if self._root is None:
                raise S3URLError("iter_recursive() without keys needs an S3 root")
            keys = [None]
        stream, result = self._recursive(keys, window or default_window(self._config), ordered,
                                         return_info)
        return ObjectStream(stream, result, keep)

    def get_all(self, return_info: bool = False) -> list[S3Object]:
        """Download everything under the root."""
        if self._root is None:
            raise S3URLError("get_all() needs an S3 root")
        return self.get_recursive([None], return_info)

    # -- listing -----------------------------------------------------------------------
    def list_paths(self, keys: Iterable[KeyLike] | None = None) -> list[S3Object]:
        """One level under each key: objects (``exists=True``, size known) and prefixes
        (``exists=False``), sorted by URL. ``prefix`` is the listed key's URL ending in
        ``/`` (as in Metaflow) and ``key`` is relative to it."""
        return self._listing(keys, recursive=False)

    def list_recursive(self, keys: Iterable[KeyLike] | None = None) -> list[S3Object]:
        """Every object under each key (a key that is itself an object is included).
        ``prefix`` is the listed key's URL as given and ``key`` is relative to it."""
        return self._listing(keys, recursive=True)

    def _listing(self, keys: Iterable[KeyLike] | None, recursive: bool) -> list[S3Object]:
        if keys is None:
            if self._root is None:
                raise S3URLError("Listing without keys needs an S3 root")
            keys = [None]
        result = []
        for listed, found in self._expand(keys, recursive):
            prefix = listed if recursive else listed.rstrip("/") + "/"
            for e in found:
                result.append(S3Object(e.url, prefix, size=e.size, exists=e.size is not None,
                                       last_modified=None if e.mtime is None else float(e.mtime),
                                       etag=e.etag))
        return result

    # -- metadata ----------------------------------------------------------------------
    def info(self, key: KeyLike = None, return_missing: bool = False) -> S3Object:
        """HEAD one object: size, metadata, content type, last modified; no download."""
        return self.info_many([key], return_missing)[0]

    def info_many(self, keys: Iterable[KeyLike],
                  return_missing: bool = False) -> list[S3Object]:
        """HEAD many objects in parallel; results in input order."""
        ops = [head_op(self._url(key_of(item)), item, return_missing) for item in keys]
        self._engine.run(ops, "info")
        return [info_result(op, self._root) for op in ops]

    # -- uploads -----------------------------------------------------------------------
    def put(self, key: str | S3PutObject, obj: PutValue, overwrite: bool = True,
            content_type: str | None = None, metadata: dict[str, Any] | None = None, *,
            acl: str | None = None, cache_control: str | None = None,
            content_encoding: str | None = None, content_disposition: str | None = None) -> str:
        """Upload ``obj`` (``str`` as UTF-8, ``bytes``, or a readable binary file) to ``key``;
        return its URL (also when ``overwrite=False`` left an existing object alone).
        Anything else (``None`` included) raises :class:`S3InvalidObject` naming the URL.
        ``acl`` (a canned ACL, e.g. ``"public-read"``), ``cache_control``,
        ``content_encoding`` and ``content_disposition`` set those headers of the object."""
        name = key_of(key) or ""
        check_value(obj, name, self._url)
        url = self._url(name)
        item = S3PutObject(name, value=obj, content_type=content_type, metadata=metadata)
        run_puts(self._engine, [item], overwrite, self._url,
                 PutOptions(acl, cache_control, content_encoding, content_disposition))
        return url

    def put_many(self, key_objs: Iterable[tuple[str, PutValue] | S3PutObject],
                 overwrite: bool = True, *, acl: str | None = None,
                 cache_control: str | None = None, content_encoding: str | None = None,
                 content_disposition: str | None = None) -> list[tuple[str, str]]:
        """Upload many values: ``(key, obj)`` pairs or :class:`S3PutObject`. Returns
        ``[(key, url)]`` of what was uploaded, in input order. The put options (see
        :meth:`put`) apply to every object whose :class:`S3PutObject` leaves them unset."""
        items = [put_item(o, "value", self._url) for o in key_objs]
        return run_puts(self._engine, items, overwrite, self._url,
                        PutOptions(acl, cache_control, content_encoding, content_disposition))

    def put_files(self, key_paths: Iterable[tuple[str, PathLike] | S3PutObject],
                  overwrite: bool = True, *, acl: str | None = None,
                  cache_control: str | None = None, content_encoding: str | None = None,
                  content_disposition: str | None = None) -> list[tuple[str, str]]:
        """Upload local files: ``(key, path)`` pairs or :class:`S3PutObject` with ``path``. A
        missing file raises :class:`S3NotFound` before anything is sent. Put options as in
        :meth:`put_many`."""
        items = [put_item(o, "path", self._url) for o in key_paths]
        return run_puts(self._engine, items, overwrite, self._url,
                        PutOptions(acl, cache_control, content_encoding, content_disposition))

    def get_files(self, key_paths: Iterable[tuple[KeyLike, PathLike]],
                  return_missing: bool = False, return_info: bool = True) -> list[S3Object]:
        """Download ``(key, local_path)`` pairs (a key may be an :class:`S3GetObject` range)
        straight to those paths, the mirror of :meth:`put_files`: each file appears by an
        atomic rename once complete (parent directories are made) and stays after the
        context closes. Results in input order, ``path`` absolute. A missing key raises
        :class:`S3NotFound` unless ``return_missing``. See :func:`fasts3.downloads.get_files`."""
        return get_files(self._engine, key_paths, self._url, self._root, return_missing,
                         return_info)

    # -- more capabilities, each in its own module -------------------------------------
    def open(
        self, key: str, mode: str = "rb", *, encoding: str | None = None,
        errors: str | None = None, newline: str | None = None,
        block_size: int = 256 * 1024, cache_size: int = 64 * 1024 * 1024,
        readahead: int = 16 * 1024 * 1024, readahead_ratio: float = 1 / 16, threads: int = 4,
        initial: Literal["head", "tail"] = "head", version_id: str | None = None,
        content_type: str | None = None, metadata: dict[str, Any] | None = None,
        acl: str | None = None, cache_control: str | None = None,
        content_encoding: str | None = None, content_disposition: str | None = None,
        part_size: int | None = None, window: int | None = None,
    ) -> S3File | S3Writer | io.TextIOWrapper:
        """Open one object as a file. ``"rb"``: a read-only, seekable binary file backed by
        ranged GETs pinned to its ETag (options: :func:`fasts3.seekable.open_object`).
        ``"wb"``: a writer whose parts upload in parallel while you write; the object (with
        ``content_type``, ``metadata`` and the put options of :meth:`put`) appears on
        ``close()``, and a ``with`` block left by an exception aborts it (``part_size``,
        ``window``: :class:`fasts3.writer.S3Writer`). ``"r"``/``"w"``: the same in text
        (``encoding`` default UTF-8, ``errors``, ``newline``). See ``fasts3.opening``."""
        options = {k: v for k, v in locals().items() if k not in ("self", "key", "mode")}
        from .opening import open_key

        return open_key(self._engine, self._url(key), mode, **options)

    def delete_many(self, keys: Iterable[KeyLike]) -> list[str]:
        """Delete objects, one DeleteObjects request per 1000 keys of a bucket, all in
        parallel (see :func:`fasts3.manage.delete_urls`). Deleting a missing key succeeds.
        Returns the URLs deleted, in input order; raises the first per-key failure as a typed
        :class:`~fasts3.errors.S3Error` after every batch has run. Every key is validated
        before any request is sent."""
        from .manage import delete_urls

        urls = [self._url(key_of(k)) for k in keys]
        failed = [e for _, e in delete_urls(self._engine, urls) if e is not None]
        if failed:
            raise failed[0]
        return urls

    def copy_many(self, pairs: Iterable[tuple[KeyLike, KeyLike]], overwrite: bool = True,
                  multipart_threshold: int | None = None,
                  part_size: int | None = None) -> list[tuple[str, str]]:
        """Server-side copies of ``(source, destination)`` pairs (the bytes never leave S3).

        A source may be an :class:`~fasts3.S3GetObject` with ``version_id`` to copy that
        version. Sources of at least ``multipart_threshold`` bytes (default and most useful
        value: S3's 5 GiB CopyObject limit) are copied with UploadPartCopy in parts of
        ``part_size`` bytes (default 256 MiB, at least 5 MiB). The copy keeps the source's
        content type and metadata; this client's encryption, KMS key and storage class apply
        to the new objects. With ``overwrite=False`` an existing destination is left alone.
        Returns ``[(source_url, destination_url)]`` of what was copied, in input order;
        raises the first failure as a typed :class:`~fasts3.errors.S3Error`."""
        from .manage import copy_urls

        items = [(self._url(key_of(src)), self._url(key_of(dst)), None,
                  getattr(src, "version_id", None)) for src, dst in pairs]
        return copy_urls(self._engine, items, overwrite, multipart_threshold, part_size)
