"""boto3, hand-rolled: one client, a 32-thread pool, plain get_object / put_object calls.

GET: every object starts with `get_object(Range=bytes=0-8MiB-1)`; its Content-Range gives the
size, and an object larger than one part gets its other 8 MiB ranges queued on the same pool,
each written with os.pwrite into the preallocated file (no HEAD, nothing buffered whole).
PUT: put_object with the open file as body up to 8 MiB; larger files use create_multipart_upload
/ upload_part (8 MiB parts read with os.pread) / complete_multipart_upload on the same pool.
botocore's defaults otherwise (including its request checksums).
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager

import boto3  # noqa: F401 - imported before the timed window

from bench.clients import PART, boto3_client, parts

THREADS = 32
CHUNK = 1 << 20


def _stream_to(body, fd: int, offset: int) -> None:
    while chunk := body.read(CHUNK):
        os.pwrite(fd, chunk, offset)
        offset += len(chunk)


@contextmanager
def get(cfg: dict):
    s3 = boto3_client(cfg, pool=THREADS + 8)
    bucket, dest = cfg["bucket"], cfg["dest_dir"]
    futures: list[Future] = []
    lock = threading.Lock()
    pool = ThreadPoolExecutor(THREADS)

    def fetch_part(key: str, path: str, off: int, length: int) -> None:
        resp = s3.get_object(Bucket=bucket, Key=key, Range=f"bytes={off}-{off + length - 1}")
        fd = os.open(path, os.O_WRONLY)
        try:
            _stream_to(resp["Body"], fd, off)
        finally:
            os.close(fd)

    def fetch_first(name: str) -> None:
        key, path = f"{cfg['src_prefix']}/{name}", os.path.join(dest, name)
        resp = s3.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{PART - 1}")
        total = int(resp["ContentRange"].rsplit("/", 1)[1])
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            if total > PART:
                os.ftruncate(fd, total)
            _stream_to(resp["Body"], fd, 0)
        finally:
            os.close(fd)
        with lock:
            for off, length in parts(total)[1:]:
                futures.append(pool.submit(fetch_part, key, path, off, length))

    with pool:
        firsts = [pool.submit(fetch_first, n) for n in cfg["names"]]
        for f in firsts:
            f.result()
        with lock:
            rest = list(futures)
        for f in rest:
            f.result()
    yield {n: os.path.join(dest, n) for n in cfg["names"]}


@contextmanager
def put(cfg: dict):
    s3 = boto3_client(cfg, pool=THREADS + 8)
    bucket = cfg["bucket"]

    def put_small(key: str, path: str) -> None:
        with open(path, "rb") as f:
            s3.put_object(Bucket=bucket, Key=key, Body=f)

    def put_part(key: str, path: str, upload_id: str, num: int, off: int, length: int) -> dict:
        fd = os.open(path, os.O_RDONLY)
        try:
            data = os.pread(fd, length, off)
        finally:
            os.close(fd)
        r = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=num, Body=data)
        return {"PartNumber": num, "ETag": r["ETag"]}

    with ThreadPoolExecutor(THREADS) as pool:
        small, multis = [], []
        for name in cfg["names"]:
            key, path = f"{cfg['dest_prefix']}/{name}", os.path.join(cfg["src_dir"], name)
            size = os.path.getsize(path)
            if size <= PART:
                small.append(pool.submit(put_small, key, path))
                continue
            uid = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
            futs = [
                pool.submit(put_part, key, path, uid, i + 1, off, length)
                for i, (off, length) in enumerate(parts(size))
            ]
            multis.append((key, uid, futs))
        for f in small:
            f.result()
        for key, uid, futs in multis:
            done = [f.result() for f in futs]
            s3.complete_multipart_upload(
                Bucket=bucket, Key=key, UploadId=uid, MultipartUpload={"Parts": done}
            )
    yield {}
