"""The result of a staging job: one :class:`ManifestEntry` per source object.

Plain data (picklable, JSON-serialisable): shard tasks return lists of entries from the Dask
workers and the client collects them into a :class:`Manifest` in planning order.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field

from ..errors import S3Error

OK = "ok"
MISSING = "missing"
FAILED = "failed"


@dataclass
class ManifestEntry:
    """What happened to one source object.

    url: the source ``s3://bucket/key``.
    dest: the local file (download) or ``s3://`` URL (copy) it was written to.
    size: bytes written (the listed size when nothing was written).
    checksum: ``"etag:<etag>"`` or ``"md5:<hex digest>"`` of what was written, else ``None``.
    worker: address of the Dask worker whose shard produced the entry (``None`` if the shard
        never completed).
    status: ``"ok"``, ``"missing"`` (the object vanished after listing) or ``"failed"``.
    shard: index of the shard the object was planned into.
    error: a one-line description of the failure, else ``None``.
    """

    url: str
    dest: str
    size: int
    checksum: str | None = None
    worker: str | None = None
    status: str = FAILED
    shard: int = -1
    error: str | None = None


class StagingError(S3Error):
    """Some objects were not staged. ``manifest`` holds every entry (the failed ones too)."""

    def __init__(self, message: str, manifest: Manifest) -> None:
        first = manifest.failed[0] if manifest.failed else None
        super().__init__(message, url=first.url if first else None, code="StagingFailed")
        self.manifest = manifest

    def __reduce__(self):  # picklable with its manifest
        return (type(self), (self.message, self.manifest))


@dataclass
class Manifest:
    """Every entry of a staging job, in planning order (shard by shard)."""

    entries: list[ManifestEntry] = field(default_factory=list)

    def __iter__(self) -> Iterator[ManifestEntry]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def ok(self) -> list[ManifestEntry]:
        """Entries whose object was written completely."""
        return [e for e in self.entries if e.status == OK]

    @property
    def failed(self) -> list[ManifestEntry]:
        """Entries that were not written (``status != "ok"``: failed or missing)."""
        return [e for e in self.entries if e.status != OK]

    @property
    def total_bytes(self) -> int:
        """Bytes written by the entries with status ``"ok"``."""
        return sum(e.size for e in self.entries if e.status == OK)

    def raise_for_status(self) -> None:
        """Raise :class:`StagingError` if any entry is not ``"ok"``."""
        bad = self.failed
        if bad:
            more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
            raise StagingError(f"{len(bad)} of {len(self.entries)} objects were not staged: "
                               f"{bad[0].url}: {bad[0].status} {bad[0].error or ''}".rstrip()
                               + more, self)

    def to_json(self) -> str:
        """The entries as a JSON array of objects (the dataclass fields)."""
        return json.dumps([asdict(e) for e in self.entries], indent=1)

    def write(self, path: str) -> None:
        """Write :meth:`to_json` to ``path``."""
        with open(path, "w", encoding="utf-8") as f:
            f.write(self.to_json())
            f.write("\n")
