"""``FastS3FileSystem``: an fsspec filesystem (protocol ``fasts3``) on the public ``fasts3.S3``
API; this module has paths, listings, metadata, ``open`` and buckets, ``transfer.py`` the
batched forms (``cat``/``get``/``put``/``copy``/``rm``).

Paths are ``bucket/key`` (``fasts3://``, ``s3://`` and ``s3a://`` prefixes are stripped).
Directories follow s3fs: a prefix with objects under it (or a ``key/`` marker object) is a
directory, ``info()`` of it has ``type == "directory"`` and ``size == 0``; ``mkdir`` of a
prefix does nothing (a directory exists once something is written under it).
``mkdir``/``makedirs`` of a bare bucket name create the bucket; ``rmdir`` of one deletes it
(it must be empty). Listings are not cached: every call asks S3.

Errors are fasts3's typed errors, which are also the built-in ones fsspec users catch:
:class:`~fasts3.errors.S3NotFound` is a :class:`FileNotFoundError`,
:class:`~fasts3.errors.S3AccessDenied` a :class:`PermissionError`.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import threading
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

from fsspec import AbstractFileSystem
from fsspec.compression import compr
from fsspec.core import get_compression
from fsspec.utils import stringify_path, tokenize

from ..errors import S3Error, S3NotFound, error_from_response
from . import files
from .options import FSSPEC_OPTIONS, close_context, context, s3_kwargs
from .transfer import BatchMixin

_PREFIXES = ("fasts3://", "s3://", "s3a://", "fasts3::")


def _split(path: str) -> tuple[str, str]:
    bucket, _, key = path.partition("/")
    return bucket, key


def file_info(name: str, size: int | None, mtime: float | None, etag: str | None,
              **extra: Any) -> dict[str, Any]:
    """An fsspec info dict of an object (s3fs's field names)."""
    out: dict[str, Any] = {"name": name, "size": size or 0, "type": "file",
                           "ETag": f'"{etag}"' if etag else None,
                           "LastModified": None if mtime is None
                           else datetime.fromtimestamp(mtime, tz=timezone.utc)}
    out.update(extra)
    return out


def dir_info(name: str) -> dict[str, Any]:
    """An fsspec info dict of a directory (a prefix or a bucket)."""
    return {"name": name, "size": 0, "type": "directory", "StorageClass": "DIRECTORY"}


class FastS3FileSystem(BatchMixin, AbstractFileSystem):
    """fsspec filesystem over S3 backed by fasts3's worker pool.

    Storage options: see :mod:`fasts3.fsspec.options` (s3fs's names where they overlap:
    ``key``, ``secret``, ``token``, ``anon``, ``endpoint_url``, ``client_kwargs``,
    ``requester_pays``, ``profile``; plus ``config`` and fasts3's other ``S3(...)`` options).
    Call :meth:`close` to stop the workers early; they stop at interpreter exit anyway.
    """

    protocol = "fasts3"
    root_marker = ""

    def __init__(self, *args: Any, **storage_options: Any) -> None:
        base = {k: storage_options.pop(k) for k in FSSPEC_OPTIONS if k in storage_options}
        super().__init__(*args, **base)
        self._s3_kwargs, self.blocksize = s3_kwargs(storage_options)
        self._token = tokenize(self._s3_kwargs)
        self._local = threading.local()

    # -- the S3 context and its control-plane client -------------------------------------
    @property
    def s3(self) -> Any:
        """The long-lived :class:`fasts3.S3` context (shared by this process's instances with
        the same options; created on first use)."""
        return context(f"{os.getpid()}-{self._token}", self._s3_kwargs)

    def close(self) -> None:
        """Stop the workers and remove the temp dir now (a later call starts new ones)."""
        close_context(f"{os.getpid()}-{self._token}")

    def _boto3_client(self) -> Any:
        """A boto3 S3 client for the rare control-plane calls, from the same connection
        options (and so the same credential chain) as the transfers; built once."""
        client = getattr(self, "_client_cache", None)
        if client is None:
            from ..session import Connection

            keys = ("endpoint_url", "role", "session_vars", "client_params", "region",
                    "profile", "anonymous", "requester_pays", "addressing_style")
            client = Connection(**{k: self._s3_kwargs[k] for k in keys
                                   if k in self._s3_kwargs}).client
            self._client_cache = client
        return client

    def _control(self, method: str, url: str, **params: Any) -> Any:
        """One boto3 control-plane call (bucket checks, one-key listings); a failure becomes
        fasts3's typed error naming ``url``."""
        from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError

        client = self._boto3_client()
        if self._s3_kwargs.get("requester_pays") and method == "list_objects_v2":
            params["RequestPayer"] = "requester"
        try:
            return getattr(client, method)(**params)
        except ClientError as e:
            err = e.response.get("Error", {})
            status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            raise error_from_response(status, err.get("Code"), err.get("Message", ""),
                                      url) from None
        except ParamValidationError as e:
            raise S3Error(str(e), url, code="InvalidParameter") from None
        except BotoCoreError as e:  # no answer: connection, DNS, timeout (transient)
            raise error_from_response(0, type(e).__name__, str(e), url) from None

    # -- paths ---------------------------------------------------------------------------
    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        path = stringify_path(path)
        for prefix in _PREFIXES:
            if path.startswith(prefix):
                path = path[len(prefix):]
                break
        return path.rstrip("/")

    def unstrip_protocol(self, name: str) -> str:
        return name if name.startswith("fasts3://") else "fasts3://" + self._strip_protocol(name)

    def _url(self, path: str) -> str:
        return "s3://" + self._strip_protocol(path)

    # -- a per-call record of what listings told (no cache across calls) ----------------
    @contextlib.contextmanager
    def _scope(self) -> Iterator[dict[str, str]]:
        """Within one batched call, remember the type of every path a listing returned, so
        the batch needs no request per path to tell files from directories."""
        outer = getattr(self._local, "types", None)
        if outer is not None:
            yield outer
            return
        self._local.types = {}
        try:
            yield self._local.types
        finally:
            self._local.types = None

    def _saw(self, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        types = getattr(self._local, "types", None)
        if types is not None:
            for e in entries:
                types[e["name"]] = e["type"]
        return entries

    # -- listings and metadata -----------------------------------------------------------
    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        """One level under ``path``: objects and prefixes (or ``[info]`` of a file, or the
        buckets for ``""``). Raises :class:`FileNotFoundError` if there is nothing there."""
        path = self._strip_protocol(path)
        if not path:
            resp = self._control("list_buckets", "s3://")
            entries = [dir_info(b["Name"]) for b in resp.get("Buckets", [])]
        else:
            entries = []
            for o in self.s3.list_paths([self._url(path)]):
                name = o.url[len("s3://"):]
                if o.exists:
                    entries.append(file_info(name, o.size, o.last_modified, o.etag))
                else:
                    entries.append(dir_info(name.rstrip("/")))
            if not entries and _split(path)[1]:
                entries = [self.info(path)]
                if entries[0]["type"] == "directory":  # only a "key/" marker is there
                    entries = []
        self._saw(entries)
        return entries if detail else [e["name"] for e in entries]

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        """The object's info (HEAD: size, ETag, LastModified, ContentType, metadata) or a
        directory's; :class:`FileNotFoundError` if neither exists."""
        path = self._strip_protocol(path)
        if not path:
            return dir_info("")
        bucket, key = _split(path)
        if not key:
            self._control("head_bucket", self._url(path), Bucket=bucket)
            return self._saw([dir_info(bucket)])[0]
        return self._infos([path])[0]

    def _infos(self, paths: list[str]) -> list[dict[str, Any]]:
        """Info of many object-or-directory paths: one parallel HEAD batch, then a one-key
        listing for each path that is not an object."""
        objs = self.s3.info_many([self._url(p) for p in paths], return_missing=True)
        out = []
        for path, o in zip(paths, objs, strict=True):
            if o.exists:
                out.append(file_info(path, o.size, o.last_modified, o.etag,
                                     ContentType=o.content_type, Metadata=o.metadata or {},
                                     VersionId=o.version_id))
            elif self._has_children(path):
                out.append(dir_info(path))
            else:
                raise S3NotFound("No such object or directory", url=self._url(path),
                                 code="NoSuchKey", status=404)
        return self._saw(out)

    def _has_children(self, path: str) -> bool:
        """True if any key starts with ``path/`` (a one-key listing); ``path`` has a key."""
        bucket, key = _split(path)
        resp = self._control("list_objects_v2", self._url(path), Bucket=bucket,
                             Prefix=key + "/", MaxKeys=1)
        return bool(resp.get("KeyCount") or resp.get("Contents") or resp.get("CommonPrefixes"))

    def exists(self, path: str, **kwargs: Any) -> bool:
        """True if ``path`` is an object, a directory or a bucket. Only "not found" answers
        give ``False``; other failures (access denied, ...) raise."""
        try:
            self.info(path)
            return True
        except FileNotFoundError:
            return False

    def isdir(self, path: str) -> bool:
        """True for a bucket or a prefix with something under it (one listing request; none
        inside a batched call whose listing already saw ``path``)."""
        path = self._strip_protocol(path)
        known = (getattr(self._local, "types", None) or {}).get(path)
        if known is not None:
            return known == "directory"
        if not _split(path)[1]:
            return self.exists(path)
        return self._has_children(path)

    def isfile(self, path: str) -> bool:
        """True if ``path`` is an object (one HEAD request)."""
        path = self._strip_protocol(path)
        if not _split(path)[1]:
            return False
        return self.s3.info_many([self._url(path)], return_missing=True)[0].exists

    def find(self, path: str, maxdepth: int | None = None, withdirs: bool = False,
             detail: bool = False, **kwargs: Any) -> Any:
        """Every object under ``path`` (one streamed recursive listing; ``path`` itself if it
        is an object), with the directories in between when ``withdirs``. ``maxdepth``
        counts levels below ``path``. A path with nothing under it gives ``[]``."""
        if maxdepth is not None and maxdepth < 1:
            raise ValueError("maxdepth must be at least 1")
        path = self._strip_protocol(path)
        if not path:
            return super().find(path, maxdepth=maxdepth, withdirs=withdirs, detail=detail)
        try:
            objs = self.s3.list_recursive([self._url(path)])
        except FileNotFoundError:
            objs = []
        out: dict[str, dict[str, Any]] = {}
        base = path + "/"
        for o in objs:
            name = o.url[len("s3://"):]
            if name != path:
                parts = name[len(base):].split("/")
                if withdirs:
                    for i in range(1, min(len(parts), (maxdepth or len(parts)) + 1)):
                        d = base + "/".join(parts[:i])
                        out.setdefault(d, dir_info(d))
                if maxdepth is not None and len(parts) > maxdepth:
                    continue
            out[name] = file_info(name, o.size, o.last_modified, o.etag)
        if withdirs and any(n != path for n in out):
            out.setdefault(path, dir_info(path))
        self._saw(list(out.values()))
        names = sorted(out)
        return {n: out[n] for n in names} if detail else names

    def sizes(self, paths: list[str]) -> list[int]:
        """Sizes of many paths with one parallel HEAD batch (directories: 0)."""
        return [i["size"] for i in self._infos([self._strip_protocol(p) for p in paths])]

    def modified(self, path: str) -> datetime:
        """Last-modified time (timezone-aware UTC) of an object; directories have none
        (:class:`IsADirectoryError`)."""
        info = self.info(path)
        if info["type"] != "file":
            raise IsADirectoryError(path)
        return info["LastModified"]

    def ukey(self, path: str) -> str:
        """The object's ETag (changes whenever the content changes)."""
        return self.info(path)["ETag"] or super().ukey(path)

    def checksum(self, path: str) -> int:
        """An int derived from the object's ETag (equal ETags give equal checksums)."""
        return int(hashlib.md5(self.ukey(path).encode()).hexdigest(), 16)

    # -- buckets and directories ---------------------------------------------------------
    def mkdir(self, path: str, create_parents: bool = True, **kwargs: Any) -> None:
        """Create the bucket if ``path`` is a bare bucket name that does not exist; nothing
        for a prefix (S3 has no directories)."""
        path = self._strip_protocol(path)
        bucket, key = _split(path)
        if bucket and not key and not self.exists(bucket):
            self._create_bucket(bucket)

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        """Like :meth:`mkdir`; an existing bucket raises :class:`FileExistsError` unless
        ``exist_ok``. Prefixes: nothing to do."""
        path = self._strip_protocol(path)
        bucket, key = _split(path)
        if bucket and not key:
            if self.exists(bucket):
                if not exist_ok:
                    raise FileExistsError(path)
            else:
                self._create_bucket(bucket)

    def _create_bucket(self, bucket: str) -> None:
        params: dict[str, Any] = {"Bucket": bucket}
        region = self._s3_kwargs.get("region")
        if region and region != "us-east-1":
            params["CreateBucketConfiguration"] = {"LocationConstraint": region}
        self._control("create_bucket", "s3://" + bucket, **params)

    def rmdir(self, path: str) -> None:
        """Delete the bucket ``path`` names (it must be empty); nothing for a prefix."""
        path = self._strip_protocol(path)
        bucket, key = _split(path)
        if bucket and not key:
            self._control("delete_bucket", "s3://" + bucket, Bucket=bucket)

    # -- files ---------------------------------------------------------------------------
    def _open(self, path: str, mode: str = "rb", block_size: int | None = None,
              autocommit: bool = True, cache_options: dict | None = None,
              **kwargs: Any) -> Any:
        path = self._strip_protocol(path)
        if mode == "rb":
            return files.open_reader(self.s3, self._url(path), self, path,
                                     block_size or self.blocksize, kwargs)
        if mode in ("wb", "xb"):
            if mode == "xb" and self.isfile(path):
                raise FileExistsError(path)
            if not _split(path)[1]:
                raise IsADirectoryError(path)
            return files.open_writer(self.s3, self._url(path), path, exclusive=mode == "xb",
                                     autocommit=autocommit, **kwargs)
        raise NotImplementedError(f"fasts3: mode {mode!r} is not supported (S3 objects are "
                                  "read or written whole; no append)")

    def open(self, path: str, mode: str = "rb", block_size: int | None = None,
             cache_options: dict | None = None, compression: str | None = None,
             **kwargs: Any) -> Any:
        """fsspec's ``open``. A file opened for writing (binary, text, compressed) uploads
        nothing when its ``with`` block exits by an exception."""
        if mode.lstrip("t")[:1] not in ("w", "x"):
            return super().open(path, mode, block_size, cache_options, compression, **kwargs)
        text = {k: kwargs.pop(k) for k in ("encoding", "errors", "newline") if k in kwargs}
        f = super().open(path, mode.replace("t", "").replace("b", "") + "b", block_size,
                         cache_options, **kwargs)
        codec = get_compression(self._strip_protocol(path), compression)
        if codec is not None:
            f = files.CompressedWriter(compr[codec](f, mode=mode[0]), f)
        return f if "b" in mode else _TextWriter(f, **text)


class _TextWriter(io.TextIOWrapper):
    """A text wrapper whose ``with`` block discards the upload when it exits by an
    exception (the plain wrapper would close, and so upload, the partial data)."""

    def __exit__(self, exc_type: Any, *rest: Any) -> None:
        if exc_type is not None:
            self.buffer.discard()  # type: ignore[attr-defined]  # our writer's
        super().__exit__(exc_type, *rest)
