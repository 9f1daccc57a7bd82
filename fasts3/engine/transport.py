"""The hot path: signed HTTP/1.1 requests on keep-alive connections, bodies streamed straight
into files (``readinto`` a reused buffer, ``os.pwrite`` at offsets) or out of them
(``socket.sendfile``), never whole objects in memory.

One :class:`Transport` lives in each worker process and is shared by its threads; each thread
has its own connection per host. Failed responses raise :class:`HTTPFailure` with the S3 error
code parsed from the body; network failures raise :class:`NetworkFailure`. Both say whether a
retry may help (``transient``).
"""

from __future__ import annotations

import errno
import http.client
import os
import socket
import ssl
import stat
import threading
from collections.abc import Callable
from typing import Any, NamedTuple

from . import s3xml
from .sigv4 import UNSIGNED, Signer, canonical_query, quote_path

BUFFER_SIZE = 1 << 20
_TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})
_TRANSIENT_CODES = frozenset(
    {"SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable", "RequestTimeTooSkewed",
     "OperationAborted", "Throttling", "ThrottlingException", "BadDigest", "IncompleteBody"}
)


class EndpointSpec(NamedTuple):
    """Where requests go. ``path_style`` puts the bucket in the path, else in the host.
    ``headers`` are ``(name, value)`` pairs (lower case) sent, signed, with every request
    (e.g. ``x-amz-request-payer``)."""

    scheme: str
    host: str
    port: int
    region: str
    path_style: bool = True
    headers: tuple[tuple[str, str], ...] = ()


