"""``fasts3 ls``, ``fasts3 info`` and ``fasts3 cat``: looking at what is in S3."""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from typing import Any

from ..engine.engine import Engine
from ..engine.listing import directory_request, iter_listing
from ..engine.plan import HeadOp
from ..errors import S3Error, S3NotFound
from ..headers import info_of
from ..objects import S3GetObject
from ..urls import split_url
from .common import (
    EXIT_ERROR,
    EXIT_OK,
    EXIT_PARTIAL,
    Filters,
    Output,
    UsageError,
    error_fields,
    has_wildcard,
    human,
    iso_time,
    open_client,
    open_engine,
)
from .expand import iter_s3


def _iso8601(epoch: float | None) -> str | None:
    return None if epoch is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


class _Lister:
    """Prints listing lines and keeps the totals."""

    def __init__(self, out: Output, exact: bool) -> None:
        self.out = out
        self.exact = exact
        self.objects = 0
        self.prefixes = 0
        self.nbytes = 0

    def obj(self, url: str, name: str, size: int, mtime: float | None, etag: str | None) -> None:
        self.objects += 1
        self.nbytes += size
        shown = str(size) if self.exact else human(size)
        self.out.result({"type": "object", "url": url, "name": name, "size": size,
                         "last_modified": _iso8601(mtime), "etag": etag},
                        f"{iso_time(mtime):19}  {shown:>10}  {name}")

    def prefix(self, url: str, name: str) -> None:
        self.prefixes += 1
        self.out.result({"type": "prefix", "url": url, "name": name},
                        f"{'':19}  {'DIR':>10}  {name}")

    def totals(self) -> None:
        dirs = f", {_count(self.prefixes, 'prefix', 'prefixes')}" if self.prefixes else ""
        self.out.text(f"Total: {_count(self.objects, 'object', 'objects')}{dirs}, "
                      f"{human(self.nbytes)} ({self.nbytes} bytes)")


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _list_buckets(engine: Engine, out: Output) -> int:
    try:
        resp = engine.connection.client.list_buckets()
    except Exception as e:  # botocore ClientError / EndpointConnectionError
        raise S3Error(f"Could not list buckets: {e}", code="ListBucketsFailed") from None
    for b in resp.get("Buckets", []):
        created = b.get("CreationDate")
        epoch = created.timestamp() if created is not None else None
        out.result({"type": "bucket", "name": b["Name"], "created": _iso8601(epoch)},
                   f"{iso_time(epoch):19}  s3://{b['Name']}")
    return EXIT_OK


def cmd_ls(args: argparse.Namespace, out: Output) -> int:
    """List buckets, one level of a prefix, or (``-r``) everything under it."""
    with open_engine(args) as engine:
        if not args.urls:
            return _list_buckets(engine, out)
        lister = _Lister(out, args.bytes)
        filters = Filters(args.filters)
        missing = 0
        for i, url in enumerate(args.urls):
            if len(args.urls) > 1:
                out.text(("\n" if i else "") + url + ":")
            bucket, key = split_url(url)
            before = lister.objects + lister.prefixes
            if not args.raw and has_wildcard(key):
                for src in iter_s3(engine, [url], args.recursive, filters):
                    lister.obj(src.location, src.rel, src.size or 0, src.mtime, src.etag)
            else:
                _list_one(engine, lister, url, key, args.recursive, filters)
            if key and lister.objects + lister.prefixes == before:
                missing += 1
                out.error({"url": url, "error": "No such object or prefix", "code": "NoMatch"},
                          f"{url}: no such object or prefix")
        lister.totals()
    if missing:
        return EXIT_PARTIAL if missing < len(args.urls) else EXIT_ERROR
    return EXIT_OK


def _list_one(engine: Engine, lister: _Lister, url: str, key: str, recursive: bool,
              filters: Filters) -> None:
    """List one URL without wildcards (and the object it names, if any)."""
    req = directory_request(url, recursive)
    req.probe = bool(key) and not key.endswith("/")
    progress = engine.new_progress("list", 0)
    try:
        for e in iter_listing(engine, req, progress):  # printed page by page
            if e.url == url and req.probe:  # the object the URL itself names
                name = key.rsplit("/", 1)[-1]
            else:
                name = e.key[len(req.prefix):]
            if not name or not filters.included(name):
                continue
            if e.size is None:
                lister.prefix(e.url, name)
            else:
                lister.obj(e.url, name, e.size, e.mtime, e.etag)
    finally:
        progress.close()


def _describe(url: str, headers: dict[str, str]) -> dict[str, Any]:
    info = info_of(headers)
    return {
        "url": url,
        "size": int(headers.get("content-length", 0)),
        "last_modified": _iso8601(info["last_modified"]),
        "etag": info["etag"],
        "content_type": info["content_type"],
        "version_id": info["version_id"],
        "encryption": info["encryption"],
        "kms_key_id": headers.get("x-amz-server-side-encryption-aws-kms-key-id"),
        "storage_class": headers.get("x-amz-storage-class"),
        "metadata": info["metadata"],
    }


def cmd_info(args: argparse.Namespace, out: Output) -> int:
    """HEAD objects: size, times, ETag, type, version, encryption, metadata."""
    if args.version_id and len(args.urls) != 1:
        raise UsageError("--version-id needs exactly one URL")
    ops = []
    for url in args.urls:
        bucket, key = split_url(url)
        if not key:
            raise UsageError(f"{url} names a bucket, not an object")
        ops.append(HeadOp(url, bucket, key, return_missing=True, version_id=args.version_id))
    with open_engine(args) as engine:
        engine.run(ops, "info", fail_fast=False)
    ok = failed = 0
    for op in ops:
        err = op.error or (S3NotFound("Not found", op.url, "NoSuchKey", 404)
                           if op.result is None else None)
        if err is not None:
            failed += 1
            out.error({"url": op.url, **error_fields(err)},
                      f"{op.url}: {err.message} [{err.code}]")
            continue
        ok += 1
        rec = _describe(op.url, op.result or {})
        lines = [op.url] + [f"  {k.replace('_', ' ') + ':':15}{_show(k, v)}"
                            for k, v in rec.items() if k != "url" and v not in (None, {})]
        out.result(rec, "\n".join(lines))
    return EXIT_OK if not failed else EXIT_PARTIAL if ok else EXIT_ERROR


def _show(name: str, value: Any) -> str:
    if name == "size":
        return f"{value} ({human(value)})"
    if name == "metadata":
        return ", ".join(f"{k}={v}" for k, v in sorted(value.items()))
    return str(value)


def cmd_cat(args: argparse.Namespace, out: Output) -> int:
    """Write objects (or a byte range) to stdout."""
    if args.version_id and len(args.urls) != 1:
        raise UsageError("--version-id needs exactly one URL")
    if args.length == 0:
        raise UsageError("--length must not be 0")
    stdout = sys.stdout.buffer
    with open_client(args) as s3:
        for url in args.urls:
            req = S3GetObject(url, args.offset, args.length, args.version_id)
            obj = s3.get(req if (args.offset or args.length or args.version_id) else url)
            with open(obj.path or "", "rb") as f:
                shutil.copyfileobj(f, stdout, 1 << 20)
            stdout.flush()
    return EXIT_OK
