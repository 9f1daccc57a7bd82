"""One bench row for fasts3.distributed: stage a dataset with 1 vs 2 Dask workers.

    python bench/dask_row.py [--big 32] [--small 512] [--reps 3]

Starts an embedded SeaweedFS on 127.0.0.1, seeds ``--big`` 16 MiB objects and ``--small``
64 KiB objects, then times :func:`fasts3.distributed.stage` into a local directory on a
``LocalCluster`` (processes, 1 thread per worker) with 1 and with 2 workers, plus plain
``S3.get_all`` (no Dask) for reference. Cluster start-up is timed separately; the staging
times exclude it. Every run is verified (byte counts, manifest all ``ok``). The median of
``--reps`` warm runs (after one cold run) is written to ``bench/DASK_RESULTS.md``. No target:
on a 2-core machine the server, the Dask workers and the engine processes share the cores.
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

MiB = 1 << 20
HERE = Path(__file__).resolve().parent


def _seed(srv, bucket: str, big: int, small: int, work: Path) -> int:
    from fasts3 import S3

    src = work / "src"
    src.mkdir()
    files, total = [], 0
    for i in range(big):
        p = src / f"big{i}"
        p.write_bytes(os.urandom(16 * MiB))
        files.append((f"big/{i:04d}.bin", str(p)))
        total += 16 * MiB
    for i in range(small):
        p = src / f"small{i}"
        p.write_bytes(os.urandom(64 * 1024))
        files.append((f"small/{i // 100:02d}/{i:05d}.bin", str(p)))
        total += 64 * 1024
    with S3(s3root=f"s3://{bucket}/data", endpoint_url=srv.endpoint_url,
            session_vars=srv.session_vars(), progress=False) as s3:
        s3.put_files(files)
    shutil.rmtree(src)
    return total


def _time_stage(srv, bucket: str, workers: int, processes: int, reps: int, work: Path,
                total: int) -> tuple[float, list[float]]:
    import distributed

    from fasts3 import TransferConfig
    from fasts3.distributed import stage

    t0 = time.perf_counter()
    cluster = distributed.LocalCluster(processes=True, n_workers=workers, threads_per_worker=1,
                                       dashboard_address=":0", silence_logs=50)
    client = distributed.Client(cluster)
    client.wait_for_workers(workers)
    startup = time.perf_counter() - t0
    cfg = TransferConfig(processes=processes)
    times = []
    try:
        for _ in range(reps + 1):  # the first (cold: imports, connections) is reported apart
            dest = work / "dest"
            t0 = time.perf_counter()
            m = stage(f"s3://{bucket}/data", str(dest), client, config=cfg, progress=False,
                      endpoint_url=srv.endpoint_url, session_vars=srv.session_vars())
            times.append(time.perf_counter() - t0)
            assert len(m.ok) == len(m) and m.total_bytes == total, "incomplete staging"
            shutil.rmtree(dest)
    finally:
        client.close()
        cluster.close()
    return startup, times


def _time_plain(srv, bucket: str, processes: int, reps: int, work: Path,
                total: int) -> list[float]:
    from fasts3 import S3, TransferConfig

    times = []
    for _ in range(reps + 1):
        tmp = work / "plain"
        tmp.mkdir()
        t0 = time.perf_counter()
        with S3(s3root=f"s3://{bucket}/data", tmproot=str(tmp), endpoint_url=srv.endpoint_url,
                session_vars=srv.session_vars(), progress=False,
                config=TransferConfig(processes=processes)) as s3:
            got = sum(o.size for o in s3.get_all())
        times.append(time.perf_counter() - t0)
        assert got == total, "incomplete download"
        shutil.rmtree(tmp)
    return times


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--big", type=int, default=32, help="16 MiB objects (default 32)")
    ap.add_argument("--small", type=int, default=512, help="64 KiB objects (default 512)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", default=str(HERE / "DASK_RESULTS.md"))
    a = ap.parse_args(argv)

    from fasts3.local import start_seaweedfs

    load_before = " ".join(f"{x:.1f}" for x in os.getloadavg())
    work = Path(tempfile.mkdtemp(prefix="fasts3-dask-bench-"))
    rows = []
    try:
        with start_seaweedfs(data_dir=str(work / "weed")) as srv:
            bucket = "dask-bench"
            srv.create_bucket(bucket)
            total = _seed(srv, bucket, a.big, a.small, work)
            print(f"seeded {a.big + a.small} objects, {total / MiB:.0f} MiB", flush=True)
            plain = _time_plain(srv, bucket, 2, a.reps, work, total)
            rows.append(("no Dask: S3.get_all, engine processes=2", None, plain))
            for workers, procs in ((1, 2), (2, 1), (2, 2)):
                startup, times = _time_stage(srv, bucket, workers, procs, a.reps, work, total)
                rows.append((f"stage(): {workers} Dask worker(s) x engine processes={procs}",
                             startup, times))
                print(rows[-1], flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    lines = [
        "# fasts3.distributed: 1 vs 2 Dask workers",
        "",
        f"Written by `bench/dask_row.py`. Machine: {os.cpu_count()} cores, "
        f"{platform.platform()}, Python {platform.python_version()}. Dataset: {a.big} x 16 MiB"
        f" + {a.small} x 64 KiB = {total / MiB:.0f} MiB, from an embedded SeaweedFS on "
        f"127.0.0.1 to local disk. Median of {a.reps} warm runs after one cold run; cluster "
        "start-up not included in the staging time. The server, the Dask workers and the "
        "engine processes share the same cores, so this shows overhead and scaling shape, not "
        "a cluster's throughput.",
        "",
        f"Load average while running: {load_before} before, "
        f"{' '.join(f'{x:.1f}' for x in os.getloadavg())} after (other jobs share the "
        "machine; expect noise).",
        "",
        "| run | median s (warm) | MiB/s | warm runs s | first (cold) run s | "
        "cluster start s |",
        "|---|---|---|---|---|---|",
    ]
    for name, startup, times in rows:
        warm = times[1:]
        med = statistics.median(warm)
        lines.append(f"| {name} | {med:.2f} | {total / MiB / med:.0f} | "
                     f"{', '.join(f'{t:.2f}' for t in warm)} | {times[0]:.2f} | "
                     f"{'-' if startup is None else f'{startup:.1f}'} |")
    Path(a.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
