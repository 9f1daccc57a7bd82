"""s3transfer's TransferManager: boto3's managed transfers (what upload_file/download_file use).

One TransferManager with max_request_concurrency=32 and 8 MiB multipart threshold/chunk size,
every object submitted at once, then every future awaited. Downloads HEAD the object first
(s3transfer's own logic), then GET it whole or by ranges; uploads go multipart above 8 MiB.
"""

from __future__ import annotations

import os
from contextlib import contextmanager

from s3transfer.manager import TransferConfig, TransferManager

from bench.clients import PART, boto3_client

CONCURRENCY = 32


def _manager(cfg: dict):
    config = TransferConfig(
        multipart_threshold=PART,
        multipart_chunksize=PART,
        max_request_concurrency=CONCURRENCY,
    )
    return TransferManager(boto3_client(cfg, pool=CONCURRENCY + 8), config)


@contextmanager
def get(cfg: dict):
    dest = cfg["dest_dir"]
    paths = {n: os.path.join(dest, n) for n in cfg["names"]}
    with _manager(cfg) as tm:
        futs = [
            tm.download(cfg["bucket"], f"{cfg['src_prefix']}/{n}", paths[n]) for n in cfg["names"]
        ]
        for f in futs:
            f.result()
    yield paths


@contextmanager
def put(cfg: dict):
    with _manager(cfg) as tm:
        futs = [
            tm.upload(os.path.join(cfg["src_dir"], n), cfg["bucket"], f"{cfg['dest_prefix']}/{n}")
            for n in cfg["names"]
        ]
        for f in futs:
            f.result()
    yield {}
