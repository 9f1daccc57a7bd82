"""Turning command-line sources into concrete objects and files.

A source expands to ``Source`` records: where it is (``s3://`` URL or local path), its
*relative name* (what it is called under a destination directory/prefix), and its size and
times when a listing told us.

* ``s3://b/key`` — that object, named by its last path segment.
* ``-r s3://b/prefix`` — every object under ``prefix/`` named relative to it (and ``prefix``
  itself if it is an object). Directory markers (keys ending in ``/``) are skipped.
* ``s3://b/logs/*.gz`` — wildcards (``*``, ``?``, ``[...]`` within a segment, ``**`` across
  segments), named relative to the last ``/`` before the first wildcard. With ``-r``, objects
  under a matching "directory" are included too.
* Local paths work the same way (``os.walk`` for ``-r``, ``glob`` for wildcards).

``--include``/``--exclude`` filters are applied to the relative names.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..engine.listing import ListRequest, directory_request, iter_listing, run_listings
from ..errors import S3Error
from ..sync import scan_local
from ..urls import split_url
from .common import Filters, UsageError, glob_regex, has_wildcard, wildcard_base

if TYPE_CHECKING:
    from ..engine.engine import Engine


@dataclass
class Source:
    """One object or file to act on. ``location`` is an ``s3://`` URL or a local path."""

    location: str
    rel: str
    size: int | None = None
    mtime: float | None = None
    etag: str | None = None


@dataclass
class Listing:
    """How one S3 source is listed: ``request``; relative names start after the key prefix
    ``base``; ``pattern`` is the source's wildcard key (``None``: every object listed)."""

    request: ListRequest
    base: str
    pattern: str | None
    matched: int = 0  # objects found that the pattern matched (counted by streamed copies)
    _regex: re.Pattern[str] | None = None

    def rel(self, url: str, key: str, recursive: bool) -> str | None:
        """The relative name of a listed object (``key`` in its bucket), or ``None`` if the
        source's wildcard does not match it. The object at the source URL itself (a probe)
        is named by its last path segment."""
        if url == self.request.url:
            return url.rsplit("/", 1)[-1]
        if self.pattern is not None:
            if self._regex is None:
                self._regex = glob_regex(self.pattern)
            regex = self._regex
            if not regex.match(key) and (not recursive or not any(
                    regex.match(key[:i]) for i in _dir_ends(key))):
                return None
        return key[len(self.base):]


def plan_s3(urls: list[str], recursive: bool, raw: bool = False,
            ) -> tuple[list[Source], list[Listing]]:
    """Split S3 sources into objects named directly and listings (see the module doc).
    Raises :class:`UsageError` for a prefix given without ``-r``."""
    direct: list[Source] = []
    listings: list[Listing] = []
    for url in urls:
        bucket, key = split_url(url)
        if not raw and has_wildcard(key):
            prefix, base = wildcard_base(key)
            rest = key[len(base):]
            flat = "/" not in rest and "**" not in rest and not recursive
            listings.append(Listing(ListRequest(url, prefix, "/" if flat else None), base,
                                    key))
        elif recursive:
            req = directory_request(url, recursive=True)
            listings.append(Listing(req, req.prefix, None))
        else:
            if not key or key.endswith("/"):
                raise UsageError(f"{url} is a prefix, not an object; use -r (--recursive)")
            direct.append(Source(url, key.rsplit("/", 1)[-1]))
    return direct, listings


def check_matched(listings: list[Listing]) -> None:
    """Raise ``NoMatch`` (an :class:`~fasts3.errors.S3Error`) for a listed source that
    matched no object."""
    for lst in listings:
        if not lst.matched:
            raise S3Error("No objects match", url=lst.request.url, code="NoMatch")


def expand_s3(engine: Engine, urls: list[str], recursive: bool, filters: Filters,
              raw: bool = False, allow_empty: bool = False) -> list[Source]:
    """Expand S3 sources (see the module doc). Listings for all sources run as one batch.
    A wildcard that matches nothing, or a recursive source with no objects, raises
    :class:`~fasts3.errors.S3Error` (``NoMatch``) unless ``allow_empty``."""
    direct, listings = plan_s3(urls, recursive, raw)
    run_listings(engine, [lst.request for lst in listings])
    found = [s for s in direct if filters.included(s.rel)]
    for lst in listings:
        matched = _matches(lst, recursive)
        if not matched and not allow_empty:
            raise S3Error("No objects match", url=lst.request.url, code="NoMatch")
        found.extend(s for s in matched if filters.included(s.rel))
    return found


def iter_s3(engine: Engine, urls: list[str], recursive: bool, filters: Filters,
            raw: bool = False, progress: Any = None) -> Iterator[Source]:
    """Like :func:`expand_s3` with ``allow_empty``, as the listings arrive: one source after
    the other, page by page, so memory holds one page whatever a prefix holds (``rm -r``)."""
    direct, listings = plan_s3(urls, recursive, raw)
    yield from (s for s in direct if filters.included(s.rel))
    for lst in listings:
        for e in iter_listing(engine, lst.request, progress):
            if e.size is None:  # a common prefix of a one-level listing
                continue
            rel = lst.rel(e.url, e.key, recursive)
            if rel is not None and filters.included(rel):
                yield Source(e.url, rel, e.size, e.mtime, e.etag)


def _matches(lst: Listing, recursive: bool) -> list[Source]:
    req = lst.request
    found = [req.found_self] if req.found_self is not None else []
    out = []
    for e in found + req.objects:
        rel = lst.rel(e.url, e.key, recursive)
        if rel is not None:
            out.append(Source(e.url, rel, e.size, e.mtime, e.etag))
    return out


def _dir_ends(key: str) -> list[int]:
    return [i for i, c in enumerate(key) if c == "/"]


def expand_local(paths: list[str], recursive: bool, filters: Filters,
                 skip: tuple[str, ...] = ()) -> list[Source]:
    """Expand local sources (see the module doc). A missing path or a directory without
    ``-r`` raises :class:`UsageError`."""
    out: list[Source] = []
    for path in paths:
        if has_wildcard(path) and not os.path.exists(path):
            base = os.path.dirname(path[:min(path.index(c) for c in "*?[" if c in path)])
            hits = sorted(glob.glob(path, recursive=True))
            if not hits:
                raise UsageError(f"no local files match {path}")
            for hit in hits:
                rel = os.path.relpath(hit, base or ".").replace(os.sep, "/")
                out.extend(_local_one(hit, rel, recursive, skip, quiet_dirs=True))
        else:
            if not os.path.exists(path):
                raise UsageError(f"{path}: no such file or directory")
            out.extend(_local_one(path, os.path.basename(os.path.abspath(path)), recursive,
                                  skip, quiet_dirs=False, top=True))
    return [s for s in out if filters.included(s.rel)]


def _local_one(path: str, rel: str, recursive: bool, skip: tuple[str, ...],
               quiet_dirs: bool, top: bool = False) -> list[Source]:
    if os.path.isdir(path):
        if not recursive:
            if quiet_dirs:
                return []
            raise UsageError(f"{path} is a directory; use -r (--recursive)")
        prefix = "" if top else rel.rstrip("/") + "/"
        return [Source(e.path or "", prefix + r, e.size, e.mtime)
                for r, e in sorted(scan_local(path, skip).items())]
    st = os.stat(path)
    return [Source(path, rel, st.st_size, st.st_mtime)]
