"""What the latency proxy costs by itself: ``python -m bench.proxy_cost``.

    python -m bench.proxy_cost [--conns 32,256] [--requests 4000] [--delay-ms 50] [--size 65536]

Runs bench/latency_proxy.py between a minimal keep-alive HTTP/1.1 server (a fixed answer of
``--size`` bytes to every request, its own process) and a minimal asyncio load generator
(``--conns`` connections, each sending one S3-sized GET head and reading the whole answer
before the next), so that neither a real S3 server nor a real client takes CPU from the
proxy. For each connection count it prints the proxy's CPU per request (user and system),
its busy share of one core over the run, how late it released held answers, and the wall
time next to the floor ``requests x delay / connections``.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # `python bench/proxy_cost.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.latency_proxy import LatencyProxy

REQUEST = (
    b"GET /fasts3-bench/src/w1-2000x64KiB/00001.bin HTTP/1.1\r\nHost: 127.0.0.1:8333\r\n"
    b"User-Agent: proxy-cost\r\nAccept-Encoding: identity\r\nX-Amz-Date: 20250101T000000Z\r\n"
    b"X-Amz-Content-SHA256: UNSIGNED-PAYLOAD\r\nAuthorization: AWS4-HMAC-SHA256 "
    b"Credential=key/20250101/us-east-1/s3/aws4_request, SignedHeaders=host;"
    b"x-amz-content-sha256;x-amz-date, Signature=" + b"0" * 64 + b"\r\n\r\n"
)


def _answer(size: int) -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nETag: \"0\"\r\n"
        b"Last-Modified: Wed, 01 Jan 2025 00:00:00 GMT\r\nContent-Length: %d\r\n\r\n" % size
    ) + b"x" * size


def _upstream(size: int, port_out) -> None:
    answer = _answer(size)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")  # the load sends GETs only: no body
                writer.write(answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def main() -> None:
        srv = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
        port_out.send(srv.sockets[0].getsockname()[1])
        await asyncio.Event().wait()

    asyncio.run(main())


async def _load(port: int, conns: int, requests: int, answer_len: int) -> float:
    left = requests

    async def one() -> None:
        nonlocal left
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while left > 0:
            left -= 1
            writer.write(REQUEST)
            await reader.readexactly(answer_len)
        writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(conns)))
    return time.perf_counter() - t0


def measure(conns: int, requests: int, delay: float, size: int) -> dict:
    """Proxy statistics of one load run plus ``wall_s`` and ``floor_s``."""
    ctx = multiprocessing.get_context("spawn")
    recv, send = ctx.Pipe(duplex=False)
    up = ctx.Process(target=_upstream, args=(size, send), daemon=True)
    up.start()
    try:
        port = recv.recv()
        with tempfile.TemporaryDirectory() as tmp:
            proxy = LatencyProxy(f"http://127.0.0.1:{port}", delay, Path(tmp) / "stats.json")
            with proxy:
                pport = int(proxy.endpoint_url.rsplit(":", 1)[1])
                wall = asyncio.run(_load(pport, conns, requests, len(_answer(size))))
            stats = proxy.stop()
    finally:
        up.terminate()
        up.join()
    return {**stats, "wall_s": wall, "floor_s": requests * delay / conns}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.proxy_cost", description=__doc__)
    p.add_argument("--conns", default="32,256", help="comma list (%(default)s)")
    p.add_argument("--requests", type=int, default=4000)
    p.add_argument("--delay-ms", type=float, default=50.0)
    p.add_argument("--size", type=int, default=64 * 1024, help="answer body bytes")
    a = p.parse_args(argv)
    for conns in (int(c) for c in a.conns.split(",")):
        s = measure(conns, a.requests, a.delay_ms / 1e3, a.size)
        print(
            f"{conns:4d} connections: {s['requests']} requests in {s['wall_s']:.2f} s "
            f"(floor {s['floor_s']:.2f} s), peak in flight {s['peak_in_flight']}; proxy CPU "
            f"{s['cpu_s']:.2f} s = {s['cpu_us_per_request']:.0f} µs/request (user "
            f"{s['user_s']:.2f} s, sys {s['sys_s']:.2f} s), busy {s['cpu_s'] / s['wall_s']:.0%}"
            f" of a core; released held answers {s['late_ms']['p50']} ms late at p50, "
            f"{s['late_ms']['p99']} ms at p99",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
