"""One keep-alive HTTP/1.1 connection on a worker's event loop: a non-blocking socket driven
by asyncio, TLS through ``ssl`` (asyncio's SSL transport), framing by ``http1.py``; kept in
a :class:`~fasts3.engine.aiopool.ConnectionPool`.

* :class:`Connection` is an ``asyncio.BufferedProtocol``. The loop reads straight into the
  pool's one shared buffer: every read is consumed before the next can happen (one thread,
  one loop), so a single ``BUFFER_SIZE`` buffer serves every connection of the worker.
  Head bytes are parsed; body bytes go to the *sink* the caller attached (a file written
  with ``os.pwrite``, memory) or, until one is attached, to a small per-connection backlog
  (reading pauses above ``BACKLOG_MAX``). Uploads leave a file with ``os.sendfile`` on
  plain TCP (zero copy), or in ``pread`` chunks through TLS.
* The pool aborts a busy connection that stays silent longer than ``read_timeout``
  (``silent`` counts the seconds; no timer per read).

Failures reach the caller as :class:`~fasts3.engine.transport.NetworkFailure` (classified
by ``network.py``; a failure mid-body is ``ShortBody``), or as ``OSError`` for local file
errors, or :class:`Stale` for a reused connection the server had closed before answering.
"""

from __future__ import annotations

import asyncio
import errno
import os
import stat
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import http1, network
from .http1 import CHUNKED, LENGTH, NO_BODY, UNTIL_CLOSE, Head
from .transport import LocalFileError, NetworkFailure

if TYPE_CHECKING:
    from .aiopool import ConnectionPool

BUFFER_SIZE = 1 << 20
BACKLOG_MAX = 256 << 10
SENDFILE_CHUNK = 8 << 20
IDLE, SENDING, HEAD, BODY, DONE, BROKEN = range(6)
_NETWORK_ERRNOS = frozenset({errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN, errno.ETIMEDOUT,
                             errno.ECONNABORTED, errno.EHOSTUNREACH, errno.ENETUNREACH})

Sink = Callable[[memoryview], None]


class Stale(Exception):
    """A reused keep-alive connection was closed by the server before any answer: the
    request may be sent again on a fresh connection."""


