"""The worker's transport: signed S3 requests driven by its event loop (``aioconn.py``), with
the same contract as the blocking :class:`~fasts3.engine.transport.Transport` -- addressing,
signing and region redirects come from the shared :class:`~fasts3.engine.transport.Signing`,
error answers raise :class:`~fasts3.engine.transport.HTTPFailure`, network problems
:class:`~fasts3.engine.transport.NetworkFailure`.

Bodies stream straight into files (``read_into_file``: the loop's shared buffer, then
``os.pwrite`` at the next offset) or out of them (``sendfile``); small ones (XML) are read
into memory (``read_all``). Every :class:`Answer` must end with its body read, or
:meth:`Answer.drop` (which closes its connection: an unread body cannot be skipped).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from typing import Any

from . import aioconn, files
from .aioconn import Connection, Stale
from .aiopool import ConnectionPool
from .http1 import CHUNKED, LENGTH, UNTIL_CLOSE, request_head
from .sigv4 import Signer
from .transport import EndpointSpec, HTTPFailure, NetworkFailure, Signing, error_answer


class Answer:
    """A response whose head has arrived: ``status``, ``headers`` (lower-case names),
    ``chunked``; its body is still on the connection."""

    __slots__ = ("status", "reason", "headers", "chunked", "length", "_conn", "_pool")

    def __init__(self, pool: ConnectionPool, conn: Connection) -> None:
        head = conn.head
        assert head is not None
        self.status = head.status
        self.reason = head.reason
        self.headers = head.headers
        self.chunked = conn.kind == CHUNKED
        self.length = conn.left if conn.kind == LENGTH else None
        self._conn: Connection | None = conn
        self._pool = pool

    @property
    def unframed(self) -> bool:
        """The body ends only when the server closes the connection."""
        return self._conn is not None and self._conn.kind == UNTIL_CLOSE

    async def read(self, sink: aioconn.Sink, want: int | None) -> tuple[int, bool]:
        """Hand at most ``want`` body bytes (``None``: all) to ``sink``; return ``(bytes,
        overflow)`` -- ``overflow``: more body followed (the connection is then closed).
        The connection is released either way; failures raise."""
        conn = self._conn
        if conn is None:
            raise RuntimeError("the body of this answer was already read or dropped")
        self._conn = None
        try:
            got = await conn.read_body(sink, want)
            return got, conn.overflow
        finally:
            self._pool.release(conn)

    def drop(self) -> None:
        """Leave the body unread: close the connection (idempotent)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.reusable = False
            self._pool.release(conn)


