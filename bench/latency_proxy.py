"""A latency-injecting TCP forwarder for the benchmark's W4 row (and ``--via-proxy``).

    python -m bench.latency_proxy --upstream http://127.0.0.1:8333 --delay-ms 50 \
        --stats stats.json [--port 0]

Listens on 127.0.0.1, prints ``listening http://127.0.0.1:<port>`` on stdout once ready, and
forwards every connection to the upstream server byte for byte (so a SigV4 signature made for
the proxy's Host header is checked by the server against the same header). It follows
HTTP/1.1 framing in both directions (bench/http_framing.py: Content-Length and chunked bodies,
HEAD, 1xx) so that on keep-alive connections it knows where each response starts, and holds
the first byte of the first response to each request for ``--delay-ms`` milliseconds after it
arrived from the server (an interim ``100 Continue`` is that first response: the final answer
after it is not held again). Every request thus waits ``delay`` longer for its first byte,
as on a distant server, whatever client sends it.

A request is *in flight* from the moment its head has passed through the proxy until the
last byte of its final response has been handed to the client's socket (or its connection
closes). On SIGTERM or SIGINT the proxy writes its statistics as JSON to ``--stats`` and exits:
requests, responses, peak requests in flight, connections (total and peak), bytes each way,
its own CPU seconds since it was ready (user and system, ``getrusage``), and how late the held
responses were released (milliseconds beyond ``delay``: p50/p99/max; a proxy that falls
behind shows it there first). :class:`LatencyProxy` runs it as a subprocess for bench.run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import signal
import subprocess
import sys
from collections import deque
from pathlib import Path
from urllib.parse import urlsplit

if __package__ in (None, ""):  # `python bench/latency_proxy.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.http_framing import REQUEST, RESPONSE, Framer, FramingError

WRITE_HIGH_WATER = 1 << 20  # bytes buffered toward one side before the other is paused
HOLD_LIMIT = 1 << 20  # bytes of a held answer read ahead before the server side is paused


def _cpu() -> tuple[float, float]:
    """(user, system) CPU seconds of this process so far (getrusage: microseconds)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime, r.ru_stime


