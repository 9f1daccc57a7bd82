"""fasts3, through its public, Metaflow-shaped API with default TransferConfig.

GET: `S3(s3root=..., endpoint_url=..., session_vars=..., tmproot=dest_dir, progress=False)` and
`get_many(names)`; PUT: the same context and `put_files([(name, path), ...])`.
The timed window ends when the call returns; close() (stopping the worker pool, removing the
temp root) runs after verification, untimed, but the pool's CPU up to the end of the window is
counted (see bench/child.py).
"""

from __future__ import annotations

import os
from contextlib import contextmanager

from fasts3 import S3  # at import time: the timed window excludes imports


def _s3(cfg: dict, prefix: str):
    return S3(
        s3root=f"s3://{cfg['bucket']}/{prefix}",
        endpoint_url=cfg["endpoint_url"],
        session_vars={
            "aws_access_key_id": cfg["access_key"],
            "aws_secret_access_key": cfg["secret_key"],
            "region_name": cfg["region"],
        },
        tmproot=cfg["dest_dir"],
        progress=False,
    )


@contextmanager
def get(cfg: dict):
    with _s3(cfg, cfg["src_prefix"]) as s3:
        objs = s3.get_many(cfg["names"])
        yield {o.key: o.path for o in objs}


@contextmanager
def put(cfg: dict):
    with _s3(cfg, cfg["dest_prefix"]) as s3:
        s3.put_files([(n, os.path.join(cfg["src_dir"], n)) for n in cfg["names"]])
        yield {}
