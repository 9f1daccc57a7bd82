"""Plan a staging job on the client: list the source once, map each object to its destination,
and split the objects into shards balanced by bytes.

* A prefix is listed one level with a delimiter, then every sub-prefix recursively, all
  sub-prefixes in one parallel batch (``S3.list_recursive``). A prefix that is itself an
  object (and has nothing under it) stages that one object.
* A list of URLs is HEADed in one parallel batch (for sizes and ETags); missing ones are
  reported, not fatal.
* Every destination is validated before anything is sent: keys that cannot be mapped safely
  to a local path (``fasts3.urls.local_path_for_key``), or that would be both a file and a
  directory (``a`` and ``a/b``), raise :class:`~fasts3.errors.S3URLError`.
"""

from __future__ import annotations

import dataclasses
import heapq
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..config import TransferConfig
from ..errors import S3URLError
from ..urls import SCHEME, local_path_for_key, make_root, split_url

log = logging.getLogger("fasts3.distributed")

STAGING_DIR = ".fasts3-staging"
# Balancing weight of one object beyond its bytes: a request round trip costs about as much
# as moving this many bytes, so many small objects are not all piled onto one shard.
OBJECT_COST = 256 * 1024


@dataclass(frozen=True)
class SourceObject:
    """One object to stage: its URL, its path relative to the destination, its listed size
    (bytes) and ETag (without quotes, ``None`` if unknown)."""

    url: str
    rel: str
    size: int
    etag: str | None = None


@dataclass
class Shard:
    """The objects one Dask task stages; ``nbytes`` is the sum of their listed sizes."""

    index: int
    objects: list[SourceObject] = field(default_factory=list)

    @property
    def nbytes(self) -> int:
        return sum(o.size for o in self.objects)


def list_source(
    source: str | Iterable[str],
    connect: dict[str, Any],
    config: TransferConfig | None = None,
    base: str | None = None,
) -> tuple[list[SourceObject], list[SourceObject]]:
    """List ``source`` once; return ``(objects, missing)``.

    ``source`` is an ``s3://bucket[/prefix]`` string (every object under it; ``rel`` is the
    key relative to the prefix) or an iterable of object URLs (HEADed; ``rel`` is the key
    relative to ``base`` if given, else the key within its bucket; duplicates are dropped).
    ``connect`` holds the :class:`~fasts3.S3` connection keywords (``endpoint_url``,
    ``role``, ``session_vars``, ``client_params``). Raises :class:`S3URLError` for bad URLs
    and :class:`~fasts3.errors.S3NotFound` for a missing bucket.
    """
    from ..api import S3

    cfg = dataclasses.replace(config or TransferConfig.from_env(), processes=1)
    if isinstance(source, str):
        root = make_root(source)
        assert root is not None
        with S3(s3root=root, config=cfg, progress=False, **connect) as s3:
            return _list_prefix(s3, root), []
    urls = list(dict.fromkeys(source))
    if not urls:
        return [], []
    for url in urls:
        split_url(url)
    base_root = make_root(base) if base is not None else None
    with S3(config=cfg, progress=False, **connect) as s3:
        infos = s3.info_many(urls, return_missing=True)
    found: list[SourceObject] = []
    missing: list[SourceObject] = []
    for url, info in zip(urls, infos, strict=True):
        obj = SourceObject(url, _relative(url, base_root), info.size or 0, info.etag)
        (found if info.exists else missing).append(obj)
    return found, missing


def _list_prefix(s3: Any, root: str) -> list[SourceObject]:
    top = s3.list_paths()
    entries = [(o.url, o.size, o.etag) for o in top if o.exists]
    subs = [o.url[len(root) + 1:] for o in top if not o.exists]
    if subs:
        entries.extend((o.url, o.size, o.etag) for o in s3.list_recursive(subs))
    if not entries and split_url(root)[1]:
        info = s3.info(return_missing=True)  # the prefix may name one object
        if info.exists:
            name = root.rsplit("/", 1)[-1]
            return [SourceObject(root, name, info.size or 0, info.etag)]
    entries.sort()
    return [SourceObject(url, url[len(root) + 1:], size or 0, etag or None)
            for url, size, etag in entries]


def _relative(url: str, base: str | None) -> str:
    if base is None:
        return split_url(url)[1]
    if not url.startswith(base + "/"):
        raise S3URLError(f"URL is not under base {base}", url=url)
    return url[len(base) + 1:]


def destination(dest: str, rel: str) -> str:
    """Where ``rel`` goes: a path under the local directory ``dest`` (made safe by
    ``local_path_for_key``), or ``dest/rel`` when ``dest`` is an ``s3://`` URL."""
    if dest.startswith(SCHEME):
        url = dest.rstrip("/") + "/" + rel
        split_url(url)
        return url
    return local_path_for_key(dest, rel)


def check_destinations(dest: str, objects: Sequence[SourceObject]) -> None:
    """Raise :class:`S3URLError` before any transfer if some object cannot be written:
    an unsafe key, the reserved staging directory, or a key that is both a file and a
    directory in a local destination."""
    local = not dest.startswith(SCHEME)
    files: set[str] = set()
    dirs: set[str] = set()
    for obj in objects:
        destination(dest, obj.rel)
        if not local:
            continue
        parts = obj.rel.rstrip("/").split("/")
        if parts[0] == STAGING_DIR:
            raise S3URLError(f"Keys under {STAGING_DIR}/ are reserved for staging", url=obj.url)
        files.add("/".join(parts))
        dirs.update("/".join(parts[:i]) for i in range(1, len(parts)))
    clash = files & dirs
    if clash:
        name = sorted(clash)[0]
        raise S3URLError(f"{name!r} would be both a file and a directory under {dest} "
                         f"({len(clash)} such keys)", url=name)


def default_shard_count(objects: Sequence[SourceObject], slots: int,
                        max_shard_bytes: int = 256 << 20) -> int:
    """Shards for ``objects`` on ``slots`` parallel task slots: at least 4 per slot (so
    work balances and a lost worker loses little) and at most ``max_shard_bytes`` each,
    never more than the number of objects."""
    total = sum(o.size for o in objects)
    want = max(4 * max(1, slots), -(-total // max(1, max_shard_bytes)))
    return max(1, min(len(objects), want))


def plan_shards(objects: Sequence[SourceObject], n_shards: int) -> list[Shard]:
    """Split ``objects`` into at most ``n_shards`` non-empty shards balanced by bytes
    (longest-processing-time first, each object weighing ``size + OBJECT_COST``).
    Objects within a shard are in URL order; shards are numbered from 0."""
    if n_shards < 1:
        raise ValueError("n_shards must be >= 1")
    n = min(n_shards, len(objects))
    heap = [(0, i) for i in range(n)]
    buckets: list[list[SourceObject]] = [[] for _ in range(n)]
    for obj in sorted(objects, key=lambda o: (-o.size, o.url)):
        weight, i = heapq.heappop(heap)
        buckets[i].append(obj)
        heapq.heappush(heap, (weight + obj.size + OBJECT_COST, i))
    shards = [Shard(i, sorted(b, key=lambda o: o.url)) for i, b in enumerate(buckets)]
    log.debug("planned %d objects into %d shards (%s bytes)", len(objects), len(shards),
              [s.nbytes for s in shards])
    return shards


def staging_root(dest: str, job: str) -> str:
    """The job's staging directory under a local ``dest`` (same filesystem, so a finished
    download is renamed into place atomically)."""
    return os.path.join(dest, STAGING_DIR, job)
