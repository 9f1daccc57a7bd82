"""Incremental HTTP/1.1 message framing for bench/latency_proxy.py.

A :class:`Framer` follows one direction of one connection and says where each message starts,
where its head ends and where it ends, without copying bodies: a body framed by Content-Length
is skipped by counting, a chunked body by reading its chunk-size lines only. Enough of RFC 9112
for the clients and servers of the benchmark:

* a request has a body if it says ``Transfer-Encoding: chunked`` (which wins) or
  ``Content-Length``; otherwise none;
* a response to HEAD, a 204 or 304 has no body; a 1xx (e.g. ``100 Continue``) is an interim
  answer followed by the final one for the same request; otherwise chunked, Content-Length,
  or (neither) the body runs until the server closes (:meth:`Framer.eof` ends it).

Events are ``(kind, offset, info)`` with ``offset`` an index into the chunk just fed:
``("start", i, None)`` the message's first byte is ``data[i]``; ``("head", i, info)`` its head
ended just before ``data[i]`` (info: the method of a request, ``(status, final)`` of a
response); ``("end", i, final)`` the message ended just before ``data[i]`` (``final`` is False
only for an interim 1xx response). Anything that is not HTTP/1.1 raises :class:`FramingError`.
"""

from __future__ import annotations

from collections import deque

REQUEST, RESPONSE = "request", "response"
MAX_HEAD = 64 * 1024  # bytes of a message head (request/status line + headers)
MAX_LINE = 4 * 1024  # bytes of a chunk-size or trailer line

_HEAD, _LENGTH, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_CRLF, _TRAILER, _UNTIL_CLOSE = range(7)

Event = tuple[str, int, object]


class FramingError(ValueError):
    """The byte stream is not HTTP/1.1 as this framer understands it."""


