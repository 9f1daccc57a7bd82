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
from ..urls import split_url
from .plan import HeadOp, ListOp
from .s3xml import parse_http_date

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
        if hop is not None:
            req.found_self = hop.found()
        req.objects, req.prefixes = page_entries(bucket, lop)


def page_entries(bucket: str, page: ListOp) -> tuple[list[Listed], list[Listed]]:
    """The objects (directory markers skipped) and the prefixes a listing op collected."""
    base = f"s3://{bucket}/"
    return ([Listed(base + k, k, size, mtime, etag)
             for k, size, mtime, etag in page.objects if not k.endswith("/")],
            [Listed(base + p, p) for p in page.prefixes])


def iter_listing(engine: Engine, req: ListRequest, progress: Any = None) -> Iterator[Listed]:
    """The entries of one request as its pages arrive, in key order: the probed object first
    (if any), then each page's objects and prefixes (S3 lists in UTF-8 binary order, so page
    after page the whole is sorted). Memory holds one page, whatever the listing's size;
    errors as :func:`run_listings`. ``progress``: a reporter shared by the pages' batches."""
    bucket, key = split_url(req.url)
    page = ListOp(req.url, bucket, req.prefix, req.delimiter, one_page=True)
    probe = ProbeOp(req.url, bucket, key, return_missing=True) if req.probe else None
    engine.run([op for op in (page, probe) if op is not None], "list", progress=progress)
    if probe is not None:
        if probe.probe_error is not None:
            raise probe.probe_error
        found = probe.found()
        if found is not None:
            yield found
    while True:
        objects, prefixes = page_entries(bucket, page)
        yield from sorted(objects + prefixes, key=lambda e: e.key)
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

    def found(self) -> Listed | None:
        """The object at the probed URL, from its HEAD answer (``None``: there is none)."""
        h = self.result
        if h is None:
            return None
        mtime = parse_http_date(h.get("last-modified"))
        return Listed(self.url, self.key, int(h.get("content-length", 0)),
                      float(mtime) if mtime is not None else None,
                      (h.get("etag") or "").strip('"') or None)

    def on_result(self, task: Any, value: Any, error: tuple | None) -> list:
        specs = super().on_result(task, value, error)
        if self.error is not None and self.error.code != "Cancelled":
            self.probe_error, self.error = self.error, None
        return specs
