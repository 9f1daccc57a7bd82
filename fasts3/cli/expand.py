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
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..engine.listing import ListRequest, directory_request, run_listings
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
class _Listing:
    request: ListRequest
    base: str  # the key prefix relative names start after
    pattern: str | None


def expand_s3(engine: Engine, urls: list[str], recursive: bool, filters: Filters,
              raw: bool = False, allow_empty: bool = False) -> list[Source]:
    """Expand S3 sources (see the module doc). Listings for all sources run as one batch.
    A wildcard that matches nothing, or a recursive source with no objects, raises
    :class:`~fasts3.errors.S3Error` (``NoMatch``) unless ``allow_empty``."""
    direct: list[Source] = []
    listings: list[_Listing] = []
    for url in urls:
        bucket, key = split_url(url)
        if not raw and has_wildcard(key):
            prefix, base = wildcard_base(key)
            rest = key[len(base):]
            flat = "/" not in rest and "**" not in rest and not recursive
            listings.append(_Listing(ListRequest(url, prefix, "/" if flat else None), base,
                                     key))
        elif recursive:
            req = directory_request(url, recursive=True)
            listings.append(_Listing(req, req.prefix, None))
        else:
            if not key or key.endswith("/"):
                raise UsageError(f"{url} is a prefix, not an object; use -r (--recursive)")
            direct.append(Source(url, key.rsplit("/", 1)[-1]))
    run_listings(engine, [lst.request for lst in listings])
    found = [s for s in direct if filters.included(s.rel)]
    for lst in listings:
        matched = _matches(lst, recursive)
        if not matched and not allow_empty:
            raise S3Error("No objects match", url=lst.request.url, code="NoMatch")
        found.extend(s for s in matched if filters.included(s.rel))
    return found


def _matches(lst: _Listing, recursive: bool) -> list[Source]:
    req = lst.request
    out = []
    if req.found_self is not None:
        f = req.found_self
        out.append(Source(req.url, req.url.rsplit("/", 1)[-1], f.size, f.mtime, f.etag))
    regex = glob_regex(lst.pattern) if lst.pattern else None
    for e in req.objects:
        key = e.key
        if regex is not None and not regex.match(key):
            if not recursive or not any(regex.match(key[:i]) for i in _dir_ends(key)):
                continue
        out.append(Source(e.url, key[len(lst.base):], e.size, e.mtime, e.etag))
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
