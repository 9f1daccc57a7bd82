"""``S3.open()``: a read-only, seekable binary file over one S3 object, backed by range GETs.

:class:`S3File` is an :class:`io.RawIOBase` (``read``, ``readinto``, ``readall``, ``seek``
with every ``whence``, ``tell``, ``close``, context manager), so ``io.BufferedReader``,
``zipfile.ZipFile``, ``tarfile`` (``r:`` modes) and friends work on it.

* **Transport.** Reads are latency bound, so they are served in *this* process: a
  :class:`~fasts3.engine.ranged.RangeReader` (its own
  :class:`~fasts3.engine.transport.Transport`, made by the engine with its endpoint and
  credentials source) does the ranged GETs, with a few threads for concurrent chunks.
  This is the one documented exception to ``api -> plan -> pool -> worker -> transport``: a
  round trip through a worker process would add latency to every cache miss and buys nothing
  for single requests.
  Transient failures are retried with the context's :class:`~fasts3.config.TransferConfig`
  policy (full-jitter backoff, ``max_attempts``).
* **Pinning.** The first response gives the size (Content-Range) and ETag (no HEAD). Every
  later range is sent with ``If-Match: <etag>`` and its ETag and total size are checked, so an
  object overwritten while open raises :class:`S3ObjectChanged` instead of mixing versions.
  ``open_object`` makes that first request itself, so a missing key raises
  :class:`~fasts3.errors.S3NotFound` at open time, like the built-in ``open``.
* **Cache.** Fetched ranges are kept as non-overlapping segments in an LRU cache bounded by
  ``cache_size`` bytes. A seek costs nothing; a read inside held data sends no request. Misses
  fetch whole ``block_size``-aligned blocks.
* **Readahead.** When reads are sequential, the next window is fetched in the background
  while the caller consumes the current one. The window is ``readahead_ratio`` of the bytes
  read sequentially so far, at least one block and at most ``readahead`` bytes, so a short
  sequential read (a ZIP member, a header) wastes little, and a long stream soon has
  ``readahead`` bytes in flight spread over ``threads`` connections.

Counters: ``bytes_fetched`` (response body bytes received) and ``requests`` (GETs sent,
retries included).
"""

from __future__ import annotations

import errno
import io
import logging
import operator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Literal

from .engine.ranged import RangeReader, S3ObjectChanged
from .errors import S3Error, S3URLError
from .forksafe import Owner
from .segments import Segments, uncovered
from .urls import split_url

if TYPE_CHECKING:
    from .engine.engine import Engine

log = logging.getLogger("fasts3.seekable")

KiB = 1 << 10
MiB = 1 << 20
_CHUNK_MAX = 8 * MiB  # largest single range GET

__all__ = ["S3File", "S3ObjectChanged", "open_object"]


