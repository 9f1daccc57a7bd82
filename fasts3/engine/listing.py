"""Listing prefixes -- the one helper behind ``list_paths``/``list_recursive``/``get_recursive``,
the CLI's ``-r`` and wildcard sources, and ``sync``'s view of a bucket.

A :class:`ListRequest` lists one prefix (all pages; one level with a delimiter) and may also
*probe* the key itself with a HEAD (``get_recursive(["a/b"])`` covers ``a/b/...`` and the object
``a/b`` if there is one). All requests of a call run as one batch on the engine. Directory
markers (keys ending in ``/``) are skipped.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import S3Error
from ..headers import info_of
from ..urls import split_url
from .plan import HeadOp, ListOp

if TYPE_CHECKING:
    from .engine import Engine


@dataclass
class Listed:
    """One object (``size`` in bytes, ``mtime`` epoch seconds) or, with ``size=None``, one
    common prefix found by a listing. ``url`` is ``s3://bucket/key``."""

    url: str
    key: str
    size: int | None = None
    mtime: float | None = None
    etag: str | None = None


@dataclass
class ListRequest:
    """List ``prefix`` of the bucket of ``url`` (one level with ``delimiter="/"``); with
    ``probe``, also HEAD the key of ``url`` (a missing object is not an error)."""

    url: str
    prefix: str
    delimiter: str | None = None
    probe: bool = False
    objects: list[Listed] = field(default_factory=list)
    prefixes: list[Listed] = field(default_factory=list)
    found_self: Listed | None = None


def directory_request(url: str, recursive: bool) -> ListRequest:
    """The request for ``url`` taken as a directory: ``key/`` is listed (everything under it
    with ``recursive``, else one level); with ``recursive`` an object at the key itself is
    included too. ``log`` never covers ``log_other``."""
    _, key = split_url(url)
    prefix = key.rstrip("/") + "/" if key else ""
    probe = recursive and bool(key) and not key.endswith("/")
    return ListRequest(url, prefix, None if recursive else "/", probe)


def run_listings(engine: Engine, requests: Sequence[ListRequest]) -> None:
    """Run every request as one batch and fill in its ``objects``, ``prefixes`` and
    ``found_self``. Raises the first failure as a typed :class:`~fasts3.errors.S3Error` (a
    listing's error wins over its probe's: it names the S3 code; a HEAD answer has no body)."""
    ops: list[Any] = []
    pairs = []
    for req in requests:
        bucket, key = split_url(req.url)
        lop = ListOp(req.url, bucket, req.prefix, req.delimiter)
        hop = ProbeOp(req.url, bucket, key, return_missing=True) if req.probe else None
        ops.extend(op for op in (lop, hop) if op is not None)
        pairs.append((req, bucket, lop, hop))
    engine.run(ops, "list")
    for _, _, _, hop in pairs:
        if hop is not None and hop.probe_error is not None:
            raise hop.probe_error
    for req, bucket, lop, hop in pairs:
        base = f"s3://{bucket}/"
        if hop is not None and hop.result is not None:
            h = hop.result
            req.found_self = Listed(req.url, hop.key, int(h.get("content-length", 0)),
                                    info_of(h)["last_modified"],
                                    (h.get("etag") or "").strip('"'))
        req.objects = [Listed(base + k, k, size, mtime, etag)
                       for k, size, mtime, etag in lop.objects if not k.endswith("/")]
        req.prefixes = [Listed(base + p, p) for p in lop.prefixes]


def iter_listing(engine: Engine, req: ListRequest, progress: Any = None) -> Iterator[Listed]:
    """The entries of one request as its pages arrive, in key order: the probed object first
    (if any), then each page's objects and prefixes (S3 lists in UTF-8 binary order, so page
    after page the whole is sorted). Memory holds one page, whatever the listing's size;
    errors as :func:`run_listings`. ``progress``: a reporter shared by the pages' batches."""
    bucket, key = split_url(req.url)
    base = f"s3://{bucket}/"
    page = ListOp(req.url, bucket, req.prefix, req.delimiter, one_page=True)
    probe = ProbeOp(req.url, bucket, key, return_missing=True) if req.probe else None
    engine.run([op for op in (page, probe) if op is not None], "list", progress=progress)
    if probe is not None:
        if probe.probe_error is not None:
            raise probe.probe_error
        if probe.result is not None:
            h = probe.result
            yield Listed(req.url, key, int(h.get("content-length", 0)),
                         info_of(h)["last_modified"], (h.get("etag") or "").strip('"'))
    while True:
        entries = [Listed(base + k, k, size, mtime, etag)
                   for k, size, mtime, etag in page.objects if not k.endswith("/")]
        entries += [Listed(base + p, p) for p in page.prefixes]
        entries.sort(key=lambda e: e.key)
        yield from entries
        if not page.next_token:
            return
        page = ListOp(req.url, bucket, req.prefix, req.delimiter, page.next_token,
                      one_page=True)
        engine.run([page], "list", progress=progress)


class ProbeOp(HeadOp):
    """The HEAD that tells whether a key listed recursively is itself an object. Its failure
    never cancels the batch: it is kept in ``probe_error`` and raised only if the listings
    succeeded, so a listing's error is the one reported, whichever request failed first."""

    probe_error: S3Error | None = None

    def on_result(self, task: Any, value: Any, error: tuple | None) -> list:
        specs = super().on_result(task, value, error)
        if self.error is not None and self.error.code != "Cancelled":
            self.probe_error, self.error = self.error, None
        return specs