class AsyncTransport(Signing):
    """Signed S3 requests for one endpoint from one event loop (create it inside the loop).
    ``connect_timeout`` bounds a new connection, ``read_timeout`` any silence while a
    request waits for, reads or sends bytes."""

    def __init__(self, endpoint: EndpointSpec, signer: Signer, connect_timeout: float = 10.0,
                 read_timeout: float = 60.0) -> None:
        super().__init__(endpoint, signer, connect_timeout, read_timeout)
        self.pool = ConnectionPool(endpoint.port, self._ssl, connect_timeout, read_timeout)
        #: free-space checks of the downloads this worker creates (one statvfs per second
        #: and directory, and per large object)
        self.space = files.SpaceCheck()
        #: ``announce(task_id, value)``: an early word on a task still running (set by the
        #: worker; see ``handlers.get``), or ``None``
        self.announce: Callable[[int, Any], None] | None = None
        #: task id -> ETag a running download announced its parts with ("" if none): its
        #: retries ask for that version only (the worker forgets it when the task ends)
        self.pinned: dict[int, str] = {}
        #: ``with commit_gate():`` around giving a download its final name (the head start
        #: closes it when stopped: ``inproc.CommitGate``)
        self.commit_gate: Callable[[], contextlib.AbstractContextManager[Any]] = \
            contextlib.nullcontext

    async def send(self, method: str, bucket: str, key: str = "",
                   query: dict[str, str] | None = None, headers: dict[str, str] | None = None,
                   body: bytes | None = None, body_file: tuple[int, int, int] | None = None,
                   payload_hash: str | None = None) -> Answer:
        """Send one request and wait for the answer's head (not its body).

        ``body_file`` is ``(fd, offset, length)``: that slice of an open file is sent
        (``sendfile`` on plain TCP). Error statuses (>= 300) raise :class:`HTTPFailure`
        after reading the (small) error body. A reused keep-alive connection the server had
        closed is retried once on a fresh one. A region redirect (``regions.py``) is
        followed once and remembered for the bucket. Network problems raise
        :class:`NetworkFailure`; local read errors of ``body_file`` ``LocalFileError``.
        """
        used = self._regions.region(bucket)
        try:
            return await self._send(method, bucket, key, query, headers, body, body_file,
                                    payload_hash)
        except HTTPFailure as e:
            if not self._regions.learn(bucket, e.status, e.code, e.headers, used):
                raise
        return await self._send(method, bucket, key, query, headers, body, body_file,
                                payload_hash)

    async def _send(self, method: str, bucket: str, key: str, query: dict[str, str] | None,
                    headers: dict[str, str] | None, body: bytes | None,
                    body_file: tuple[int, int, int] | None,
                    payload_hash: str | None) -> Answer:
        size = len(body) if body is not None else body_file[2] if body_file else None
        host, target, hdrs = self.prepare(method, bucket, key, query, headers, size,
                                          payload_hash)
        head = request_head(method, target, hdrs)
        for attempt in (0, 1):
            conn = await self.pool.acquire(host)
            try:
                await conn.roundtrip(method, head, body, body_file)
                break
            except Stale as e:
                self.pool.release(conn)
                if attempt == 0:
                    continue  # a stale keep-alive connection: once more on a fresh one
                raise self.failure(ConnectionResetError(str(e)), host) from None
            except BaseException:
                conn.reusable = False
                self.pool.release(conn)
                raise
        answer = Answer(self.pool, conn)
        if answer.status >= 300:
            try:
                data = await self.read_all(answer)  # a HEAD answer has none: b""
            except NetworkFailure:
                data = b""
            raise error_answer(answer.status, answer.reason, answer.headers, data)
        return answer

    async def request(self, method: str, bucket: str, key: str = "",
                      query: dict[str, str] | None = None,
                      headers: dict[str, str] | None = None, body: bytes | None = None,
                      body_file: tuple[int, int, int] | None = None,
                      payload_hash: str | None = None) -> tuple[int, dict[str, str], bytes]:
        """Like :meth:`send` but also reads the (small) body: ``(status, headers, body)``."""
        answer = await self.send(method, bucket, key, query, headers, body, body_file,
                                 payload_hash)
        data = await self.read_all(answer)
        return answer.status, answer.headers, data

    async def read_all(self, answer: Answer, limit: int | None = None) -> bytes:
        """Read a whole (small) body into memory. With ``limit``, a chunked or unframed body
        longer than ``limit`` bytes is not read on: ``NetworkFailure("RangeIgnored",
        transient=False)`` (callers pass it when they asked for a range of that size)."""
        chunks: list[bytes] = []
        got, overflow = await answer.read(lambda v: chunks.append(bytes(v)),
                                          limit if answer.length is None else None)
        if overflow:
            raise NetworkFailure("RangeIgnored", f"the answer is longer than the {limit} "
                                 "bytes asked for", transient=False)
        return b"".join(chunks)

    async def read_into_file(self, answer: Answer, fd: int, file_offset: int,
                             length: int | None, progress: Callable[[int], None] | None = None,
                             digest: Any = None) -> int:
        """Stream ``length`` body bytes into ``fd`` from ``file_offset`` (feeding
        ``digest.update`` too); ``length=None`` reads a chunked body to its end. A longer
        Content-Length body is cut there (its connection closed). Returns the bytes
        written. Raises :class:`NetworkFailure` (``ShortBody``, or the socket/TLS failure's
        code) if the body ends early or the connection fails, ``BadRange`` if a chunked
        body runs past ``length``; ``OSError`` for local write errors."""
        pos = file_offset

        def sink(view: memoryview) -> None:
            nonlocal pos
            if digest is not None:
                digest.update(view)
            n = len(view)
            while view:
                w = os.pwrite(fd, view, pos)
                view = view[w:]
                pos += w
            if progress is not None:
                progress(n)

        chunked = answer.chunked or answer.unframed
        got, overflow = await answer.read(sink, length)
        if overflow and chunked:
            raise NetworkFailure("BadRange", "the body is longer than announced")
        if length is not None and got < length:
            raise NetworkFailure("ShortBody", f"body ended {length - got} bytes early")
        return got

    def close(self) -> None:
        """Close every connection."""
        self.pool.close()
