"""The workloads: many small objects, medium objects, a few huge ones (W1-W3); the small ones
behind 50 ms of first-byte latency (W4); many tiny ones (W5); and the stage-and-consume rows
(SC1, SC2: fasts3's iter_get vs get_many then consume, bench/stage.py).

Source bytes are random, generated once into bench/work/src/<name>/ and reused by later runs
(a `<name>.complete` marker beside that dir guards against half-written sources). They are
uploaded once per server (skipped when the listing already matches) for the GET rows; PUT rows
upload the same files.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

KiB = 1024
MiB = 1024 * KiB


@dataclass(frozen=True)
class Workload:
    """One row of the benchmark: ``count`` objects of ``size`` bytes.

    ``data`` names the workload whose objects it reads (W4 and SC1 read W1's: same source files,
    same seeded prefix); ``delay_ms`` > 0 sends every client through bench/latency_proxy.py
    with that first-byte delay; ``ops`` are the ops the row runs (``get``/``put``), or for a
    ``stage`` row (fasts3 only, bench/stage.py) its modes; ``window`` is the stage row's
    ``iter_get`` window in objects (None: fasts3's default).
    """

    wid: str  # W1..W5, SC1, SC2
    count: int
    size: int  # bytes per object
    data: str | None = None
    delay_ms: float = 0.0
    ops: tuple[str, ...] = ("get", "put")
    kind: str = "transfer"  # or "stage"
    window: int | None = None

    @property
    def name(self) -> str:
        return f"{self.wid.lower()}-{self.count}x{_human(self.size)}"

    @property
    def data_name(self) -> str:
        """Name of the source directory and seeded prefix (shared with ``data``'s row)."""
        return f"{(self.data or self.wid).lower()}-{self.count}x{_human(self.size)}"

    @property
    def total_bytes(self) -> int:
        return self.count * self.size

    @property
    def src_prefix(self) -> str:
        return f"src/{self.data_name}"

    def names(self) -> list[str]:
        return [f"{i:05d}.bin" for i in range(self.count)]

    def describe(self) -> str:
        return f"{self.wid}: {self.count} x {_human(self.size)} ({_human(self.total_bytes)})"

    def as_dict(self) -> dict:
        return {**asdict(self), "name": self.name, "total_bytes": self.total_bytes}


STAGE_MODES = ("iter_get", "get_many")
W4_DELAY_MS = 50.0


def _sets(quick: bool) -> dict[str, Workload]:
    small = 200 if quick else 2000
    return {
        "W1": Workload("W1", small, 64 * KiB),
        "W2": Workload("W2", 8 if quick else 64, 8 * MiB),
        "W3": Workload("W3", 2, (64 if quick else 512) * MiB),
        "W4": Workload("W4", small, 64 * KiB, data="W1", delay_ms=W4_DELAY_MS, ops=("get",)),
        "W5": Workload("W5", 2000 if quick else 20_000, 4 * KiB),
        "SC1": Workload("SC1", small, 64 * KiB, data="W1", ops=STAGE_MODES, kind="stage"),
        "SC2": Workload("SC2", 4 if quick else 16, (16 if quick else 64) * MiB,
                        ops=STAGE_MODES, kind="stage", window=2 if quick else 4),
    }  # fmt: skip


FULL = _sets(quick=False)
QUICK = _sets(quick=True)


def _human(n: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", MiB), ("KiB", KiB)):
        if n >= size and n % size == 0:
            return f"{n // size}{unit}"
    return f"{n}B"


def ensure_source(w: Workload, src_root: Path) -> Path:
    """Generate w's random source files once; returns the directory."""
    d = src_root / w.data_name
    marker = src_root / f"{w.data_name}.complete"  # outside d: clients upload all of d
    if marker.exists():
        return d
    d.mkdir(parents=True, exist_ok=True)
    print(f"[bench] generating {w.describe()} in {d}")
    for name in w.names():
        with open(d / name, "wb") as f:
            left = w.size
            while left:
                n = min(left, 8 * MiB)
                f.write(os.urandom(n))
                left -= n
    marker.write_text("ok\n")
    return d


def list_prefix(client, bucket: str, prefix: str) -> dict[str, int]:
    """{key: size} of every object under prefix (paginated)."""
    out: dict[str, int] = {}
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    for page in pages:
        for obj in page.get("Contents", []):
            out[obj["Key"]] = obj["Size"]
    return out


def delete_prefix(client, bucket: str, prefix: str) -> None:
    keys = list(list_prefix(client, bucket, prefix))
    for i in range(0, len(keys), 1000):
        batch = [{"Key": k} for k in keys[i : i + 1000]]
        client.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})


def seed(w: Workload, src_dir: Path, client, bucket: str) -> None:
    """Upload w's sources to s3://bucket/<src_prefix>/ unless they are already there."""
    from boto3.s3.transfer import TransferConfig

    expected = {f"{w.src_prefix}/{n}": w.size for n in w.names()}
    if list_prefix(client, bucket, w.src_prefix + "/") == expected:
        return
    print(f"[bench] seeding s3://{bucket}/{w.src_prefix}/ ({w.describe()})")
    cfg = TransferConfig(multipart_chunksize=8 * MiB, max_concurrency=8)

    def up(name: str) -> None:
        client.upload_file(str(src_dir / name), bucket, f"{w.src_prefix}/{name}", Config=cfg)

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(up, w.names()))
    got = list_prefix(client, bucket, w.src_prefix + "/")
    if got != expected:
        raise RuntimeError(f"seeding {w.data_name} failed: {len(got)}/{len(expected)} objects")
