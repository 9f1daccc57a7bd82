"""A fault-injecting HTTP/1.1 proxy for the tests: client -> proxy (127.0.0.1) -> S3 server.

Requests are forwarded byte for byte (the ``Host`` header included), so SigV4 signatures made
for the proxy's ``host:port`` still verify at the server. Each request may instead get a fault,
drawn at random (seeded) from configurable rates:

``slowdown``        503 SlowDown with a proper S3 XML error body (request not forwarded)
``error500``        500 InternalError (not forwarded)
``error``           ``custom_error = (status, code, message)`` (not forwarded), e.g. ExpiredToken
``reset_before``    the connection is reset (RST) before any response (not forwarded)
``reset_after``     forwarded; the response headers are sent, then the connection is reset
``truncate``        forwarded; headers and half the body are sent, then the connection closes
``stall``           forwarded; the response waits ``stall_seconds`` before its headers
``stall_body``      forwarded; headers and half the body, then a ``stall_seconds`` pause
``corrupt``         forwarded; one byte of the response body is flipped
``corrupt_request`` one byte of the request body is flipped before forwarding
``garble``          forwarded; the response body is replaced by as many bytes that no XML parser
                    accepts (a complete, well-framed answer that cannot be read)
``chunked``         forwarded; the answer re-framed with ``Transfer-Encoding: chunked``
``unframed``        forwarded; the answer without Content-Length or chunking, ended by a close
``truncated_listing`` forwarded; a ListObjectsV2 page claims ``IsTruncated`` with no token
``ignore_range``    the request's ``Range`` header is dropped before forwarding (200, whole)
``tls_garbage``     forwarded; headers and half the body, then raw bytes that are no TLS
                    record (an ``ssl.SSLError`` mid-body at the client), then a close

(the rewriting ones live in ``faultmodes.py``). Beyond random faults: ``bucket_regions`` maps
buckets to the region their requests must be signed for (others get ``301 PermanentRedirect``
with ``x-amz-bucket-region``); :meth:`FaultProxy.refuse_connections` closes the listening
socket for a while (connections are refused); ``tls=`` (an ``ssl.SSLContext``) makes the proxy
an HTTPS server in front of a plain-HTTP upstream.

Only requests for which ``match(record)`` is true are eligible (and, per kind, those for which
``kind_match[kind](record)`` is true, e.g. corrupt only PUT bodies); ``budget`` (if not None) caps
how many faults are injected in all. Independently of faults, ``latency`` seconds are added
before every forwarded response for which ``latency_match(record)`` is true (all if None), so
requests overlap and batches last long enough to interrupt.

Connections are kept alive in both directions; every client connection runs on its own
thread, at most ``max_connections`` at once. The proxy counts what it saw: requests, faults by
kind, requests in flight (now and the maximum) and open client connections (now and the
maximum); ``records`` keeps the most recent requests.
"""

from __future__ import annotations

import collections
import os
import random
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlsplit

import faultmodes

FAULTS = ("slowdown", "error500", "error", "reset_before", "reset_after", "truncate", "stall",
          "stall_body", "corrupt", "corrupt_request", "chunked", "unframed",
          "truncated_listing", "ignore_range", "tls_garbage", "garble")
_MAX_HEAD = 64 * 1024
_REASONS = {400: "Bad Request", 403: "Forbidden", 500: "Internal Server Error",
            503: "Slow Down"}


