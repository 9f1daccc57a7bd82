#!/usr/bin/env python3
"""fasts3 quick start: a round trip through an embedded S3 server on this machine.

Starts SeaweedFS (``fasts3.local``) on 127.0.0.1, makes a small deterministic dataset
(200 files of 16 KiB-2 MiB plus two 32 MiB files by default), uploads it with
``S3.put_files``, downloads it back with ``S3.get_many``, checks every byte, prints the
throughput of both directions, and stops the server. Nothing leaves this machine.

    .venv/bin/python scripts/quickstart.py [--files 200] [--big 2] [--seed 7]
"""

from __future__ import annotations

import argparse
import filecmp
import logging
import math
import os
import random
import sys
import tempfile
import time

MiB = 1024 * 1024


def make_dataset(root: str, files: int, big: int, seed: int) -> list[tuple[str, str]]:
    """Write the dataset under ``root``; return ``[(key, local path), ...]``.

    Small files have log-uniform sizes in [16 KiB, 2 MiB]; big ones are 32 MiB each.
    """
    rng = random.Random(seed)
    sizes = [int(math.exp(rng.uniform(math.log(16 * 1024), math.log(2 * MiB))))
             for _ in range(files)]
    items = [(f"small/file-{i:04d}.bin", n) for i, n in enumerate(sizes)]
    items += [(f"big/blob-{i}.bin", 32 * MiB) for i in range(big)]
    pairs = []
    for key, size in items:
        path = os.path.join(root, *key.split("/"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(rng.randbytes(size))
        pairs.append((key, path))
    return pairs


def rate(nbytes: int, seconds: float) -> str:
    return f"{nbytes / MiB / max(seconds, 1e-9):8.1f} MiB/s"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=200, help="small files (default 200)")
    parser.add_argument("--big", type=int, default=2, help="32 MiB files (default 2)")
    parser.add_argument("--seed", type=int, default=7, help="dataset seed (default 7)")
    opts = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    from fasts3 import S3
    from fasts3.local import start_seaweedfs

    bucket = "fasts3-quickstart"
    with tempfile.TemporaryDirectory(prefix="fasts3-quickstart-") as work:
        print("1/4 starting an embedded SeaweedFS S3 server on 127.0.0.1 ...", flush=True)
        with start_seaweedfs(buckets=[bucket]) as srv:
            print(f"    endpoint {srv.endpoint_url}  bucket s3://{bucket}")

            t0 = time.perf_counter()
            pairs = make_dataset(os.path.join(work, "src"), opts.files, opts.big, opts.seed)
            total = sum(os.path.getsize(p) for _, p in pairs)
            print(f"2/4 made {len(pairs)} files, {total / MiB:.1f} MiB "
                  f"({time.perf_counter() - t0:.1f}s)", flush=True)

            s3_args = dict(s3root=f"s3://{bucket}/quickstart", endpoint_url=srv.endpoint_url,
                           session_vars=srv.session_vars(), tmproot=work, progress=True)
            with S3(**s3_args) as s3:
                print("3/4 upload: S3.put_files", flush=True)
                t0 = time.perf_counter()
                uploaded = s3.put_files(pairs)
                up_s = time.perf_counter() - t0
                if len(uploaded) != len(pairs):
                    print(f"FAIL: uploaded {len(uploaded)} of {len(pairs)} files")
                    return 1

                print("4/4 download: S3.get_many", flush=True)
                t0 = time.perf_counter()
                objs = s3.get_many([key for key, _ in pairs])
                down_s = time.perf_counter() - t0

                bad = [key for (key, path), obj in zip(pairs, objs, strict=True)
                       if obj.key != key or obj.size != os.path.getsize(path)
                       or not filecmp.cmp(obj.path, path, shallow=False)]
            if bad:
                print(f"FAIL: {len(bad)} files differ after the round trip, e.g. {bad[:3]}")
                return 1

    print()
    print(f"  upload   {len(pairs):5d} files {total / MiB:8.1f} MiB {up_s:6.2f}s "
          f"{rate(total, up_s)}")
    print(f"  download {len(pairs):5d} files {total / MiB:8.1f} MiB {down_s:6.2f}s "
          f"{rate(total, down_s)}")
    print(f"OK: all {len(pairs)} files came back byte for byte; the server is stopped.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
