"""The keep-alive connections of one worker (``aioconn.Connection``), per host.

Idle connections are reused last in, first out (the warmest first); a connection the server
closed while idle is skipped. Host names are resolved once a minute (with the loop's
``getaddrinfo``, which asyncio runs on a helper thread) and their addresses used in turn, so
new connections spread over them. :meth:`ConnectionPool.tick` -- called by the worker a few
times per second -- aborts busy connections that stayed silent longer than ``read_timeout``.
All connections read into the pool's one buffer (see ``aioconn.py``).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time

from . import network
from .aioconn import BODY, BUFFER_SIZE, DONE, HEAD, IDLE, SENDING, Connection
from .transport import NetworkFailure

DNS_TTL = 60.0


class ConnectionPool:
    """Keep-alive connections of one worker to the hosts of one endpoint (see the module
    doc). ``ssl_context`` None: plain TCP."""

    def __init__(self, port: int, ssl_context: ssl.SSLContext | None, connect_timeout: float,
                 read_timeout: float) -> None:
        self.loop = asyncio.get_running_loop()
        self.port = port
        self.ssl = ssl_context
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.buffer = bytearray(BUFFER_SIZE)
        self.view = memoryview(self.buffer)
        self.idle: dict[str, list[Connection]] = {}
        self.busy: set[Connection] = set()
        self._addrs: dict[str, tuple[float, list[str], int]] = {}

    async def acquire(self, host: str) -> Connection:
        """An idle connection to ``host`` (``reused``), else a new one."""
        idle = self.idle.get(host)
        while idle:
            conn = idle.pop()
            if not conn.closed:
                conn.reused = True
                return conn
        return await self._connect(host)

    def release(self, conn: Connection) -> None:
        """Done with ``conn``: back to the idle list if its answer was read to the end and
        the server keeps it open, else closed (aborted: unread data is dropped)."""
        self.busy.discard(conn)
        if conn.state == DONE and conn.reusable and not conn.closed:
            conn.state = IDLE
            conn.sink = None
            self.idle.setdefault(conn.host, []).append(conn)
        elif not conn.closed:
            conn.closed = True
            conn.transport.abort()

    async def _connect(self, host: str) -> Connection:
        where = f"{host}:{self.port}"
        try:
            addr = await self._resolve(host)
            _, conn = await asyncio.wait_for(self.loop.create_connection(
                lambda: Connection(self, host, where), addr, self.port, ssl=self.ssl,
                server_hostname=host if self.ssl is not None else None),
                self.connect_timeout)
        except (OSError, asyncio.TimeoutError) as e:  # SSLError, gaierror: OSErrors
            if not isinstance(e, OSError):  # Python 3.10: not the builtin TimeoutError
                e = TimeoutError(f"no connection within {self.connect_timeout:g} s")
            code, transient, message = network.classify(e, where, True)
            raise NetworkFailure(code, message, transient) from None
        return conn

    async def _resolve(self, host: str) -> str:
        """An address of ``host`` (the name itself for an IP literal); lookups are cached
        for ``DNS_TTL`` seconds and their addresses used in turn."""
        if _is_ip(host):
            return host
        now = time.monotonic()
        cached = self._addrs.get(host)
        if cached is None or cached[0] < now:
            infos = await self.loop.getaddrinfo(host, self.port, type=socket.SOCK_STREAM)
            addrs = list(dict.fromkeys(str(info[4][0]) for info in infos))
            cached = (now + DNS_TTL, addrs, 0)
        expiry, addrs, turn = cached
        self._addrs[host] = (expiry, addrs, turn + 1)
        return addrs[turn % len(addrs)]

    def tick(self, seconds: float) -> None:
        """``seconds`` passed: abort busy connections silent for longer than
        ``read_timeout`` (a request waiting on its answer, a body being read or sent)."""
        for conn in list(self.busy):
            if conn.state in (SENDING, HEAD) or (conn.state == BODY and conn.sink):
                conn.silent += seconds
                if conn.silent > self.read_timeout:
                    conn.abort(TimeoutError(f"no data for {self.read_timeout:g} s"))

    def close(self) -> None:
        """Drop every connection."""
        for conn in [c for idle in self.idle.values() for c in idle] + list(self.busy):
            if not conn.closed and conn.transport is not None:
                conn.closed = True
                conn.transport.abort()
        self.idle.clear()
        self.busy.clear()


def _is_ip(host: str) -> bool:
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
            return True
        except OSError:
            continue
    return False