def open_object(
    engine: Engine,
    url: str,
    *,
    block_size: int = 256 * KiB,
    cache_size: int = 64 * MiB,
    readahead: int = 16 * MiB,
    readahead_ratio: float = 1 / 16,
    threads: int = 4,
    initial: Literal["head", "tail"] = "head",
    version_id: str | None = None,
) -> S3File:
    """Open the object at ``url`` (``s3://bucket/key``) for reading (``S3.open``).

    Args:
        block_size: bytes per cache-miss request (aligned blocks), >= 1 KiB.
        cache_size: most bytes of fetched data kept (LRU), >= ``block_size``.
        readahead: most bytes fetched ahead of sequential reads; 0 disables readahead.
            Capped at half of ``cache_size``.
        readahead_ratio: the window is this fraction of the bytes read sequentially so far
            (0 < ratio <= 1), clamped to ``[block_size, readahead]``.
        threads: concurrent range requests (>= 1).
        initial: the first request fetches the first block (``"head"``, good for streaming)
            or the last block (``"tail"``, good for ZIP archives).
        version_id: read this version of the object.

    Raises:
        S3NotFound: the object does not exist. S3URLError: a bad key or option.
        S3Error: other failures of the first request (see :mod:`fasts3.errors`).
    """
    bucket, okey = split_url(url)
    if not okey:
        raise S3URLError("A bucket is not an object; give a key", url=url)
    if block_size < KiB or cache_size < block_size or threads < 1 or readahead < 0:
        raise S3URLError("open(): need block_size >= 1 KiB, cache_size >= block_size, "
                         "threads >= 1 and readahead >= 0", url=url)
    if not 0 < readahead_ratio <= 1 or initial not in ("head", "tail"):
        raise S3URLError("open(): need 0 < readahead_ratio <= 1 and initial in "
                         "('head', 'tail')", url=url)
    fetcher = engine.range_reader(url, bucket, okey, version_id)
    start, data = fetcher.first(block_size, initial == "tail")
    return S3File(fetcher, start, data, block_size=block_size, cache_size=cache_size,
                  readahead=min(readahead, cache_size // 2), readahead_ratio=readahead_ratio,
                  threads=threads)


class S3File(io.RawIOBase):
    """A read-only, seekable binary file over one S3 object (see the module docstring).

    Not safe for concurrent use from several threads (like a plain file without a lock).
    Attributes: ``name`` (the URL), ``mode`` (``"rb"``), ``size``, ``etag``, ``version_id``,
    ``bytes_fetched``, ``requests``, ``cached_bytes``.
    """

    def __init__(self, fetcher: RangeReader, start: int, data: bytes, *, block_size: int,
                 cache_size: int, readahead: int, readahead_ratio: float, threads: int) -> None:
        super().__init__()
        self._f = fetcher
        self._owner = Owner()  # a forked child must not use the connections or threads
        self._bs = block_size
        self._cache_size = cache_size
        self._readahead = readahead
        self._ratio = readahead_ratio
        self._threads = threads
        self._pool: ThreadPoolExecutor | None = None
        self._inflight: list[tuple[int, int, Future]] = []
        self._cache = Segments()
        self._cache.add(start, data)
        self._pos = 0
        self._last_end = -1
        self._streak = 0
        self.name = fetcher.url
        self.mode = "rb"

    # -- information -------------------------------------------------------------------
    @property
    def size(self) -> int:
        """Object size in bytes."""
        return self._f.size or 0

    @property
    def etag(self) -> str | None:
        """The ETag every read is pinned to (quotes stripped)."""
        return self._f.etag.strip('"') if self._f.etag else None

    @property
    def version_id(self) -> str | None:
        return self._f.version_id

    @property
    def bytes_fetched(self) -> int:
        """Response body bytes received so far (including readahead)."""
        return self._f.bytes_fetched

    @property
    def requests(self) -> int:
        """GET requests sent so far (retries included)."""
        return self._f.requests

    @property
    def cached_bytes(self) -> int:
        return self._cache.total

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"pos={self._pos}"
        return f"<S3File {self.name} size={self.size} {state}>"

    # -- io.RawIOBase ------------------------------------------------------------------
    def _check_open(self) -> None:
        if self.closed:
            raise ValueError("I/O operation on closed file")
        self._owner.check()

    def readable(self) -> bool:
        self._check_open()
        return True

    def seekable(self) -> bool:
        self._check_open()
        return True

    def writable(self) -> bool:
        self._check_open()
        return False

    def write(self, b: Any) -> int:
        raise io.UnsupportedOperation("S3File is read-only")

    def truncate(self, size: int | None = None) -> int:
        raise io.UnsupportedOperation("S3File is read-only")

    def tell(self) -> int:
        self._check_open()
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Move the position (no request is sent). A negative result raises ``OSError``
        (EINVAL) like a real file; positions past the end are allowed (reads return b"")."""
        self._check_open()
        offset = operator.index(offset)
        if whence == io.SEEK_SET:
            pos = offset
        elif whence == io.SEEK_CUR:
            pos = self._pos + offset
        elif whence == io.SEEK_END:
            pos = self.size + offset
        else:
            raise ValueError(f"invalid whence ({whence}, should be 0, 1 or 2)")
        if pos < 0:
            raise OSError(errno.EINVAL, "Invalid argument: negative seek position")
        self._pos = pos
        return pos

    def read(self, size: int | None = -1) -> bytes:
        """Up to ``size`` bytes from the position (all remaining if ``size`` < 0 or None);
        ``b""`` at the end."""
        self._check_open()
        end = self.size if size is None or size < 0 else min(self.size, self._pos + size)
        if end <= self._pos:
            return b""
        data = self._read_range(self._pos, end, None)
        self._pos = end
        return data  # type: ignore[return-value]

    def readall(self) -> bytes:
        return self.read(-1)

    def readinto(self, b: Any) -> int:
        """Fill ``b`` from the position; returns the byte count (0 at the end)."""
        self._check_open()
        out = memoryview(b).cast("B")
        end = min(self.size, self._pos + len(out))
        if end <= self._pos:
            return 0
        n = self._read_range(self._pos, end, out)
        self._pos = end
        return n  # type: ignore[return-value]

    def close(self) -> None:
        """Stop background fetches and drop the cache. Idempotent. In a forked child it only
        marks the file closed (the fetch threads and connections are the parent's)."""
        if self.closed:
            return
        if not self._owner.here:
            super().close()
            return
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        self._inflight = []
        self._cache = Segments()
        self._f.close()
        super().close()

    # -- the cache and the fetches -----------------------------------------------------
    def _read_range(self, a: int, b: int, out: memoryview | None) -> bytes | int:
        self._harvest()
        sequential = a == self._last_end
        self._streak = self._streak + (b - a) if sequential else b - a
        self._last_end = b
        gaps = self._gaps(a, b)
        if gaps:  # widen what is missing to whole blocks (minus what is held)
            lo = gaps[0][0] // self._bs * self._bs
            hi = min(self.size, -(-gaps[-1][1] // self._bs) * self._bs)
            gaps = self._gaps(lo, hi)
            chunk = max(self._bs, min(_CHUNK_MAX, -(-(hi - lo) // self._threads)))
            self._submit(gaps, chunk)
        if sequential and self._readahead:
            self._plan_readahead(b)
        self._wait(a, b)
        pieces, pos = [], a
        while pos < b:
            seg = self._cache.find(pos)
            if seg is None:  # cannot happen: everything needed was just waited for
                raise S3Error("Internal error: range missing from cache", self.name, "Internal")
            s, d = seg
            take = min(b, s + len(d)) - pos
            pieces.append(memoryview(d)[pos - s:pos - s + take])
            pos += take
        if out is not None:
            at = 0
            for p in pieces:
                out[at:at + len(p)] = p
                at += len(p)
            result: bytes | int = at
        else:
            result = bytes(pieces[0]) if len(pieces) == 1 else b"".join(pieces)
        del pieces
        self._cache.evict(self._cache_size)
        return result

    def _plan_readahead(self, b: int) -> None:
        window = max(self._bs, min(self._readahead, int(self._streak * self._ratio)))
        horizon = min(self.size, -(-(b + window) // self._bs) * self._bs)
        covered = b
        for s, e in sorted(self._cache.spans(b, horizon) +
                           [(s, e) for s, e, _ in self._inflight if e > b and s < horizon]):
            if s > covered:
                break
            covered = max(covered, e)
        if covered >= min(horizon, b + window // 2):
            return  # at least half a window is already held or on its way
        self._submit(self._gaps(covered, horizon),
                     max(self._bs, min(_CHUNK_MAX, window // self._threads // self._bs * self._bs)))

    def _gaps(self, lo: int, hi: int) -> list[tuple[int, int]]:
        spans = self._cache.spans(lo, hi)
        spans += [(s, e) for s, e, _ in self._inflight if e > lo and s < hi]
        return uncovered(lo, hi, spans)

    def _submit(self, gaps: list[tuple[int, int]], chunk: int) -> None:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix="fasts3-open")
        for lo, hi in gaps:
            for s in range(lo, hi, chunk):
                e = min(hi, s + chunk)
                fut = self._pool.submit(self._f.get, f"bytes={s}-{e - 1}", (s, e - s))
                self._inflight.append((s, e, fut))

    def _harvest(self) -> None:
        """Move finished background fetches into the cache (failures stay until needed)."""
        keep = []
        for item in self._inflight:
            fut = item[2]
            if fut.done() and fut.exception() is None:
                self._cache.add(*fut.result())
            else:
                keep.append(item)
        self._inflight = keep

    def _wait(self, a: int, b: int) -> None:
        """Wait for the fetches overlapping ``[a, b)``; raise the first failure."""
        needed = [item for item in self._inflight if item[1] > a and item[0] < b]
        if not needed:
            return
        self._inflight = [item for item in self._inflight if not (item[1] > a and item[0] < b)]
        error = None
        for _, _, fut in needed:
            try:
                self._cache.add(*fut.result())
            except BaseException as e:  # noqa: BLE001 - re-raised below, after the others
                error = error or e
        if error is not None:
            raise error
