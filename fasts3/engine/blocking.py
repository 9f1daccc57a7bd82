"""The blocking transport: signed S3 requests on ``http.client`` keep-alive connections, one
per host and calling thread, small bodies read into memory. The parent process uses it for
the range reads of ``open()`` (``ranged.py``); worker processes use the event-loop transport
(``aiotransport.py``). Addressing, signing, region redirects and the failure types are
shared (``transport.py``).
"""

from __future__ import annotations

import http.client
import socket
import threading
from typing import NamedTuple

from .sigv4 import Signer
from .transport import (
    BUFFER_SIZE,
    EndpointSpec,
    HTTPFailure,
    NetworkFailure,
    Signing,
    error_answer,
)


class Response(NamedTuple):
    status: int
    headers: dict[str, str]
    raw: http.client.HTTPResponse

    @property
    def chunked(self) -> bool:
        """Whether the body is framed by chunked encoding."""
        return bool(self.raw.chunked)



class Transport(Signing):
    """Signed S3 requests for one endpoint on blocking ``http.client`` connections, one per
    host and calling thread (used by ``ranged.py`` in the parent process)."""

    def __init__(
        self,
        endpoint: EndpointSpec,
        signer: Signer,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
    ) -> None:
        super().__init__(endpoint, signer, connect_timeout, read_timeout)
        self._local = threading.local()

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
        try:
            conn.connect()
            conn.sock.settimeout(self.read_timeout)
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (OSError, http.client.HTTPException) as e:
            conn.close()
            raise self.failure(e, host, connecting=True) from None
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

    # -- requests ----------------------------------------------------------------------
    def send(
        self,
        method: str,
        bucket: str,
        key: str = "",
        query: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
        payload_hash: str | None = None,
    ) -> Response:
        """Send one request and read the response headers (not the body).

        Error statuses (>= 300) raise :class:`HTTPFailure` after reading the (small) error
        body. A reused keep-alive connection the server had closed is retried
        once on a fresh connection. A redirect to the bucket's region (301 or 400 with
        ``x-amz-bucket-region``, see ``regions.py``) is followed once and remembered for the
        bucket. Network problems raise :class:`NetworkFailure`.
        """
        used = self._regions.region(bucket)
        try:
            return self._send(method, bucket, key, query, headers, body, payload_hash)
        except HTTPFailure as e:
            if not self._regions.learn(bucket, e.status, e.code, e.headers, used):
                raise
        return self._send(method, bucket, key, query, headers, body, payload_hash)

    def _send(self, method: str, bucket: str, key: str, query: dict[str, str] | None,
              headers: dict[str, str] | None, body: bytes | None,
              payload_hash: str | None) -> Response:
        size = len(body) if body is not None else None
        host, target, hdrs = self.prepare(method, bucket, key, query, headers, size,
                                          payload_hash)
        for attempt in (0, 1):
            conn, reused = self._connection(host)
            try:
                conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
                for name, value in hdrs.items():
                    conn.putheader(name, value)
                conn.endheaders()
                if body:
                    conn.sock.sendall(body)
                raw = conn.getresponse()
                break
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as e:
                self._drop(host)
                if reused and attempt == 0:
                    continue  # stale keep-alive connection: once more on a fresh one
                raise self.failure(e, host) from None
            except (OSError, http.client.HTTPException) as e:
                self._drop(host)
                raise self.failure(e, host) from None
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
            raise error_answer(raw.status, str(raw.reason or ""), resp_headers, data)
        return Response(raw.status, resp_headers, raw)

    def request(
        self,
        method: str,
        bucket: str,
        key: str = "",
        query: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
        payload_hash: str | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        """Like :meth:`send` but also reads the (small) body: ``(status, headers, body)``."""
        resp = self.send(method, bucket, key, query, headers, body, payload_hash)
        data = resp.raw.read() if method == "HEAD" else self.read_all(bucket, resp)
        return resp.status, resp.headers, data

    def read_all(self, bucket: str, resp: Response, limit: int | None = None) -> bytes:
        """Read a whole (small) response body (not of a HEAD), checking its length.

        With ``limit``, a body longer than ``limit`` bytes is not read into memory: the
        connection is dropped and ``NetworkFailure("RangeIgnored", transient=False)`` raised
        (callers pass it when they asked for a range of that size)."""
        host = self._target(bucket, "")[0]
        try:
            if limit is None or resp.raw.length is not None:
                data = resp.raw.read()
            else:  # chunked or close-delimited: read no more than we can use
                data = resp.raw.read(limit + 1)
                if len(data) > limit:
                    self._drop(host)
                    raise NetworkFailure("RangeIgnored", f"the answer is longer than the "
                                         f"{limit} bytes asked for", transient=False)
                data += resp.raw.read()
        except (OSError, http.client.HTTPException) as e:
            self._drop(host)
            raise self.failure(e, host, code="ShortBody") from None
        expected = resp.headers.get("content-length")
        if expected is not None and int(expected) != len(data):
            self._drop(self._target(bucket, "")[0])
            raise NetworkFailure("ShortBody", f"got {len(data)} of {expected} bytes")
        return data