class Stats:
    """Counters shared by every connection of one proxy process."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.requests = self.responses = self.in_flight = self.peak_in_flight = 0
        self.connections = self.open_connections = self.peak_connections = 0
        self.bytes_up = self.bytes_down = self.errors = 0
        self.reads_up = self.reads_down = 0  # data_received calls (socket reads) each way
        self.late: list[float] = []  # seconds each held response was released after `delay`
        self.cpu0 = _cpu()

    def as_dict(self) -> dict:
        late = sorted(self.late)

        def q(p: float) -> float | None:
            return round(late[min(len(late) - 1, int(p * len(late)))] * 1e3, 3) if late else None

        user, system = (now - then for now, then in zip(_cpu(), self.cpu0, strict=True))
        cpu = user + system
        per_request = cpu / self.requests * 1e6 if self.requests else None
        return {
            "delay_ms": self.delay * 1e3, "requests": self.requests,
            "responses": self.responses, "peak_in_flight": self.peak_in_flight,
            "connections": self.connections, "peak_connections": self.peak_connections,
            "bytes_up": self.bytes_up, "bytes_down": self.bytes_down, "errors": self.errors,
            "reads_up": self.reads_up, "reads_down": self.reads_down,
            "cpu_s": cpu, "user_s": user, "sys_s": system, "cpu_us_per_request": per_request,
            "late_ms": {"p50": q(0.5), "p99": q(0.99), "max": q(1.0)},
        }  # fmt: skip


class ClientSide(asyncio.Protocol):
    """The connection from a client; owns its upstream connection (:class:`UpstreamSide`)."""

    def __init__(self, stats: Stats, host: str, port: int) -> None:
        self.stats, self.host, self.port = stats, host, port
        self.transport: asyncio.Transport | None = None
        self.up: UpstreamSide | None = None
        self.pending: list[bytes] = []  # what arrived before the upstream connection was up
        self.requests = self.answered = 0  # on this connection
        self.req = Framer(REQUEST)
        self.resp = Framer(RESPONSE)
        self.eof = self.closed = False
        self._connecting: asyncio.Task | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.set_write_buffer_limits(WRITE_HIGH_WATER)
        s = self.stats
        s.connections += 1
        s.open_connections += 1
        s.peak_connections = max(s.peak_connections, s.open_connections)
        self._connecting = asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            _, up = await loop.create_connection(lambda: UpstreamSide(self), self.host, self.port)
        except OSError:
            self.stats.errors += 1
            self.close()
            return
        if self.closed:
            up.transport.close()
            return
        self.up = up
        for data in self.pending:
            up.transport.write(data)
        self.pending = []
        if self.eof and up.transport.can_write_eof():
            up.transport.write_eof()

    def data_received(self, data: bytes) -> None:
        s = self.stats
        s.bytes_up += len(data)
        s.reads_up += 1
        try:
            events = self.req.feed(data)
        except FramingError:
            s.errors += 1
            self.close()
            return
        for kind, _, info in events:
            if kind == "head":
                self.requests += 1
                self.resp.methods.append(str(info))
                s.requests += 1
                s.in_flight += 1
                if s.in_flight > s.peak_in_flight:
                    s.peak_in_flight = s.in_flight
        if self.up is None:
            self.pending.append(data)
        else:
            self.up.transport.write(data)

    def eof_received(self) -> bool:
        self.eof = True
        if self.up is not None and self.up.transport.can_write_eof():
            self.up.transport.write_eof()
        return True  # keep the other half open: the answers may still be on their way

    def answer_done(self) -> None:
        self.answered += 1
        self.stats.responses += 1
        self.stats.in_flight -= 1

    def pause_writing(self) -> None:  # the client reads slower than upstream sends
        if self.up is not None:
            self.up.paused_by_client = True
            self.up.update_reading()

    def resume_writing(self) -> None:
        if self.up is not None:
            self.up.paused_by_client = False
            self.up.update_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.close()

    def close(self) -> None:
        """Close both sides once; requests never answered stop counting as in flight."""
        if self.closed:
            return
        self.closed = True
        s = self.stats
        s.open_connections -= 1
        s.in_flight -= self.requests - self.answered
        self.answered = self.requests
        if self.transport is not None:
            self.transport.close()
        if self.up is not None:
            self.up.transport.close()


class UpstreamSide(asyncio.Protocol):
    """The connection to the server of one :class:`ClientSide`: frames the responses and holds
    each request's first response byte for ``delay`` seconds."""

    def __init__(self, client: ClientSide) -> None:
        self.client = client
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        # chunks not yet handed to the client: (data, its events or None if not framed yet,
        # index of the next event, offset of the next byte to forward)
        self.queue: deque[tuple[bytes, list | None, int, int]] = deque()
        self.holding = self.paused_by_client = self.reading_paused = False
        self.held_bytes = 0  # read from the server while holding
        self.delayed_for = -1  # index (answered count) of the request last delayed
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.set_write_buffer_limits(WRITE_HIGH_WATER)

    def data_received(self, data: bytes) -> None:
        self.client.stats.bytes_down += len(data)
        self.client.stats.reads_down += 1
        self.queue.append((data, None, 0, 0))
        if not self.holding:
            self._drain()
        else:
            self.held_bytes += len(data)
            if self.held_bytes > HOLD_LIMIT:
                self.update_reading()

    def eof_received(self) -> bool:
        self.lost = True  # forward what is queued, then close the client
        if not self.holding:
            self._drain()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if not self.holding:
            self._drain()

    def pause_writing(self) -> None:  # the server reads the uploads slower than they come
        if self.client.transport is not None:
            self.client.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.client.transport is not None and not self.client.closed:
            self.client.transport.resume_reading()

    def update_reading(self) -> None:
        want_paused = self.paused_by_client or (self.holding and self.held_bytes > HOLD_LIMIT)
        if want_paused != self.reading_paused and not self.transport.is_closing():
            self.reading_paused = want_paused
            if want_paused:
                self.transport.pause_reading()
            else:
                self.transport.resume_reading()

    def _drain(self) -> None:
        """Forward queued chunks up to the next response start that must be held (one
        write for everything forwarded: a held head and the body read meanwhile go out
        together)."""
        c = self.client
        out = c.transport
        delay = c.stats.delay
        pieces: list[bytes] = []
        while self.queue and not self.holding:
            if c.closed or out is None:
                self.queue.clear()
                return
            data, events, i, pos = self.queue.popleft()
            if events is None:
                try:
                    events = c.resp.feed(data)
                except FramingError:
                    c.stats.errors += 1
                    c.close()
                    return
            while i < len(events):
                kind, off, final = events[i]
                i += 1
                if kind == "start" and delay > 0 and self.delayed_for != c.answered:
                    self.delayed_for = c.answered
                    if off > pos:
                        pieces.append(data[pos:off])
                    self.queue.appendleft((data, events, i, off))
                    self._hold(delay)
                    break
                if kind == "end" and final:
                    c.answer_done()
            else:
                if pos < len(data):
                    pieces.append(data[pos:] if pos else data)
        if pieces and not c.closed and out is not None:
            out.write(pieces[0] if len(pieces) == 1 else b"".join(pieces))
        if self.lost and not self.holding:
            for kind, _, final in c.resp.eof():
                if kind == "end" and final:
                    c.answer_done()
            c.close()

    def _hold(self, delay: float) -> None:
        self.holding = True
        self.held_bytes = 0
        loop = asyncio.get_running_loop()
        due = loop.time() + delay
        loop.call_at(due, self._release, due)

    def _release(self, due: float) -> None:
        self.client.stats.late.append(asyncio.get_running_loop().time() - due)
        self.holding = False
        self.held_bytes = 0
        self.update_reading()
        self._drain()