class Connection(asyncio.BufferedProtocol):
    """One HTTP/1.1 connection (see the module doc). Used by one request at a time."""

    def __init__(self, pool: ConnectionPool, host: str, where: str) -> None:
        self.pool = pool
        self.host = host
        self.where = where
        self.transport: Any = None
        self.tls = False
        self.state = IDLE
        self.closed = False
        self.reused = False
        self.silent = 0.0  # seconds without progress while waiting on the network
        self._waiter: asyncio.Future[Any] | None = None  # the answer's head or body
        self._drain: asyncio.Future[None] | None = None  # room to write
        self._error: BaseException | None = None
        self._write_paused = False
        self._reset("GET")

    def _reset(self, method: str) -> None:
        self.method = method
        self.head: Head | None = None
        self.kind = NO_BODY
        self.left = 0
        self.got = 0
        self.want: int | None = None
        self.overflow = False
        self.reusable = True
        self.sink: Sink | None = None
        self._decoder: http1.ChunkedDecoder | None = None
        self._head_buf = bytearray()
        self._backlog = bytearray()
        self._paused = False

    # -- asyncio callbacks ---------------------------------------------------------------
    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.tls = transport.get_extra_info("sslcontext") is not None
        if not self.tls:
            transport.set_write_buffer_limits(0)  # pause_writing = bytes still queued

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.pool.view

    def buffer_updated(self, nbytes: int) -> None:
        self.silent = 0.0
        try:
            if self.state == BODY:
                self._body_bytes(self.pool.buffer, 0, nbytes)
            elif self.state in (HEAD, SENDING):
                self._head_bytes(self.pool.buffer, nbytes)
            else:  # nothing was asked: the connection is out of step
                self.reusable = False
                self._fail(NetworkFailure("BadResponse", "data without a request"))
        except NetworkFailure as e:  # bad framing
            self._fail(e)
        except OSError as e:  # the sink's (a local file's) failure, e.g. ENOSPC
            self._fail(e, local=True)
        except Exception as e:  # noqa: BLE001 - a bug: fail the request, never the loop
            self._fail(e, local=True)

    def eof_received(self) -> bool:
        self._lost(None)
        return False

    def connection_lost(self, exc: BaseException | None) -> None:
        self._lost(exc)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        drain, self._drain = self._drain, None
        if drain is not None and not drain.done():
            drain.set_result(None)

    # -- reading -------------------------------------------------------------------------
    def _head_bytes(self, buf: bytearray, end: int) -> None:
        start = 0
        while True:
            if self._head_buf:
                self._head_buf += buf[start:end]
                buf, start, end = self._head_buf, 0, len(self._head_buf)
                self._head_buf = bytearray()
            idx = buf.find(b"\r\n\r\n", start, end)
            if idx < 0:
                if end - start > http1.MAX_HEAD:
                    raise NetworkFailure("BadResponse", "response head too large")
                self._head_buf = bytearray(memoryview(buf)[start:end])
                return
            head = http1.parse_head(buf[start:idx])
            start = idx + 4
            if 100 <= head.status < 200 and head.status != 101:
                continue  # an interim answer (100 Continue): the real one follows
            break
        self.head = head
        self.kind, length = http1.framing(self.method, head)
        self.left = length or 0
        if head.headers.get("connection", "").lower() == "close":
            self.reusable = False
        if self.state == SENDING:
            self.reusable = False  # answered before the body was sent: do not reuse
        self.state = BODY
        if self.kind == CHUNKED:
            self._decoder = http1.ChunkedDecoder()
        elif self.kind == NO_BODY or (self.kind == LENGTH and not self.left):
            self._end(extra=end - start)
        self._wake(head)
        if start < end and self.state == BODY:
            self._body_bytes(buf, start, end)

    def _body_bytes(self, buf: bytearray, start: int, end: int) -> None:
        if self.sink is None:
            self._backlog += memoryview(buf)[start:end]  # one copy
            if len(self._backlog) > BACKLOG_MAX and not self._paused:
                self._paused = True
                self.transport.pause_reading()
            return
        if self.kind == LENGTH:
            n = min(end - start, self.left)
            take = n if self.want is None else min(n, self.want - self.got)
            if take:
                self.sink(memoryview(buf)[start:start + take])
                self.got += take
            self.left -= take
            if not self.left:
                self._end(extra=end - start - take)
            elif self.want is not None and self.got >= self.want:
                self._end(overflow=True)  # the rest of the body is not wanted
        elif self.kind == CHUNKED:
            assert self._decoder is not None
            pos = self._decoder.feed(buf, start, end, self._deliver)
            if self._decoder.done and self.state == BODY:
                self._end(extra=end - pos)
        else:
            self._deliver(memoryview(buf)[start:end])

    def _deliver(self, view: memoryview) -> None:
        if self.state != BODY:
            return
        if self.want is not None and self.got + len(view) > self.want:
            room = self.want - self.got
            if room:
                self.sink(view[:room])  # type: ignore[misc]
                self.got += room
            self._end(overflow=True)
            return
        self.sink(view)  # type: ignore[misc]
        self.got += len(view)

    def _end(self, extra: int = 0, overflow: bool = False) -> None:
        """The body is in (or no more of it is wanted: ``overflow``)."""
        self.state = DONE
        self.overflow = overflow
        if overflow or extra or self.kind == UNTIL_CLOSE:
            self.reusable = False
            if not self.closed:
                self.transport.pause_reading()  # nothing more is wanted from it
        self._wake(True)

    def _lost(self, exc: BaseException | None) -> None:
        self.closed = True
        if self.state == BODY and self.kind == UNTIL_CLOSE and exc is None:
            self._end()  # the body of an unframed answer ends with the connection
            return
        if self.state in (SENDING, HEAD, BODY):
            if exc is None:
                if self.state == BODY:
                    exc = NetworkFailure("ShortBody", f"body from {self.where} ended "
                                         f"{self.left if self.kind == LENGTH else 'some'} "
                                         "bytes early")
                else:
                    exc = ConnectionResetError("remote end closed the connection without "
                                               "an answer")
            self._fail(exc)

    # -- failures and waiting --------------------------------------------------------------
    def _fail(self, exc: BaseException, local: bool = False) -> None:
        """Record the connection's failure (``local``: a local file's, passed on as it is;
        else mapped to a :class:`NetworkFailure`), close it and wake the request waiting on
        it."""
        if self._error is None:
            self._error = exc if local else self._map(exc)
        self.reusable = False
        self.state = BROKEN
        if not self.closed and self.transport is not None:
            self.closed = True
            self.transport.abort()
        for waiter in (self._waiter, self._drain):
            if waiter is not None and not waiter.done():
                waiter.set_exception(self._error)
        self._waiter = self._drain = None

    def _map(self, exc: BaseException) -> BaseException:
        if isinstance(exc, NetworkFailure):
            return exc
        if (self.reused and self.state in (SENDING, HEAD) and self.head is None
                and not self._head_buf and isinstance(exc, ConnectionError)):
            return Stale(str(exc))
        code, transient, message = network.classify(exc, self.where, False)
        if self.state == BODY and code in ("ConnectionReset", "Timeout", "NetworkError"):
            code = "ShortBody"
        return NetworkFailure(code, message, transient)

    def abort(self, exc: BaseException) -> None:
        """Fail the request in progress with ``exc`` (e.g. a timeout) and drop the
        connection."""
        self._fail(exc)

    def _wake(self, value: Any) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(value)

    async def _wait(self) -> Any:
        if self._error is not None:
            raise self._error
        self._waiter = self.pool.loop.create_future()
        return await self._waiter

    async def _drained(self) -> None:
        """Wait until the transport took what was written (``pause_writing`` lifted)."""
        while self._write_paused:
            if self._error is not None:
                raise self._error
            self._drain = self.pool.loop.create_future()
            await self._drain

    # -- a request -----------------------------------------------------------------------
    async def roundtrip(self, method: str, head: bytes, body: bytes | None,
                        body_file: tuple[int, int, int] | None) -> Head:
        """Send a request (``head`` bytes, then ``body`` or ``(fd, offset, length)`` of a
        file) and wait for the answer's head; its body is read with :meth:`read_body`."""
        self._reset(method)
        self.state = SENDING
        self.pool.busy.add(self)
        if body and len(body) <= 65536:
            self.transport.write(head + body)
        else:
            self.transport.write(head)
            if body:
                self.transport.write(body)
        if body_file is not None:
            await self._send_file(*body_file)
        if self.state == SENDING:
            self.state = HEAD
        if self.head is not None:
            return self.head
        return await self._wait()

    async def read_body(self, sink: Sink, want: int | None) -> int:
        """Hand the body to ``sink``, at most ``want`` bytes (``None``: all of it); return
        the bytes delivered once the body ended or ``want`` was reached (``overflow`` then
        says whether more followed)."""
        self.sink, self.want = sink, want
        if self._backlog:
            data, self._backlog = self._backlog, bytearray()
            self._body_bytes(data, 0, len(data))
        if self._paused:
            self._paused = False
            if not self.closed:
                self.transport.resume_reading()
        while self.state == BODY:
            await self._wait()
        if self.state == BROKEN:
            raise self._error  # type: ignore[misc]
        return self.got

    # -- sending a file ------------------------------------------------------------------
    async def _send_file(self, fd: int, offset: int, length: int) -> None:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise LocalFileError(errno.EISDIR, "not a regular file")
        if not length:
            return
        if self.tls:
            await self._send_copied(fd, offset, length)
            return
        await self._drained()  # our head must leave before the file's bytes
        self._check_open()
        sfd = self.transport.get_extra_info("socket").fileno()
        wfd = -1
        try:
            while length:
                try:
                    n = os.sendfile(sfd, fd, offset, min(length, SENDFILE_CHUNK))
                except BlockingIOError:
                    if wfd < 0:
                        wfd = os.dup(sfd)  # the transport owns sfd's registration
                    await self._writable(wfd)
                    # The connection may have been lost while we waited, and its socket
                    # closed: sfd is then no socket of ours (EBADF, or another connection's
                    # number). Nothing runs between this check and the next sendfile.
                    self._check_open()
                    continue
                except OSError as e:
                    if isinstance(e, ConnectionError) or e.errno in _NETWORK_ERRNOS:
                        self._fail(e)
                        raise self._error from None  # type: ignore[misc]
                    raise LocalFileError(e.errno, e.strerror) from None
                if not n:
                    raise LocalFileError(errno.EIO, "local file shrank during upload")
                offset += n
                length -= n
                self.silent = 0.0
        finally:
            if wfd >= 0:
                self.pool.loop.remove_writer(wfd)
                os.close(wfd)

    def _check_open(self) -> None:
        """Raise the connection's failure if it was lost (or closed) meanwhile."""
        if self.closed or self._error is not None:
            raise self._error or NetworkFailure("ConnectionReset",
                                                f"connection to {self.where} closed")

    async def _writable(self, wfd: int) -> None:
        if self._error is not None:
            raise self._error
        fut = self._drain = self.pool.loop.create_future()

        def ready() -> None:
            self.pool.loop.remove_writer(wfd)
            if not fut.done():
                fut.set_result(None)

        self.pool.loop.add_writer(wfd, ready)
        await fut

    async def _send_copied(self, fd: int, offset: int, length: int) -> None:
        while length:
            try:
                data = os.pread(fd, min(length, BUFFER_SIZE), offset)
            except OSError as e:
                raise LocalFileError(e.errno, e.strerror) from None
            if not data:
                raise LocalFileError(errno.EIO, "local file shrank during upload")
            if self.closed:
                raise self._error or NetworkFailure("ConnectionReset", f"connection to "
                                                    f"{self.where} closed")
            self.transport.write(data)
            offset += len(data)
            length -= len(data)
            self.silent = 0.0
            await self._drained()
