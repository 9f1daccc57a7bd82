"""metaflow.S3, rooted with s3root= (no flow needed).

Configuration is by environment, set by the parent for every child: METAFLOW_S3_ENDPOINT_URL
(metaflow_config's S3_ENDPOINT_URL) plus the AWS_* credentials and region, which its s3op worker
subprocesses inherit. Metaflow's defaults otherwise (S3_WORKER_COUNT=64 worker processes cap;
s3op spawns one `python -m ...s3op` per call with several worker processes).
GET: `get_many(names)` into tmproot=dest_dir; PUT: `put_files([(name, path), ...])`.
"""

from __future__ import annotations

import os
from contextlib import contextmanager

from metaflow import S3


@contextmanager
def get(cfg: dict):
    with S3(s3root=f"s3://{cfg['bucket']}/{cfg['src_prefix']}", tmproot=cfg["dest_dir"]) as s3:
        objs = s3.get_many(cfg["names"])
        yield {o.key: o.path for o in objs}


@contextmanager
def put(cfg: dict):
    with S3(s3root=f"s3://{cfg['bucket']}/{cfg['dest_prefix']}", tmproot=cfg["dest_dir"]) as s3:
        s3.put_files([(n, os.path.join(cfg["src_dir"], n)) for n in cfg["names"]])
        yield {}
