"""The worker's own HTTP/1.1 framing (``fasts3/engine/http1.py``), without a network: request
heads refuse header injection, response heads parse as the blocking transport's did, bodies
are framed by chunks, by length or by the connection's end, and the chunked decoder gives the
same payload however the bytes are split across reads. (The fault proxy's ``chunked``,
``unframed``, ``truncate`` faults exercise the same code end to end: ``test_network.py``.)"""

from __future__ import annotations

import random

import pytest

from fasts3.engine import http1
from fasts3.engine.transport import NetworkFailure


def test_request_head_and_injection():
    head = http1.request_head("GET", "/b/k%20x?versionId=1", {"host": "h:1", "range": "bytes=0-9"})
    assert head == (b"GET /b/k%20x?versionId=1 HTTP/1.1\r\nhost: h:1\r\n"
                    b"range: bytes=0-9\r\n\r\n")
    for bad in ("v\r\nx-amz-evil: 1", "v\nx", "v\0"):
        with pytest.raises(ValueError):
            http1.request_head("PUT", "/b/k", {"x-amz-meta-a": bad})
    with pytest.raises(ValueError):
        http1.request_head("GET", "/b/k HTTP/1.1\r\nx: y", {})


def test_parse_head_lowercases_names_last_one_wins_and_folds():
    head = http1.parse_head(b"HTTP/1.1 206 Partial Content\r\nContent-Length: 10\r\n"
                            b"ETag: \"a\"\r\nX-Amz-Meta-K: one\r\nx-amz-meta-k: two\r\n"
                            b"X-Long: a\r\n  b")
    assert head.status == 206 and head.reason == "Partial Content"
    assert head.headers == {"content-length": "10", "etag": '"a"', "x-amz-meta-k": "two",
                            "x-long": "a b"}
    for bad in (b"garbage", b"HTTP/1.1 2000 OK", b"SMTP/1.0 200 OK", b"HTTP/1.1 abc"):
        with pytest.raises(NetworkFailure) as ei:
            http1.parse_head(bad)
        assert ei.value.code == "BadResponse" and ei.value.transient


@pytest.mark.parametrize("method, status, headers, want", [
    ("HEAD", 200, {"content-length": "5"}, (http1.NO_BODY, 0)),
    ("GET", 204, {}, (http1.NO_BODY, 0)),
    ("GET", 304, {"content-length": "5"}, (http1.NO_BODY, 0)),
    ("GET", 200, {"content-length": "5"}, (http1.LENGTH, 5)),
    ("GET", 200, {"content-length": "5", "transfer-encoding": "chunked"}, (http1.CHUNKED, None)),
    ("GET", 200, {}, (http1.UNTIL_CLOSE, None)),
    ("PUT", 200, {"content-length": "0"}, (http1.LENGTH, 0)),
])
def test_framing(method, status, headers, want):
    assert http1.framing(method, http1.Head(status, "", headers)) == want


def test_framing_refuses_a_bad_length():
    for value in ("-1", "ten", "1,2"):
        with pytest.raises(NetworkFailure):
            http1.framing("GET", http1.Head(200, "", {"content-length": value}))


def _chunked(payload: bytes, sizes: list[int]) -> bytes:
    out, pos = [], 0
    for n in sizes:
        piece = payload[pos:pos + n]
        pos += n
        out.append(b"%x;ext=1\r\n" % len(piece) + piece + b"\r\n")
    return b"".join(out) + b"0\r\nx-amz-checksum-crc32: AAAA\r\n\r\n"


def _decode(raw: bytes, cuts: list[int]) -> tuple[bytes, int, bool]:
    dec, got, consumed, start = http1.ChunkedDecoder(), [], 0, 0
    for end in cuts + [len(raw)]:
        buf = bytearray(raw[start:end])  # every read lands in a fresh buffer
        stop = dec.feed(buf, 0, len(buf), lambda v: got.append(bytes(v)))
        consumed += stop
        start = end
        if dec.done:
            break
    return b"".join(got), consumed, dec.done


def test_chunked_decoder_whatever_the_read_boundaries():
    rnd = random.Random(5)
    payload = rnd.randbytes(50_000)
    raw = _chunked(payload, [1, 4096, 3, 20_000, 25_900]) + b"NEXT"
    body_end = len(raw) - 4
    for _ in range(50):
        cuts = sorted(rnd.sample(range(1, body_end), rnd.randint(1, 40)))
        got, consumed, done = _decode(raw, cuts)
        assert done and got == payload
        assert consumed == body_end  # the bytes after the body are left alone
    got, consumed, done = _decode(raw, list(range(1, body_end)))  # byte by byte
    assert done and got == payload


def test_chunked_decoder_refuses_bad_framing():
    for raw in (b"zz\r\n", b"5\r\nhelloXX", b"-5\r\n", b"f" * 5000):
        with pytest.raises(NetworkFailure) as ei:
            _decode(raw, [])
        assert ei.value.code == "BadResponse"
    got, _, done = _decode(b"5\r\nhel", [])  # incomplete: waits for more
    assert got == b"hel" and not done
