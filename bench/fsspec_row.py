"""One bench row for fasts3's fsspec filesystem: ``fasts3://`` vs s3fs ``s3://``.

    python -m bench.fsspec_row [--parquet-mib 256] [--small 2000] [--reps 3] [--quick]

Starts an embedded SeaweedFS on 127.0.0.1 and seeds one parquet file of ``--parquet-mib`` MiB
(random float64 columns, so it does not compress) and ``--small`` objects of
``--small-kib`` KiB. Then, alternating the two filesystems in every rep (the first one
rotates), it times:

* ``pd.read_parquet(url, storage_options=...)`` of the parquet file (rows and a column sum
  verified);
* ``fs.get(prefix, local_dir, recursive=True)`` of the small objects (file count and bytes
  verified; the directory is removed after each run).

Both filesystems are created once with the same keys and endpoint and stay warm between runs;
s3fs's listing cache is cleared before each run (fasts3 keeps none), so both list every time.
The median of ``--reps`` warm runs (after one cold run each) goes to
``bench/FSSPEC_RESULTS.md``. ``--quick`` (8 MiB, 200 objects, 1 rep, output to
``bench/work/``) is a smoke test; run the full size on a quiet machine only.

s3fs is not a fasts3 dependency: ``pip install -e '.[bench]'`` brings it (it pins botocore, so
pip may choose an older boto3 with it).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

MiB = 1 << 20
HERE = Path(__file__).resolve().parent
COLUMNS = 8  # float64 columns: 64 bytes per row


def _seed(srv: Any, bucket: str, parquet_mib: int, small: int, small_kib: int,
          work: Path) -> tuple[int, float, int]:
    """Upload the parquet file and the small objects; return (rows, sum of column c0,
    total bytes of the small objects)."""
    import numpy as np
    import pandas as pd

    from fasts3 import S3

    rows = parquet_mib * MiB // (8 * COLUMNS)
    rng = np.random.default_rng(7)
    df = pd.DataFrame({f"c{i}": rng.random(rows) for i in range(COLUMNS)})
    expected_sum = float(df["c0"].sum())
    src = work / "src"
    (src / "small").mkdir(parents=True)
    df.to_parquet(src / "big.parquet", compression=None, row_group_size=1 << 20)
    del df
    files = [("big.parquet", str(src / "big.parquet"))]
    for i in range(small):
        p = src / "small" / f"{i:05d}.bin"
        p.write_bytes(os.urandom(small_kib * 1024))
        files.append((f"small/{i // 100:02d}/{i:05d}.bin", str(p)))
    with S3(s3root=f"s3://{bucket}", endpoint_url=srv.endpoint_url,
            session_vars=srv.session_vars(), progress=False) as s3:
        s3.put_files(files)
    shutil.rmtree(src)
    return rows, expected_sum, small * small_kib * 1024


def _filesystems(srv: Any) -> dict[str, tuple[Any, str, dict]]:
    """name -> (fs, protocol, storage_options); s3fs with the same keys and endpoint."""
    import fsspec

    try:
        fsspec.get_filesystem_class("fasts3")
    except ValueError:  # an install that predates the entry point
        fsspec.register_implementation("fasts3", "fasts3.fsspec.FastS3FileSystem")
    sv = srv.session_vars()
    opts = {"endpoint_url": srv.endpoint_url, "key": sv["aws_access_key_id"],
            "secret": sv["aws_secret_access_key"]}
    s3fs_opts = dict(opts, client_kwargs={"region_name": sv["region_name"]})
    return {"fasts3://": (fsspec.filesystem("fasts3", **opts), "fasts3", opts),
            "s3fs s3://": (fsspec.filesystem("s3", **s3fs_opts), "s3", s3fs_opts)}


def _read_parquet(fs: Any, proto: str, opts: dict, bucket: str, rows: int,
                  expected_sum: float) -> float:
    import pandas as pd

    fs.invalidate_cache()
    t0 = time.perf_counter()
    df = pd.read_parquet(f"{proto}://{bucket}/big.parquet", storage_options=opts)
    elapsed = time.perf_counter() - t0
    assert len(df) == rows and abs(float(df["c0"].sum()) - expected_sum) < 1e-6 * rows, \
        "read_parquet returned other data"
    return elapsed


def _get_many(fs: Any, bucket: str, small: int, total: int, work: Path) -> float:
    dest = work / "get"
    fs.invalidate_cache()
    t0 = time.perf_counter()
    fs.get(f"{bucket}/small/", str(dest) + "/", recursive=True)
    elapsed = time.perf_counter() - t0
    got = [p for p in dest.rglob("*") if p.is_file()]
    assert len(got) == small and sum(p.stat().st_size for p in got) == total, \
        "fs.get returned other files"
    shutil.rmtree(dest)
    return elapsed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parquet-mib", type=int, default=256)
    ap.add_argument("--small", type=int, default=2000, help="small objects (default 2000)")
    ap.add_argument("--small-kib", type=int, default=16, help="their size (default 16 KiB)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="smoke test: 8 MiB, 200 objects")
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    if a.quick:
        a.parquet_mib, a.small, a.reps = 8, 200, 1
    out = Path(a.out or (HERE / "work" / "FSSPEC_RESULTS.md" if a.quick
                         else HERE / "FSSPEC_RESULTS.md"))

    from fasts3.local import start_seaweedfs

    load_before = " ".join(f"{x:.1f}" for x in os.getloadavg())
    work = Path(tempfile.mkdtemp(prefix="fasts3-fsspec-bench-"))
    times: dict[tuple[str, str], list[float]] = {}
    try:
        with start_seaweedfs(data_dir=str(work / "weed")) as srv:
            bucket = "fsspec-bench"
            srv.create_bucket(bucket)
            rows, expected_sum, total = _seed(srv, bucket, a.parquet_mib, a.small,
                                              a.small_kib, work)
            print(f"seeded {a.parquet_mib} MiB parquet ({rows} rows) and {a.small} x "
                  f"{a.small_kib} KiB", flush=True)
            systems = _filesystems(srv)
            order = list(systems)
            for rep in range(a.reps + 1):  # rep 0 is the cold run
                for name in order[rep % 2:] + order[:rep % 2]:
                    fs, proto, opts = systems[name]
                    t_pq = _read_parquet(fs, proto, opts, bucket, rows, expected_sum)
                    t_get = _get_many(fs, bucket, a.small, total, work)
                    times.setdefault(("read_parquet", name), []).append(t_pq)
                    times.setdefault(("get", name), []).append(t_get)
                    print(f"rep {rep} {name}: read_parquet {t_pq:.2f} s, get {t_get:.2f} s",
                          flush=True)
            systems["fasts3://"][0].close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    _write(out, a, times, total, load_before)
    return 0


def _write(out: Path, a: Any, times: dict, total: int, load_before: str) -> None:
    import fsspec

    try:
        import s3fs

        s3fs_version = s3fs.__version__
    except ImportError:  # pragma: no cover - the run would have failed earlier
        s3fs_version = "?"
    rows = {"read_parquet": (f"`pd.read_parquet` of one {a.parquet_mib} MiB parquet file",
                             a.parquet_mib * MiB),
            "get": (f"`fs.get(recursive=True)` of {a.small} x {a.small_kib} KiB objects", total)}
    lines = [
        "# fsspec: `fasts3://` vs s3fs `s3://`",
        "",
        f"Written by `bench/fsspec_row.py`{' --quick (smoke test)' if a.quick else ''}. "
        f"Machine: {os.cpu_count()} cores, {platform.platform()}, Python "
        f"{platform.python_version()}; fsspec {fsspec.__version__}, s3fs {s3fs_version}. "
        "One embedded SeaweedFS on 127.0.0.1 shares the machine with the client. Median of "
        f"{a.reps} warm runs after one cold run per filesystem, the two alternating.",
        "",
        f"Load average: {load_before} before, "
        f"{' '.join(f'{x:.1f}' for x in os.getloadavg())} after.",
        "",
        "| workload | filesystem | median s (warm) | MiB/s | warm runs s | cold run s | "
        "s3fs time / fasts3 time |",
        "|---|---|---|---|---|---|---|",
    ]
    for op, (label, nbytes) in rows.items():
        base = statistics.median(times[(op, "s3fs s3://")][1:])
        for name in ("fasts3://", "s3fs s3://"):
            runs = times[(op, name)]
            med = statistics.median(runs[1:])
            lines.append(f"| {label} | {name} | {med:.2f} | {nbytes / MiB / med:.0f} | "
                         f"{', '.join(f'{t:.2f}' for t in runs[1:])} | {runs[0]:.2f} | "
                         f"{base / med:.2f} |")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
