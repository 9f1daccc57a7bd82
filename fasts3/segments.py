"""The cache of an ``S3.open()`` file (``seekable.py``): non-overlapping byte ranges of one
object, in LRU order, bounded by the caller (``evict``)."""

from __future__ import annotations

from bisect import bisect_right, insort
from collections import OrderedDict


class Segments:
    """Non-overlapping cached byte ranges ``start -> data`` in LRU order."""

    def __init__(self) -> None:
        self._starts: list[int] = []
        self._data: OrderedDict[int, bytes] = OrderedDict()
        self.total = 0

    def find(self, pos: int) -> tuple[int, bytes] | None:
        """The segment holding ``pos`` (marked recently used), or ``None``."""
        i = bisect_right(self._starts, pos) - 1
        if i >= 0:
            s = self._starts[i]
            d = self._data[s]
            if pos < s + len(d):
                self._data.move_to_end(s)
                return s, d
        return None

    def spans(self, lo: int, hi: int) -> list[tuple[int, int]]:
        """``(start, end)`` of the segments overlapping ``[lo, hi)``, in order."""
        out = []
        i = max(0, bisect_right(self._starts, lo) - 1)
        while i < len(self._starts) and self._starts[i] < hi:
            s = self._starts[i]
            e = s + len(self._data[s])
            if e > lo:
                out.append((s, e))
            i += 1
        return out

    def add(self, start: int, data: bytes) -> None:
        """Insert ``data`` at ``start``, keeping only the bytes not already held."""
        end = start + len(data)
        for lo, hi in uncovered(start, end, self.spans(start, end)):
            piece = data if (lo, hi) == (start, end) else data[lo - start:hi - start]
            insort(self._starts, lo)
            self._data[lo] = piece
            self.total += hi - lo

    def evict(self, limit: int) -> None:
        """Drop least recently used segments until at most ``limit`` bytes are held."""
        while self.total > limit and self._data:
            s, d = self._data.popitem(last=False)
            del self._starts[bisect_right(self._starts, s) - 1]
            self.total -= len(d)


def uncovered(lo: int, hi: int, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The parts of ``[lo, hi)`` not covered by ``spans`` (any order, may overlap)."""
    gaps, pos = [], lo
    for s, e in sorted(spans):
        if s > pos:
            gaps.append((pos, min(s, hi)))
        pos = max(pos, e)
        if pos >= hi:
            break
    if pos < hi:
        gaps.append((pos, hi))
    return [(a, b) for a, b in gaps if b > a]