async def serve(upstream: str, delay: float, port: int, stats_path: Path | None) -> None:
    """Run until SIGTERM/SIGINT, then write the statistics to ``stats_path``."""
    u = urlsplit(upstream)
    if u.scheme != "http" or not u.hostname:
        raise SystemExit(f"--upstream must be http://host:port, not {upstream!r}")
    host, uport = u.hostname, u.port or 80
    loop = asyncio.get_running_loop()
    stats = Stats(delay)
    server = await loop.create_server(
        lambda: ClientSide(stats, host, uport), "127.0.0.1", port, backlog=1024
    )
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    bound = server.sockets[0].getsockname()[1]
    stats.cpu0 = _cpu()
    print(f"listening http://127.0.0.1:{bound}", flush=True)
    await stop.wait()
    server.close()
    result = stats.as_dict()
    if stats_path is not None:
        tmp = stats_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(result))
        tmp.replace(stats_path)


class LatencyProxy:
    """The proxy as a subprocess (its CPU stays out of the client's process tree).

    ``with LatencyProxy(upstream_url, delay_s, stats_path) as p:`` -> ``p.endpoint_url``,
    ``p.pid``; ``p.stop()`` (also on exit) terminates it and returns its statistics dict
    (``{}`` if it wrote none; ``nice``: the niceness it ran at). Raises RuntimeError if it
    does not come up within 30 s.

    ``nice`` (default -10) is applied to the proxy process where permitted (root or
    CAP_SYS_NICE; otherwise it keeps the default 0): the proxy needs little CPU but needs it
    on time, or a held answer is released late while client and server keep both cores busy.
    """

    def __init__(self, upstream: str, delay: float, stats_path: Path, nice: int = -10) -> None:
        self.stats_path = Path(stats_path)
        self.stats_path.unlink(missing_ok=True)
        repo = str(Path(__file__).resolve().parent.parent)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [repo, env.get("PYTHONPATH")]))
        args = [sys.executable, "-m", "bench.latency_proxy", "--upstream", upstream,
                "--delay-ms", str(delay * 1e3), "--stats", str(self.stats_path)]  # fmt: skip
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, cwd=repo, env=env, text=True)
        self.pid = self.proc.pid
        try:
            os.setpriority(os.PRIO_PROCESS, self.pid, nice)
        except OSError:
            pass  # not permitted: it runs at the default priority
        self.nice = os.getpriority(os.PRIO_PROCESS, self.pid)
        line = self._first_line(30.0)
        if not line.startswith("listening "):
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError(f"latency proxy did not start (said {line!r})")
        self.endpoint_url = line.split(" ", 1)[1].strip()
        self.result: dict | None = None

    def _first_line(self, timeout: float) -> str:
        import selectors

        assert self.proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            if not sel.select(timeout):
                return ""
        return self.proc.stdout.readline()

    def stop(self) -> dict:
        if self.result is None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            if self.proc.stdout is not None:
                self.proc.stdout.close()
            try:
                self.result = dict(json.loads(self.stats_path.read_text()), nice=self.nice)
            except (OSError, ValueError):
                self.result = {}
            self.stats_path.unlink(missing_ok=True)
        return self.result

    def __enter__(self) -> LatencyProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.latency_proxy", description=__doc__)
    p.add_argument("--upstream", required=True, help="http://host:port of the S3 server")
    p.add_argument("--delay-ms", type=float, default=50.0, help="first-byte delay (%(default)s)")
    p.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free one)")
    p.add_argument("--stats", type=Path, default=None, help="write statistics here on exit")
    a = p.parse_args(argv)
    asyncio.run(serve(a.upstream, a.delay_ms / 1e3, a.port, a.stats))
    return 0


if __name__ == "__main__":
    sys.exit(main())