class Framer:
    """Framing state of one direction (``REQUEST`` or ``RESPONSE``) of one connection.

    On the response side, :attr:`methods` must hold the method of every request sent and not
    yet answered, oldest first (the proxy appends each request's method from the request
    side's ``head`` event); a HEAD answer has no body whatever its Content-Length says.
    """

    def __init__(self, kind: str) -> None:
        if kind not in (REQUEST, RESPONSE):
            raise ValueError(f"kind must be {REQUEST!r} or {RESPONSE!r}")
        self.kind = kind
        self.methods: deque[str] = deque()
        self._state = _HEAD
        self._head = bytearray()
        self._line = bytearray()
        self._left = 0  # body bytes (or CRLF bytes) still to skip
        self._final = True  # whether the current response is final (not 1xx)
        self._in_message = False

    @property
    def idle(self) -> bool:
        """True between messages (nothing of a next message seen yet)."""
        return not self._in_message

    def feed(self, data: bytes) -> list[Event]:
        """Advance over ``data`` (one chunk as read from the socket); returns its events."""
        events: list[Event] = []
        pos, n = 0, len(data)
        while pos < n:
            st = self._state
            if st == _HEAD:
                pos = self._feed_head(data, pos, events)
            elif st == _LENGTH or st == _CHUNK_DATA:
                take = min(self._left, n - pos)
                self._left -= take
                pos += take
                if self._left == 0:
                    if st == _LENGTH:
                        self._end(pos, events)
                    else:
                        self._state, self._left = _CHUNK_CRLF, 2
            elif st == _CHUNK_CRLF:
                take = min(self._left, n - pos)
                self._left -= take
                pos += take
                if self._left == 0:
                    self._state = _CHUNK_SIZE
            elif st == _CHUNK_SIZE or st == _TRAILER:
                pos, line = self._read_line(data, pos)
                if line is None:
                    continue
                if st == _TRAILER:
                    if not line.strip():
                        self._end(pos, events)
                    continue
                size_text = line.split(b";", 1)[0].strip()
                try:
                    size = int(size_text, 16)
                except ValueError:
                    raise FramingError(f"bad chunk size line {bytes(line)[:40]!r}") from None
                if size < 0:
                    raise FramingError("negative chunk size")
                if size == 0:
                    self._state = _TRAILER
                else:
                    self._state, self._left = _CHUNK_DATA, size
            else:  # _UNTIL_CLOSE: everything up to EOF is body
                pos = n
        return events

    def eof(self) -> list[Event]:
        """The peer closed: ends a body delimited by the close (offset 0, nothing more to
        read). A message cut short anywhere else is simply abandoned (no event)."""
        if self._state == _UNTIL_CLOSE:
            self._state = _HEAD
            self._in_message = False
            return [("end", 0, self._final)]
        return []

    # -- internals ---------------------------------------------------------------------
    def _feed_head(self, data: bytes, pos: int, events: list[Event]) -> int:
        if not self._in_message:
            self._in_message = True
            events.append(("start", pos, None))
        end = -1
        if self._head:  # the blank line may straddle the previous chunk and this one
            tail = bytes(self._head[-3:])
            k = (tail + data[pos : pos + 3]).find(b"\r\n\r\n")
            if k >= 0:
                end = pos + k + 4 - len(tail)
        if end < 0:
            k = data.find(b"\r\n\r\n", pos)
            end = k + 4 if k >= 0 else -1
        if end < 0:
            self._head += data[pos:]
            if len(self._head) > MAX_HEAD:
                raise FramingError(f"{self.kind} head longer than {MAX_HEAD} bytes")
            return len(data)
        self._head += data[pos:end]
        head, self._head = bytes(self._head), bytearray()
        if len(head) > MAX_HEAD:
            raise FramingError(f"{self.kind} head longer than {MAX_HEAD} bytes")
        self._start_body(head, end, events)
        return end

    def _start_body(self, head: bytes, pos: int, events: list[Event]) -> None:
        lines = head.split(b"\r\n")
        first = lines[0].split(b" ", 2)
        headers: dict[bytes, bytes] = {}
        for line in lines[1:]:
            if line:
                name, sep, value = line.partition(b":")
                if not sep:
                    raise FramingError(f"bad header line {line[:40]!r}")
                headers[name.strip().lower()] = value.strip()
        chunked = b"chunked" in headers.get(b"transfer-encoding", b"").lower()
        length = headers.get(b"content-length")
        if self.kind == REQUEST:
            if len(first) != 3 or not first[2].startswith(b"HTTP/1."):
                raise FramingError(f"bad request line {lines[0][:60]!r}")
            events.append(("head", pos, first[0].decode("ascii", "replace")))
            no_body = not chunked and length is None
        else:
            if len(first) < 2 or not first[0].startswith(b"HTTP/1.") or not first[1].isdigit():
                raise FramingError(f"bad status line {lines[0][:60]!r}")
            status = int(first[1])
            self._final = not 100 <= status < 200 or status == 101
            method = self.methods[0] if self.methods else "GET"
            events.append(("head", pos, (status, self._final)))
            if status == 101:  # switching protocols: the rest is not HTTP
                self._state = _UNTIL_CLOSE
                return
            no_body = not self._final or method == "HEAD" or status in (204, 304)
        if no_body:
            self._end(pos, events)
        elif chunked:
            self._state = _CHUNK_SIZE
        elif length is not None:
            try:
                self._left = int(length)
            except ValueError:
                raise FramingError(f"bad Content-Length {length[:40]!r}") from None
            if self._left < 0:
                raise FramingError("negative Content-Length")
            self._state = _LENGTH
            if self._left == 0:
                self._end(pos, events)
        elif self.kind == RESPONSE:
            self._state = _UNTIL_CLOSE
        else:  # pragma: no cover - no_body covers a request without framing
            self._end(pos, events)

    def _end(self, pos: int, events: list[Event]) -> None:
        events.append(("end", pos, self._final))
        if self.kind == RESPONSE and self._final and self.methods:
            self.methods.popleft()
        self._state = _HEAD
        self._in_message = False
        self._final = True

    def _read_line(self, data: bytes, pos: int) -> tuple[int, bytearray | None]:
        """(new pos, the line without CRLF) or (len(data), None) if the line goes on."""
        k = data.find(b"\n", pos)
        if k < 0:
            self._line += data[pos:]
            if len(self._line) > MAX_LINE:
                raise FramingError(f"line longer than {MAX_LINE} bytes in a chunked body")
            return len(data), None
        self._line += data[pos:k]
        line, self._line = self._line, bytearray()
        if line.endswith(b"\r"):
            del line[-1]
        return k + 1, line
