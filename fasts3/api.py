"""The :class:`S3` context manager: resolves keys to URLs, builds ops, runs them on the worker
pool and wraps the results in :class:`~fasts3.objects.S3Object` (Metaflow-compatible)."""

from __future__ import annotations

import dataclasses
import itertools
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable
from typing import Any

from .batch import Batches
from .config import TransferConfig
from .engine.plan import GetOp, HeadOp, ListOp
from .engine.upload_plan import PutOp
from .errors import S3Error, S3URLError
from .headers import info_of
from .objects import RangeInfo, S3GetObject, S3Object, S3PutObject
from .runroot import run_root
from .uploads import build_put_op, check_value, put_item
from .urls import key_of, make_root, resolve, split_url, temp_name

log = logging.getLogger("fasts3")

KeyLike = str | S3GetObject | Any


class S3:
    """A client for one S3 root, with a pool of worker processes and a temp directory.

    Use it as a context manager; on exit (also when the block raises) the workers stop and the
    temp directory with every downloaded file is removed. See DESIGN.md for the semantics.

    The positional parameters are Metaflow's (``tmproot, bucket, prefix, run, s3root,
    encryption``); everything else is keyword-only.

    Args:
        tmproot: directory in which the temp directory (mode 0700) is created.
        bucket, prefix: the root as bucket and key prefix; or ``s3root="s3://bucket/prefix"``.
        run: a Metaflow FlowSpec or Run: root at ``<datatools root>/<flow>/<run id>``.
        encryption: server-side encryption of uploads (``"AES256"``, ``"aws:kms"``).
        endpoint_url: S3-compatible endpoint (else ``AWS_ENDPOINT_URL_S3`` or AWS).
        role: ARN of a role to assume through STS (refreshed automatically).
        session_vars: keyword arguments for ``boto3.session.Session``.
        client_params: keyword arguments for ``session.client("s3", ...)``.
        config: a :class:`TransferConfig` (default: from the machine and ``FASTS3_*``).
        progress: ``None`` (bar on a TTY), ``True``, ``False`` or ``"log"``.
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
        self._encryption = encryption or ("aws:kms" if kms_key_id else None)
        self._kms_key_id = kms_key_id
        self._storage_class = storage_class
        os.makedirs(tmproot, exist_ok=True)
        self._tmpdir: str | None = tempfile.mkdtemp(prefix="fasts3.", dir=tmproot)
        self._serial = itertools.count()
        self._batches = Batches(self._config, progress, dict(
            endpoint_url=endpoint_url, role=role, session_vars=session_vars,
            client_params=client_params, region=region, profile=profile, anonymous=anonymous,
            requester_pays=requester_pays, addressing_style=addressing_style))

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

    def close(self) -> None:
        """Stop the workers and delete the temp directory (and every downloaded file)."""
        batches = getattr(self, "_batches", None)
        if batches is not None:
            batches.close()
        tmpdir, self._tmpdir = getattr(self, "_tmpdir", None), None
        if tmpdir:
            shutil.rmtree(tmpdir, ignore_errors=True)

    @property
    def tmpdir(self) -> str:
        """The temp directory holding downloads (removed on close)."""
        if self._tmpdir is None:
            raise S3Error("This S3 client is closed", code="Closed")
        return self._tmpdir

    # -- helpers -----------------------------------------------------------------------
    def _url(self, key: str | None) -> str:
        return resolve(self._root, key)

    def _new_paths(self, key: str) -> tuple[str, str]:
        name = temp_name(next(self._serial), key)
        return os.path.join(self.tmpdir, name), os.path.join(self.tmpdir, "." + name + ".part")

    def _get_op(self, item: KeyLike, return_missing: bool, url: str | None = None) -> GetOp:
        key = key_of(item)
        rng = None
        if not isinstance(item, str) and item is not None:
            req = S3GetObject(key or "", getattr(item, "offset", 0) or 0,
                              getattr(item, "length", None), getattr(item, "version_id", None))
            if req.offset or req.length is not None:
                rng = (req.offset, req.length)
            version = req.version_id
        else:
            version = None
        if url is None:
            url = self._url(key)
        bucket, okey = split_url(url)
        if not okey:
            raise S3URLError("A bucket is not an object; give a key", url=url)
        final, temp = self._new_paths(okey)
        return GetOp(url, bucket, okey, final, temp, self._config.part_size, rng,
                     return_missing, version)

    def _get_result(self, op: GetOp, return_info: bool, prefix: str | None = None) -> S3Object:
        if op.missing:
            return S3Object(op.url, self._root, exists=False)
        prefix = self._root if prefix is None else prefix
        info = info_of(op.headers) if return_info else {}
        if not return_info:
            info["version_id"] = op.headers.get("x-amz-version-id")
            info["etag"] = (op.headers.get("etag") or "").strip('"') or None
        # Metaflow's contract: without info, range_info is None too (has_info is False)
        rinfo = RangeInfo(op.total if op.total is not None else op.length, op.start_offset,
                          op.length) if return_info else None
        return S3Object(op.url, prefix, path=op.final, size=op.length, exists=True,
                        range_info=rinfo, has_info=return_info, **info)

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
        self._batches.run(ops, "get")
        return [self._get_result(op, return_info) for op in ops]

    def _expand(self, keys: Iterable[str | None], recursive: bool) -> list[tuple[str, list]]:
        """List each key as a directory (``key/``); with ``recursive``, a key that is itself
        an object is included. Returns ``[(listed_url, [(url, size, mtime, etag)])]``."""
        plans = []
        ops: list[Any] = []
        for item in keys:
            url = resolve(self._root, key_of(item), allow_bucket=True)
            bucket, okey = split_url(url)
            prefix = okey.rstrip("/") + "/" if okey else ""
            lop = ListOp(url, bucket, prefix, None if recursive else "/")
            hop = _Probe(url, bucket, okey, return_missing=True) \
                if recursive and okey and not okey.endswith("/") else None
            ops.extend(op for op in (lop, hop) if op is not None)
            plans.append((url, bucket, lop, hop))
        self._batches.run(ops, "list")
        for _, _, _, hop in plans:
            if hop is not None and hop.probe_error is not None:
                raise hop.probe_error
        out = []
        for url, bucket, lop, hop in plans:
            found = []
            if hop is not None and hop.result is not None:
                h = hop.result
                found.append((url, int(h.get("content-length", 0)), info_of(h)["last_modified"],
                              (h.get("etag") or "").strip('"')))
            base = f"s3://{bucket}/"
            found.extend((base + k, size, mtime, etag) for k, size, mtime, etag in lop.objects
                         if not k.endswith("/"))
            if not recursive:
                found.extend((base + p, None, None, None) for p in lop.prefixes)
                found.sort(key=lambda e: e[0])
            out.append((url, found))
        return out

    def get_recursive(self, keys: Iterable[str], return_info: bool = False) -> list[S3Object]:
        """Download every object under each key taken as a directory (``log`` covers
        ``log/x``, never ``log_other/x``); a key that is itself an object returns it.

        As in Metaflow, a result's ``prefix`` is the requested key's URL and its ``key`` is
        relative to it (the object named by the key itself: ``key`` is its URL, ``prefix``
        ``None``); with ``return_info``, ``prefix`` is the root and ``key`` relative to it."""
        found = [(listed, u) for listed, objs in self._expand(keys, True) for u, *_ in objs]
        # Listed URLs are fetched as they are: re-resolving them as keys relative to the root
        # would drop the leading "/" of a key such as "root//x" and fetch another object.
        ops = [self._get_op(u, False, url=u) for _, u in found]
        self._batches.run(ops, "get")
        return [self._get_result(op, return_info, None if return_info else listed)
                for op, (listed, _) in zip(ops, found, strict=True)]

    def get_all(self, return_info: bool = False) -> list[S3Object]:
        """Download everything under the root."""
        if self._root is None:
            raise S3URLError("get_all() needs an S3 root")
        return self.get_recursive([None], return_info)

    # -- listing -----------------------------------------------------------------------
    def list_paths(self, keys: Iterable[str] | None = None) -> list[S3Object]:
        """One level under each key: objects (``exists=True``, size known) and prefixes
        (``exists=False``), sorted by URL. ``prefix`` is the listed key's URL ending in
        ``/`` (as in Metaflow) and ``key`` is relative to it."""
        return self._listing(keys, recursive=False)

    def list_recursive(self, keys: Iterable[str] | None = None) -> list[S3Object]:
        """Every object under each key (a key that is itself an object is included).
        ``prefix`` is the listed key's URL as given and ``key`` is relative to it."""
        return self._listing(keys, recursive=True)

    def _listing(self, keys, recursive: bool) -> list[S3Object]:
        if keys is None:
            if self._root is None:
                raise S3URLError("Listing without keys needs an S3 root")
            keys = [None]
        result = []
        for listed, found in self._expand(keys, recursive):
            prefix = listed if recursive else listed.rstrip("/") + "/"
            for url, size, mtime, etag in found:
                result.append(S3Object(url, prefix, size=size, exists=size is not None,
                                       last_modified=None if mtime is None else float(mtime),
                                       etag=etag))
        return result

    # -- metadata ----------------------------------------------------------------------
    def info(self, key: str | None = None, return_missing: bool = False) -> S3Object:
        """HEAD one object: size, metadata, content type, last modified; no download."""
        return self.info_many([key], return_missing)[0]

    def info_many(self, keys: Iterable[str], return_missing: bool = False) -> list[S3Object]:
        """HEAD many objects in parallel; results in input order."""
        ops = []
        for item in keys:
            url = self._url(key_of(item))
            bucket, okey = split_url(url)
            if not okey:
                raise S3URLError("A bucket is not an object; give a key", url=url)
            ops.append(HeadOp(url, bucket, okey, return_missing,
                              getattr(item, "version_id", None)))
        self._batches.run(ops, "info")
        out = []
        for op in ops:
            if op.result is None:
                out.append(S3Object(op.url, self._root, exists=False))
            else:
                out.append(S3Object(op.url, self._root, size=int(op.result.get(
                    "content-length", 0)), exists=True, has_info=True, **info_of(op.result)))
        return out

    # -- uploads -----------------------------------------------------------------------
    def put(self, key: str, obj: str | bytes | Any, overwrite: bool = True,
            content_type: str | None = None, metadata: dict[str, str] | None = None) -> str:
        """Upload ``obj`` (``str`` as UTF-8, ``bytes``, or a readable binary file) to ``key``;
        return its URL (also when ``overwrite=False`` left an existing object alone).
        Anything else (``None`` included) raises :class:`S3InvalidObject` naming the URL."""
        key = key_of(key)
        check_value(obj, key, self._url)
        url = self._url(key)
        item = S3PutObject(key, value=obj, content_type=content_type, metadata=metadata)
        self._put_items([item], overwrite)
        return url

    def put_many(self, key_objs: Iterable[Any], overwrite: bool = True) -> list[tuple[str, str]]:
        """Upload many values: ``(key, obj)`` pairs or :class:`S3PutObject`. Returns
        ``[(key, url)]`` of what was uploaded, in input order."""
        items = [put_item(o, "value", self._url) for o in key_objs]
        return self._put_items(items, overwrite)

    def put_files(self, key_paths: Iterable[Any], overwrite: bool = True) -> list[tuple[str, str]]:
        """Upload local files: ``(key, path)`` pairs or :class:`S3PutObject` with ``path``. A
        missing file raises :class:`S3NotFound` before anything is sent."""
        items = [put_item(o, "path", self._url) for o in key_paths]
        return self._put_items(items, overwrite)

    def _put_items(self, items: list[Any], overwrite: bool) -> list[tuple[str, str]]:
        ops: list[PutOp] = []
        try:
            for item in items:
                ops.append(self._put_op(item, overwrite))
            self._batches.run(ops, "put", total_bytes=sum(op.size for op in ops))
        finally:
            # Values staged in the temp root are only needed while they upload: without this
            # every large put kept a full copy on disk until the context closed.
            for item, op in zip(items, ops, strict=False):
                if op.path is not None and getattr(item, "path", None) is None:
                    try:
                        os.unlink(op.path)
                    except OSError:
                        pass
        return [(item.key, op.url) for item, op in zip(items, ops, strict=True) if op.uploaded]

    def _put_op(self, item: Any, overwrite: bool) -> PutOp:
        return build_put_op(item, overwrite, self._url, self._config,
                            (self._encryption, self._kms_key_id, self._storage_class),
                            lambda key: self._new_paths(key)[1])

    # -- more capabilities, each in its own module -------------------------------------
    def open(self, key: str, **options: Any) -> Any:
        """A read-only, seekable binary file over one object (see ``fasts3.seekable``)."""
        from .seekable import open_object

        return open_object(self, key, **options)

    def delete_many(self, keys: Iterable[str], **options: Any) -> Any:
        """Delete objects in batches of 1000 (see ``fasts3.manage``)."""
        from .manage import delete_many

        return delete_many(self, keys, **options)

    def copy_many(self, pairs: Iterable[Any], **options: Any) -> Any:
        """Server-side copies (see ``fasts3.manage``)."""
        from .manage import copy_many

        return copy_many(self, pairs, **options)


class _Probe(HeadOp):
    """The HEAD that tells whether a key listed recursively is itself an object. Its failure
    never cancels the batch: it is kept in ``probe_error`` and raised only if the listings
    succeeded, so a listing's error (which names the S3 code; a HEAD answer has no body) is
    the one reported, whichever request failed first."""

    probe_error: S3Error | None = None

    def on_result(self, task: Any, value: Any, error: tuple | None) -> list:
        specs = super().on_result(task, value, error)
        if self.error is not None and self.error.code != "Cancelled":
            self.probe_error, self.error = self.error, None
        return specs