class HTTPFailure(Exception):
    """S3 answered with an error status. ``code`` is the S3 error code (or the status)."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str]) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers

    @property
    def transient(self) -> bool:
        return self.status in _TRANSIENT_STATUS or self.code in _TRANSIENT_CODES

    @property
    def throttled(self) -> bool:
        """The server asks for fewer requests: SlowDown and friends, 429, and any 503 (S3
        answers HEAD with a bare 503, no body to name the code)."""
        return self.code in ("SlowDown", "Throttling", "ThrottlingException") or self.status in (
            429, 503)


class NetworkFailure(Exception):
    """No usable response: reset, timeout, short body, bad checksum. Always transient."""

    transient = True
    throttled = False
    status = 0

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class LocalFileError(OSError):
    """Reading the local file being uploaded failed (not a regular file, shrank, I/O error).
    Not a network problem: the worker reports it as a permanent ``LocalIOError``."""


class Response(NamedTuple):
    status: int
    headers: dict[str, str]
    raw: http.client.HTTPResponse


class Transport:
    """Signed S3 requests for one endpoint, shared by the threads of one worker."""

    def __init__(
        self,
        endpoint: EndpointSpec,
        signer: Signer,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
    ) -> None:
        self.endpoint = endpoint
        self.signer = signer
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        # Worker-wide options the handlers read (see checksums.py).
        self.verify_checksums = "fast"  # "off" | "fast" | "all": see checksums.for_download
        self.upload_checksums = "crc32"  # "off" | "crc32" | "md5": see checksums.upload_headers
        self._local = threading.local()
        self._ssl = ssl.create_default_context() if endpoint.scheme == "https" else None

    # -- connections -------------------------------------------------------------------
    def _connection(self, host: str) -> tuple[http.client.HTTPConnection, bool]:
        conns = getattr(self._local, "conns", None)
        if conns is None:
            conns = self._local.conns = {}
        conn = conns.get(host)
        if conn is not None:
            return conn, True
        if self._ssl is not None:
            conn = http.client.HTTPSConnection(
                host, self.endpoint.port, timeout=self.connect_timeout, context=self._ssl,
                blocksize=BUFFER_SIZE,
            )
        else:
            conn = http.client.HTTPConnection(
                host, self.endpoint.port, timeout=self.connect_timeout, blocksize=BUFFER_SIZE
            )
        conn.connect()
        conn.sock.settimeout(self.read_timeout)
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conns[host] = conn
        return conn, False

    def _drop(self, host: str) -> None:
        conn = getattr(self._local, "conns", {}).pop(host, None)
        if conn is not None:
            conn.close()

    def discard(self, bucket: str) -> None:
        """Close this thread's connection to ``bucket``'s host (e.g. a response body was
        left unread, so the connection cannot carry another request)."""
        self._drop(self._target(bucket, "")[0])

    def close(self) -> None:
        """Close this thread's connections."""
        for host in list(getattr(self._local, "conns", {})):
            self._drop(host)

    def buffer(self) -> memoryview:
        """This thread's reusable read buffer (``BUFFER_SIZE`` bytes)."""
        buf = getattr(self._local, "buf", None)
        if buf is None:
            buf = self._local.buf = memoryview(bytearray(BUFFER_SIZE))
        return buf

    # -- requests ----------------------------------------------------------------------
    def _target(self, bucket: str, key: str) -> tuple[str, str]:
        ep = self.endpoint
        if ep.path_style or "." in bucket:
            return ep.host, quote_path(f"/{bucket}/{key}" if key else f"/{bucket}")
        return f"{bucket}.{ep.host}", quote_path("/" + key)

    def send(
        self,
        method: str,
        bucket: str,
        key: str = "",
        query: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
        body_file: tuple[int, int, int] | None = None,
        payload_hash: str | None = None,
    ) -> Response:
        """Send one request and read the response headers (not the body).

        ``body_file`` is ``(fd, offset, length)``: that slice of an open file is sent with
        ``sendfile``. Error statuses (>= 300) raise :class:`HTTPFailure` after reading the
        (small) error body. A reused keep-alive connection the server had closed is retried
        once on a fresh connection.
        """
        host, path = self._target(bucket, key)
        qs = canonical_query(query)
        hdrs = dict(headers) if headers else {}
        hdrs.update(self.endpoint.headers)
        if body is not None:
            hdrs["content-length"] = str(len(body))
        elif body_file is not None:
            hdrs["content-length"] = str(body_file[2])
        elif method in ("PUT", "POST"):
            hdrs["content-length"] = "0"
        host_header = host if self.endpoint.port in (80, 443) else f"{host}:{self.endpoint.port}"
        self.signer.sign(method, host_header, path, qs, hdrs, payload_hash or UNSIGNED)
        hdrs["host"] = host_header
        target = path + ("?" + qs if qs else "")
        for attempt in (0, 1):
            conn, reused = self._connection(host)
            try:
                conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
                for name, value in hdrs.items():
                    conn.putheader(name, value)
                conn.endheaders()
                if body:
                    conn.sock.sendall(body)
                elif body_file is not None:
                    self._send_file(conn, *body_file)
                raw = conn.getresponse()
                break
            except LocalFileError:
                self._drop(host)  # the request went out incomplete
                raise
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as e:
                self._drop(host)
                if reused and attempt == 0:
                    continue  # stale keep-alive connection: once more on a fresh one
                raise NetworkFailure("ConnectionReset", str(e) or type(e).__name__) from None
            except (OSError, http.client.HTTPException) as e:
                self._drop(host)
                code = "Timeout" if isinstance(e, TimeoutError) else "NetworkError"
                raise NetworkFailure(code, str(e) or type(e).__name__) from None
        resp_headers = {k.lower(): v for k, v in raw.getheaders()}
        if raw.will_close:
            # The server will close; forget the connection once the body is read.
            self._local.conns.pop(host, None)
        if raw.status >= 300:
            try:
                # read() also for HEAD (no body: returns b""): it closes the response, and
                # http.client refuses the connection's next request while one is open.
                data = raw.read()
            except (OSError, http.client.HTTPException):
                self._drop(host)
                data = b""
            code, message = s3xml.parse_error(data)
            raise HTTPFailure(raw.status, code or str(raw.status), message or raw.reason,
                              resp_headers)
        return Response(raw.status, resp_headers, raw)

    @staticmethod
    def _send_file(conn: http.client.HTTPConnection, fd: int, offset: int, length: int) -> None:
        """Send ``length`` bytes of ``fd`` from ``offset``; local read problems raise
        :class:`LocalFileError`, socket problems ``OSError``."""
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise LocalFileError(errno.EISDIR, "not a regular file")
        if length == 0:
            return  # an empty file: socket.sendfile refuses a count of 0
        sock = conn.sock
        if isinstance(sock, ssl.SSLSocket):
            buf = bytearray(min(length, BUFFER_SIZE))
            mv = memoryview(buf)
            while length:
                try:
                    n = os.preadv(fd, [mv[: min(length, len(buf))]], offset)
                except OSError as e:
                    raise LocalFileError(e.errno, e.strerror) from None
                if n <= 0:
                    raise LocalFileError(errno.EIO, "local file shrank during upload")
                sock.sendall(mv[:n])
                offset += n
                length -= n
            return
        # socket.sendfile waits for writability itself (the socket has a timeout, so it is
        # non-blocking underneath and a raw os.sendfile would fail with EAGAIN).
        with open(fd, "rb", buffering=0, closefd=False) as f:
            sent = sock.sendfile(f, offset, length)
        if sent != length:
            raise LocalFileError(errno.EIO, "local file shrank during upload")

    def request(
        self,
        method: str,
        bucket: str,
        key: str = "",
        query: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
        body_file: tuple[int, int, int] | None = None,
        payload_hash: str | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        """Like :meth:`send` but also reads the (small) body: ``(status, headers, body)``."""
        resp = self.send(method, bucket, key, query, headers, body, body_file, payload_hash)
        data = resp.raw.read() if method == "HEAD" else self.read_all(bucket, resp)
        return resp.status, resp.headers, data

    def read_all(self, bucket: str, resp: Response) -> bytes:
        """Read a whole (small) response body, checking its length."""
        try:
            data = resp.raw.read()
        except (OSError, http.client.HTTPException) as e:
            self._drop(self._target(bucket, "")[0])
            raise NetworkFailure("ShortBody", str(e) or type(e).__name__) from None
        expected = resp.headers.get("content-length")
        if expected is not None and int(expected) != len(data):
            self._drop(self._target(bucket, "")[0])
            raise NetworkFailure("ShortBody", f"got {len(data)} of {expected} bytes")
        return data

    def read_into_file(
        self,
        bucket: str,
        resp: Response,
        fd: int,
        file_offset: int,
        length: int,
        progress: Callable[[int], None] | None = None,
        digest: Any = None,
    ) -> None:
        """Stream ``length`` body bytes into ``fd`` starting at ``file_offset``; feed them to
        ``digest.update`` too if given.

        Raises :class:`NetworkFailure` (``ShortBody``) if the body ends early.
        """
        raw = resp.raw
        buf = self.buffer()
        try:
            while length > 0:
                n = raw.readinto(buf[: min(length, BUFFER_SIZE)])
                if not n:
                    raise NetworkFailure("ShortBody", f"body ended {length} bytes early")
                view = buf[:n]
                if digest is not None:
                    digest.update(view)
                while view:
                    w = os.pwrite(fd, view, file_offset)
                    view = view[w:]
                    file_offset += w
                length -= n
                if progress is not None:
                    progress(n)
        except (http.client.HTTPException, ConnectionError, TimeoutError) as e:
            self._drop(self._target(bucket, "")[0])
            raise NetworkFailure("ShortBody", str(e) or type(e).__name__) from None
        except BaseException:
            # A short body, a full disk, an interrupt: the connection is mid-body, unusable.
            self._drop(self._target(bucket, "")[0])
            raise
