"""Signed HTTP/1.1 requests to one endpoint, and the failures they raise.

* :class:`Signing` -- what both transports share: addressing (path or virtual style, the
  bucket's learned region), SigV4 signing (:meth:`Signing.prepare`) and the mapping of a
  socket/TLS exception to a :class:`NetworkFailure` (:meth:`Signing.failure`).
* :class:`Transport` -- blocking ``http.client`` keep-alive connections, one per host and
  calling thread, small bodies read into memory. The parent's range reads (``ranged.py``,
  ``open()``) use it; worker processes move bytes with the event-loop transport
  (``aiotransport.py``).

Failed responses raise :class:`HTTPFailure` with the S3 error code parsed from the body;
network failures raise :class:`NetworkFailure`. Both say whether a retry may help
(``transient``).
"""

from __future__ import annotations

import http.client
import socket
import threading
from typing import NamedTuple

from . import network, regions, s3xml
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
    #: TLS verification: True (system CAs), False (none) or a CA bundle path (see network.py)
    verify: bool | str = True


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
    """No usable response: refused, reset, timeout, short body, bad checksum (transient), or
    one no retry can fix (``transient=False``: an untrusted certificate, an unframed body,
    an ignored Range; see ``network.py`` and ``framing.py``)."""

    throttled = False
    status = 0

    def __init__(self, code: str, message: str, transient: bool = True) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.transient = transient


class LocalFileError(OSError):
    """Reading the local file being uploaded failed (not a regular file, shrank, I/O error).
    Not a network problem: the worker reports it as a permanent ``LocalIOError``."""


class Response(NamedTuple):
    status: int
    headers: dict[str, str]
    raw: http.client.HTTPResponse

    @property
    def chunked(self) -> bool:
        """Whether the body is framed by chunked encoding."""
        return bool(self.raw.chunked)


class Signing:
    """What both transports share: the endpoint, the signer, the regions learned from
    redirects (``regions.py``), the worker-wide checksum options, and how a request is
    addressed and signed (:meth:`prepare`)."""

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
        self._ssl = network.ssl_context(endpoint.verify) if endpoint.scheme == "https" else None
        self._regions = regions.BucketRegions(endpoint)

    def _target(self, bucket: str, key: str) -> tuple[str, str]:
        ep = self.endpoint
        base = self._regions.host(bucket)
        if ep.path_style or "." in bucket:
            return base, quote_path(f"/{bucket}/{key}" if key else f"/{bucket}")
        return f"{bucket}.{base}", quote_path("/" + key)

    def prepare(self, method: str, bucket: str, key: str, query: dict[str, str] | None,
                headers: dict[str, str] | None, body_length: int | None,
                payload_hash: str | None) -> tuple[str, str, dict[str, str]]:
        """``(host, request target, headers)`` of a signed request (``host`` header
        included) for ``bucket``'s current region; ``body_length`` None: no body."""
        host, path = self._target(bucket, key)
        qs = canonical_query(query)
        hdrs = dict(headers) if headers else {}
        hdrs.update(self.endpoint.headers)
        if body_length is not None:
            hdrs["content-length"] = str(body_length)
        elif method in ("PUT", "POST"):
            hdrs["content-length"] = "0"
        host_header = host if self.endpoint.port in (80, 443) else f"{host}:{self.endpoint.port}"
        signer = self._regions.signer(bucket, self.signer)
        signer.sign(method, host_header, path, qs, hdrs, payload_hash or UNSIGNED)
        hdrs["host"] = host_header
        return host, path + ("?" + qs if qs else ""), hdrs

    def failure(self, exc: BaseException, host: str, connecting: bool = False,
                code: str | None = None) -> NetworkFailure:
        """The :class:`NetworkFailure` for a socket/TLS/HTTP exception (``network.py``
        decides the code and whether it is transient); ``code`` (e.g. ``ShortBody`` for a
        failure mid-body) replaces a reset, timeout or generic code, not ``SSLError``."""
        found, transient, message = network.classify(exc, f"{host}:{self.endpoint.port}",
                                                     connecting)
        if code and found in ("ConnectionReset", "Timeout", "NetworkError"):
            found = code
        return NetworkFailure(found, message, transient)


def error_answer(status: int, reason: str, headers: dict[str, str], data: bytes) -> HTTPFailure:
    """The :class:`HTTPFailure` of an error answer (``status`` >= 300) and its body."""
    s3_code, s3_message = s3xml.parse_error(data)
    return HTTPFailure(status, s3_code or str(status), s3_message or reason, headers)


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
