"""HTTP/1.1 messages for the worker's event loop, without I/O: request heads out, response heads
in, and the framing of a response body.

A body is framed by ``Transfer-Encoding: chunked`` (decoded by :class:`ChunkedDecoder`), by
``Content-Length``, or -- neither given -- by the server closing the connection
(:data:`UNTIL_CLOSE`; ``framing.py`` refuses such an answer for object data, where a cut
body could not be told from a whole one). Answers to HEAD, 1xx, 204 and 304 have no body.

Malformed input raises :class:`~fasts3.engine.transport.NetworkFailure` with code
``BadResponse`` (transient: a retry on a fresh connection may get a good answer).
Header names are lower-cased; of repeated headers the last one wins (as the blocking
transport's ``{k.lower(): v}`` does).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from .transport import NetworkFailure

MAX_HEAD = 65536
MAX_HEADERS = 100
NO_BODY, LENGTH, CHUNKED, UNTIL_CLOSE = range(4)


class Head(NamedTuple):
    """A parsed response head."""

    status: int
    reason: str
    headers: dict[str, str]


def request_head(method: str, target: str, headers: dict[str, str]) -> bytes:
    """The bytes of a request line and its headers (``latin-1``, as ``http.client``).
    Raises ``ValueError`` for a header value or target holding CR, LF or NUL (no header
    injection) or characters outside latin-1."""
    values = "".join(headers.values()) + target
    if "\r" in values or "\n" in values or "\0" in values or " " in target:
        raise ValueError("invalid character in a header value or the request target")
    lines = "".join([f"{name}: {value}\r\n" for name, value in headers.items()])
    return f"{method} {target} HTTP/1.1\r\n{lines}\r\n".encode("latin-1")


def _bad(message: str) -> NetworkFailure:
    return NetworkFailure("BadResponse", message)


def parse_head(data: bytes | bytearray) -> Head:
    """Parse a response head (status line and headers, up to but excluding the blank
    line)."""
    lines = data.decode("latin-1").split("\r\n")
    version, _, status = lines[0].partition(" ")
    code, _, reason = status.partition(" ")
    if not version.startswith("HTTP/1.") or len(code) != 3 or not code.isdigit():
        raise _bad(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
    if len(lines) > MAX_HEADERS + 1:
        raise _bad(f"more than {MAX_HEADERS} headers")
    headers: dict[str, str] = {}
    last = ""
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and last:  # obsolete line folding
            headers[last] += " " + line.strip()
            continue
        name, sep, value = line.partition(":")
        if sep:
            last = name.strip().lower()
            headers[last] = value.strip()
    return Head(int(code), reason.strip(), headers)


def framing(method: str, head: Head) -> tuple[int, int | None]:
    """``(kind, length)`` of the body that follows ``head``: :data:`NO_BODY`,
    :data:`CHUNKED`, :data:`LENGTH` (with the length) or :data:`UNTIL_CLOSE`."""
    status = head.status
    if method == "HEAD" or status < 200 or status in (204, 304):
        return NO_BODY, 0
    h = head.headers
    if "chunked" in h.get("transfer-encoding", "").lower():
        return CHUNKED, None
    cl = h.get("content-length")
    if cl is not None:
        try:
            n = int(cl)
        except ValueError:
            raise _bad(f"bad Content-Length {cl[:40]!r}") from None
        if n < 0:
            raise _bad(f"bad Content-Length {cl[:40]!r}")
        return LENGTH, n
    return UNTIL_CLOSE, None


class ChunkedDecoder:
    """Incremental decoder of a chunked body: :meth:`feed` raw bytes, get the payload.

    ``done`` turns true once the last chunk and the trailers are in; bytes after that are
    not consumed (the caller decides what they mean).
    """

    __slots__ = ("done", "_left", "_line", "_state")
    _SIZE, _DATA, _CRLF, _TRAILER = range(4)

    def __init__(self) -> None:
        self.done = False
        self._state = self._SIZE
        self._left = 0
        self._line = bytearray()

    def feed(self, buf: bytearray | bytes, start: int, end: int,
             out: Callable[[memoryview], None]) -> int:
        """Decode ``buf[start:end]``, calling ``out(view)`` with every payload slice (views
        into ``buf``, valid during the call only); return the index where decoding stopped
        (``end``, or the first byte after the body once ``done``)."""
        pos = start
        mv = memoryview(buf)
        while pos < end and not self.done:
            state = self._state
            if state == self._DATA:
                n = min(self._left, end - pos)
                out(mv[pos:pos + n])
                pos += n
                self._left -= n
                if not self._left:
                    self._state = self._CRLF
                continue
            if state == self._CRLF and buf[pos] not in b"\r\n":
                raise _bad("chunk not followed by CRLF")
            nl = buf.find(b"\n", pos, end)
            if nl < 0:
                self._line += buf[pos:end]
                if len(self._line) > 4096:
                    raise _bad("chunk framing line too long")
                return end
            line = bytes(self._line) + bytes(buf[pos:nl]) if self._line else bytes(buf[pos:nl])
            self._line.clear()
            pos = nl + 1
            line = line.rstrip(b"\r")
            if state == self._CRLF:
                if line:
                    raise _bad("chunk not followed by CRLF")
                self._state = self._SIZE
            elif state == self._SIZE:
                try:
                    size = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    raise _bad(f"bad chunk size {line[:40]!r}") from None
                if size < 0:
                    raise _bad("negative chunk size")
                if size:
                    self._left, self._state = size, self._DATA
                else:
                    self._state = self._TRAILER
            elif not line:  # the blank line that ends the trailers
                self.done = True
        return pos