@dataclass
class Record:
    """One request as the proxy saw it (header names lower case)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    inflight: int  # requests in flight when this one arrived, itself included
    fault: str | None = None
    body_len: int = 0
    finished: bool = False
    sent: int = 0  # body bytes sent back (counted for ``ignore_range`` only)
    at: float = field(default_factory=time.monotonic)  # when the request arrived


@dataclass
class Stats:
    requests: int = 0
    faults: collections.Counter = field(default_factory=collections.Counter)
    inflight: int = 0
    max_inflight: int = 0
    connections: int = 0
    max_connections: int = 0
    accepted: int = 0  # client connections accepted in all


class _Closed(Exception):
    """The peer closed the connection."""


def _read_head(f) -> bytes | None:
    """Read an HTTP message head up to and including the blank line; None at a clean EOF."""
    lines = []
    size = 0
    while True:
        line = f.readline(_MAX_HEAD)
        if not line:
            if lines:
                raise _Closed("EOF inside a message head")
            return None
        if not lines and line in (b"\r\n", b"\n"):
            continue  # tolerate stray CRLF between messages
        lines.append(line)
        size += len(line)
        if size > _MAX_HEAD:
            raise _Closed("message head too large")
        if line in (b"\r\n", b"\n"):
            return b"".join(lines)


def _parse_headers(head: bytes) -> tuple[str, dict[str, str]]:
    text = head.decode("latin-1")
    first, *rest = text.split("\r\n")
    headers = {}
    for line in rest:
        if ":" in line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    return first, headers


def _read_exact(f, n: int) -> bytes:
    data = f.read(n)
    if data is None or len(data) < n:
        raise _Closed("EOF inside a body")
    return data


def _read_chunked(f) -> bytes:
    """Read a chunked body and its trailers; return the raw bytes (framing included)."""
    out = []
    while True:
        line = f.readline(_MAX_HEAD)
        if not line:
            raise _Closed("EOF inside a chunked body")
        out.append(line)
        size = int(line.split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            while True:
                trailer = f.readline(_MAX_HEAD)
                if not trailer:
                    raise _Closed("EOF inside chunked trailers")
                out.append(trailer)
                if trailer in (b"\r\n", b"\n"):
                    return b"".join(out)
        out.append(_read_exact(f, size + 2))


def _read_body(f, headers: dict[str, str], until_eof: bool) -> bytes:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return _read_chunked(f)
    if "content-length" in headers:
        return _read_exact(f, int(headers["content-length"]))
    return f.read() if until_eof else b""


def _reset(sock: socket.socket) -> None:
    """Close ``sock`` with a TCP RST (SO_LINGER 0) instead of a FIN."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


def _flip(data: bytes) -> bytes:
    if not data:
        return data
    i = len(data) // 2
    return data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1:]


