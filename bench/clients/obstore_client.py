"""obstore (Rust object_store): one S3Store, asyncio, at most 64 requests in flight.

GET: `get_async` with range (0, 8 MiB) per object; its `meta["size"]` tells the size, and larger
objects get their other 8 MiB ranges with `get_range_async`. Each body (a Rust-owned buffer) is
written with os.pwrite at its offset; nothing larger than one part is held in memory.
PUT: `put_async(store, key, Path(file), chunk_size=8 MiB, max_concurrency=12)`: obstore reads the
file itself and goes multipart above one chunk.
Client options: allow_http (the server is plain HTTP) and a 300 s request timeout (the
object_store default of 30 s is for whole requests and could cut a slow part).
"""

from __future__ import annotations

import asyncio
import os
from contextlib import contextmanager
from pathlib import Path

import obstore
from obstore.store import S3Store

from bench.clients import PART, parts

IN_FLIGHT = 64


def _store(cfg: dict):
    return S3Store(
        cfg["bucket"],
        endpoint=cfg["endpoint_url"],
        access_key_id=cfg["access_key"],
        secret_access_key=cfg["secret_key"],
        region=cfg["region"],
        client_options={"allow_http": True, "timeout": "300s"},
    )


async def _get_all(cfg: dict, paths: dict[str, str]) -> None:
    store, sem = _store(cfg), asyncio.Semaphore(IN_FLIGHT)

    async def part(key: str, fd: int, off: int, length: int) -> None:
        async with sem:
            data = await obstore.get_range_async(store, key, start=off, length=length)
        os.pwrite(fd, data, off)

    async def one(name: str) -> None:
        key = f"{cfg['src_prefix']}/{name}"
        async with sem:  # the file is opened after the first answer: 20,000 objects must
            resp = await obstore.get_async(store, key, options={"range": (0, PART)})
            data = await resp.bytes_async()  # not hold 20,000 open files (W5)
        fd = os.open(paths[name], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            size = resp.meta["size"]
            if size > PART:
                os.ftruncate(fd, size)
            os.pwrite(fd, data, 0)
            await asyncio.gather(*(part(key, fd, o, n) for o, n in parts(size)[1:]))
        finally:
            os.close(fd)

    await asyncio.gather(*(one(n) for n in cfg["names"]))


async def _put_all(cfg: dict) -> None:
    store, sem = _store(cfg), asyncio.Semaphore(IN_FLIGHT)

    async def one(name: str) -> None:
        async with sem:
            await obstore.put_async(
                store,
                f"{cfg['dest_prefix']}/{name}",
                Path(cfg["src_dir"], name),
                chunk_size=PART,
                max_concurrency=12,
            )

    await asyncio.gather(*(one(n) for n in cfg["names"]))


@contextmanager
def get(cfg: dict):
    paths = {n: os.path.join(cfg["dest_dir"], n) for n in cfg["names"]}
    asyncio.run(_get_all(cfg, paths))
    yield paths


@contextmanager
def put(cfg: dict):
    asyncio.run(_put_all(cfg))
    yield {}