class FaultProxy:
    """See the module docstring. Use as a context manager or call :meth:`close`."""

    def __init__(self, upstream_url: str, seed: int | None = None, max_connections: int = 256,
                 max_records: int = 20_000, tls=None) -> None:
        """``seed``: of the fault draws; by default drawn from ``random`` (which the test
        session seeds per test, see ``conftest.py``), so a failure replays with the session's
        seed."""
        parts = urlsplit(upstream_url)
        if seed is None:
            seed = random.randrange(1 << 30)
        self.seed = seed
        self.tls = tls
        self.bucket_regions: dict[str, str] = {}
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.rates: dict[str, float] = {}
        self.match: Callable[[Record], bool] | None = None
        self.kind_match: dict[str, Callable[[Record], bool]] = {}
        self.budget: int | None = None
        self.stall_seconds = 2.0
        self.latency = 0.0
        self.latency_match: Callable[[Record], bool] | None = None
        #: bytes per second each answer's body is sent at (0: as fast as possible), as a
        #: real network's per-connection throughput
        self.body_rate = 0
        self.custom_error = (400, "ExpiredToken", "The provided token has expired.")
        self.stats = Stats()
        self.records: collections.deque[Record] = collections.deque(maxlen=max_records)
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._slots = threading.BoundedSemaphore(max_connections)
        self._socks: set[socket.socket] = set()
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=512)
        self.port = self._listener.getsockname()[1]
        self._acceptor = threading.Thread(target=self._accept, daemon=True,
                                          name="faultproxy-accept")
        self._acceptor.start()

    @property
    def endpoint_url(self) -> str:
        if self.tls is not None:
            return f"https://localhost:{self.port}"
        return f"http://127.0.0.1:{self.port}"

    def refuse_connections(self, seconds: float) -> None:
        """Stop listening for ``seconds`` (new connections are refused), then listen again on
        the same port. Connections already open are left alone."""
        self._listener.close()
        self._acceptor.join(5)

        def reopen() -> None:
            if self._stop.wait(seconds):
                return
            self._listener = socket.create_server(("127.0.0.1", self.port), backlog=512)
            self._acceptor = threading.Thread(target=self._accept, daemon=True,
                                              name="faultproxy-accept")
            self._acceptor.start()

        threading.Thread(target=reopen, daemon=True, name="faultproxy-reopen").start()

    # -- configuration -----------------------------------------------------------------
    def set_faults(self, match: Callable[[Record], bool] | None = None,
                   budget: int | None = None, stall_seconds: float | None = None,
                   kind_match: dict[str, Callable[[Record], bool]] | None = None,
                   **rates: float) -> None:
        """Replace the fault rates (probabilities per request, summing to at most 1)."""
        unknown = set(rates) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown faults {unknown}")
        if sum(rates.values()) > 1.0 + 1e-9:
            raise ValueError("fault rates sum to more than 1")
        with self._lock:
            self.rates = dict(rates)
            self.match = match
            self.kind_match = dict(kind_match or {})
            self.budget = budget
            if stall_seconds is not None:
                self.stall_seconds = stall_seconds

    def spread(self, total: float, kinds: tuple[str, ...], **kw) -> None:
        """Inject ``total`` (0..1) spread evenly over ``kinds``."""
        self.set_faults(**kw, **{k: total / len(kinds) for k in kinds})

    def clear(self) -> None:
        """No more faults (stalls in progress are released)."""
        self.set_faults()

    def reset_stats(self) -> None:
        with self._lock:
            inflight, conns = self.stats.inflight, self.stats.connections
            self.stats = Stats(inflight=inflight, connections=conns)
            self.records.clear()

    def _choose(self, rec: Record) -> str | None:
        with self._lock:
            if not self.rates or (self.budget is not None and self.budget <= 0):
                return None
            if self.match is not None and not self.match(rec):
                return None
            r = self._rng.random()
            for kind, rate in self.rates.items():
                if r < rate:
                    eligible = self.kind_match.get(kind)
                    if eligible is not None and not eligible(rec):
                        return None
                    if self.budget is not None:
                        self.budget -= 1
                    self.stats.faults[kind] += 1
                    return kind
                r -= rate
        return None

    # -- serving -----------------------------------------------------------------------
    def _accept(self) -> None:
        self._listener.settimeout(0.1)  # so close() is noticed promptly
        while not self._stop.is_set():
            if not self._slots.acquire(timeout=0.1):
                continue
            try:
                csock, _ = self._listener.accept()
            except TimeoutError:
                self._slots.release()
                continue
            except OSError:
                self._slots.release()
                return
            csock.settimeout(None)
            threading.Thread(target=self._serve, args=(csock,), daemon=True,
                             name="faultproxy-conn").start()

    def _track(self, sock: socket.socket, add: bool) -> None:
        with self._lock:
            if add:
                self._socks.add(sock)
            else:
                self._socks.discard(sock)

    def _serve(self, csock: socket.socket) -> None:
        with self._lock:
            self.stats.accepted += 1
            self.stats.connections += 1
            self.stats.max_connections = max(self.stats.max_connections,
                                             self.stats.connections)
        self._track(csock, True)
        conn = _Upstream(self)
        try:
            if self.tls is not None:
                plain = csock
                csock = self.tls.wrap_socket(csock, server_side=True)
                self._track(plain, False)
                self._track(csock, True)
            cfile = csock.makefile("rb")
            while not self._stop.is_set():
                keep = self._one(csock, cfile, conn)
                if not keep:
                    break
        except (_Closed, OSError, ValueError):
            pass
        finally:
            conn.close()
            self._track(csock, False)
            try:
                csock.close()
            except OSError:
                pass
            with self._lock:
                self.stats.connections -= 1
            self._slots.release()

    def _one(self, csock: socket.socket, cfile, conn: _Upstream) -> bool:
        """Handle one request; return whether the client connection stays open."""
        head = _read_head(cfile)
        if head is None:
            return False
        first, headers = _parse_headers(head)
        method, target = first.split(" ")[:2]
        url = urlsplit(target)
        rec = Record(method, unquote(url.path), dict(parse_qsl(url.query, keep_blank_values=True)),
                     headers, 0)
        with self._lock:
            self.stats.requests += 1
            self.stats.inflight += 1
            self.stats.max_inflight = max(self.stats.max_inflight, self.stats.inflight)
            rec.inflight = self.stats.inflight
            self.records.append(rec)
        try:
            bucket = rec.path.lstrip("/").split("/", 1)[0]
            redirect = faultmodes.redirect_answer(bucket, headers, self.bucket_regions, method)
            if redirect is not None:
                self._finish(rec)
                rec.fault = "redirect"
                with self._lock:
                    self.stats.faults["redirect"] += 1
                rec.body_len = len(_read_body(cfile, headers, False))
                csock.sendall(redirect)
                return True
            rec.fault = fault = self._choose(rec)
            expect = headers.get("expect", "").lower() == "100-continue"
            close_after = headers.get("connection", "").lower() == "close"
            if fault == "ignore_range":
                head = faultmodes.strip_range(head)
            if fault == "reset_before":
                _reset(csock)
                return False
            if fault in ("slowdown", "error500", "error"):
                self._finish(rec)
                if expect:
                    self._send_error(csock, method, rec.path, fault, close=True)
                    return False
                rec.body_len = len(_read_body(cfile, headers, False))
                self._send_error(csock, method, rec.path, fault, close=close_after)
                return not close_after
            resp_head, resp_headers, body, status = conn.exchange(
                head, headers, cfile, csock, method, expect, fault == "corrupt_request", rec)
            if status is None:  # the server refused before the body (Expect) or died
                return False
            return self._respond(rec, csock, resp_head, resp_headers, body, fault) and not (
                close_after or "close" in resp_headers.get("connection", "").lower())
        finally:
            self._finish(rec)

    def _finish(self, rec: Record) -> None:
        """The request stops counting as in flight (once): just before its answer is sent, so
        a client that waits for the answer can never be seen with more in flight than it has."""
        with self._lock:
            if not rec.finished:
                rec.finished = True
                self.stats.inflight -= 1

    def _respond(self, rec: Record, csock: socket.socket, head: bytes, headers: dict[str, str],
                 body: bytes, fault: str | None) -> bool:
        if self.latency and (self.latency_match is None or self.latency_match(rec)):
            self._stop.wait(self.latency)
        if fault == "stall":
            self._stop.wait(self.stall_seconds)
        if fault != "stall_body":
            self._finish(rec)
        if fault == "corrupt":
            body = _flip(body)
        if fault == "garble" and body:
            body = b"<" + b"\x01" * (len(body) - 1)
        if fault == "chunked":
            csock.sendall(faultmodes.rechunk(head, headers, body, rec.method))
            return True
        if fault == "unframed":
            csock.sendall(faultmodes.unframe(head, headers, body, rec.method))
            csock.shutdown(socket.SHUT_RDWR)
            return False
        if fault == "truncated_listing":
            rewritten = faultmodes.truncate_listing(head, headers, body)
            csock.sendall(rewritten if rewritten is not None else head + body)
            return True
        if fault == "tls_garbage":
            csock.sendall(head + body[: len(body) // 2])
            os.write(csock.fileno(), b"\x17\x03\x03\x00\x40" + bytes(range(64)))
            csock.shutdown(socket.SHUT_RDWR)
            return False
        if fault in ("reset_after", "truncate") and not body:
            fault = "reset_after"
        if fault == "reset_after":
            csock.sendall(head)
            _reset(csock)
            return False
        if fault == "truncate":
            csock.sendall(head + body[: len(body) // 2])
            csock.shutdown(socket.SHUT_RDWR)
            return False
        if fault == "stall_body" and body:
            csock.sendall(head + body[: len(body) // 2])
            self._stop.wait(self.stall_seconds)
            csock.sendall(body[len(body) // 2:])
            return True
        if fault == "ignore_range":
            return self._send_counted(csock, rec, head, body)
        if self.body_rate and body:
            return self._send_paced(csock, head, body)
        csock.sendall(head + body)
        return True

    def _send_paced(self, csock: socket.socket, head: bytes, body: bytes) -> bool:
        """Send the body at ``body_rate`` bytes per second (64 KiB pieces); ``False`` if the
        client went away meanwhile."""
        piece = 64 * 1024
        t0 = time.monotonic()
        try:
            csock.sendall(head)
            for pos in range(0, len(body), piece):
                ahead = t0 + pos / self.body_rate - time.monotonic()
                if ahead > 0 and self._stop.wait(ahead):
                    return False
                csock.sendall(body[pos:pos + piece])
        except OSError:
            return False
        return True

    @staticmethod
    def _send_counted(csock: socket.socket, rec: Record, head: bytes, body: bytes) -> bool:
        """Send the answer in 256 KiB pieces, counting in ``rec.sent`` the body bytes the
        client's socket took before it went away."""
        csock.sendall(head)
        for i in range(0, len(body), 1 << 18):
            try:
                csock.sendall(body[i:i + (1 << 18)])
            except OSError:
                return False
            rec.sent += len(body[i:i + (1 << 18)])
        return True

    def _send_error(self, csock: socket.socket, method: str, path: str, fault: str,
                    close: bool) -> None:
        if fault == "slowdown":
            status, code, message = 503, "SlowDown", "Please reduce your request rate."
        elif fault == "error500":
            status, code, message = 500, "InternalError", "We encountered an internal error."
        else:
            status, code, message = self.custom_error
        body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
                f"<Message>{message}</Message><Resource>{path}</Resource>"
                f"<RequestId>faultproxy</RequestId></Error>").encode()
        reason = _REASONS.get(status, "Error")
        head = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/xml\r\n"
                f"Content-Length: {len(body)}\r\nx-amz-request-id: faultproxy\r\n"
                + ("Connection: close\r\n" if close else "") + "\r\n").encode()
        csock.sendall(head if method == "HEAD" else head + body)

    def close(self) -> None:
        """Stop accepting, release stalls and close every connection."""
        self._stop.set()
        try:
            self._listener.close()
        except OSError:
            pass
        with self._lock:
            socks = list(self._socks)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._acceptor.join(5)

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Upstream:
    """One keep-alive connection to the server, owned by one client connection's thread."""

    def __init__(self, proxy: FaultProxy) -> None:
        self.proxy = proxy
        self.sock: socket.socket | None = None
        self.file = None

    def _connect(self) -> None:
        self.close()
        self.sock = socket.create_connection(self.proxy.upstream, timeout=120)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.file = self.sock.makefile("rb")
        self.proxy._track(self.sock, True)

    def close(self) -> None:
        if self.sock is not None:
            self.proxy._track(self.sock, False)
            try:
                self.sock.close()
            except OSError:
                pass
        self.sock = self.file = None

    def _read_response(self, method: str) -> tuple[bytes, dict[str, str], int]:
        while True:
            head = _read_head(self.file)
            if head is None:
                raise _Closed("server closed the connection")
            first, headers = _parse_headers(head)
            status = int(first.split(" ")[1])
            if 100 <= status < 200 and status != 101:
                return head, headers, status  # interim: the caller decides
            return head, headers, status

    def exchange(self, head, headers, cfile, csock, method, expect, corrupt, rec):
        """Forward one request; return ``(response head, headers, body, status)``; ``status``
        is None when the exchange ended without a response worth relaying."""
        body = b""
        if not expect:
            body = _read_body(cfile, headers, False)
            rec.body_len = len(body)
            if corrupt:
                body = _flip(body)
        for attempt in (0, 1):
            fresh = self.sock is None
            if fresh:
                self._connect()
            try:
                self.sock.sendall(head + body)
                rhead, rheaders, status = self._read_response(method)
                break
            except (_Closed, OSError):
                self.close()
                if fresh or attempt or expect:
                    raise
        if expect:
            if status != 100:  # refused before the body: relay and close
                rbody = _read_body(self.file, rheaders, method != "HEAD")
                csock.sendall(rhead + rbody)
                self.close()
                return None, None, None, None
            csock.sendall(rhead)
            body = _read_body(cfile, headers, False)
            rec.body_len = len(body)
            self.sock.sendall(_flip(body) if corrupt else body)
            rhead, rheaders, status = self._read_response(method)
        no_body = method == "HEAD" or status in (204, 304) or 100 <= status < 200
        te_or_len = "content-length" in rheaders or "chunked" in rheaders.get(
            "transfer-encoding", "").lower()
        rbody = b"" if no_body else _read_body(self.file, rheaders, True)
        if not no_body and not te_or_len:
            self.close()  # the body ended with the connection
        elif "close" in rheaders.get("connection", "").lower():
            self.close()
        return rhead, rheaders, rbody, status


# -- helpers shared by the reliability tests ---------------------------------------------------
MiB = 1 << 20


def quick_config(**overrides):
    """A TransferConfig for fault tests: small pool, 5 MiB parts, short timeouts, quick and
    patient retries (10 attempts, backoff <= 0.2 s)."""
    from fasts3 import TransferConfig

    values = dict(processes=2, requests_per_process=4, part_size=5 * MiB,
                  multipart_threshold=5 * MiB, max_attempts=10, backoff_base=0.01,
                  backoff_max=0.2, connect_timeout=5.0, read_timeout=2.0)
    values.update(overrides)
    return TransferConfig(**values)


def open_uploads(client, bucket: str, prefix: str = "") -> list[tuple[str, str]]:
    """``[(key, upload_id)]`` of the multipart uploads in progress (boto3, straight to the
    server)."""
    resp = client.list_multipart_uploads(Bucket=bucket, Prefix=prefix)
    return [(u["Key"], u["UploadId"]) for u in resp.get("Uploads", [])]


def partial_files(tmpdir: str) -> list[str]:
    """Files in an S3 temp dir that are not completed downloads (temp ``.part`` files)."""
    import os

    return sorted(n for n in os.listdir(tmpdir) if n.endswith(".part") or n.startswith("."))
