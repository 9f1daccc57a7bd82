"""bench/http_framing.py and bench/latency_proxy.py: message framing on keep-alive streams
(every split of the byte stream gives the same boundaries), and the proxy in front of a real
server: bytes intact, each request's first byte held for the delay, requests in flight
counted, HEAD/chunked/close-delimited answers framed so a keep-alive connection never hangs."""

from __future__ import annotations

import socket
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.http_framing import REQUEST, RESPONSE, Framer, FramingError  # noqa: E402
from bench.latency_proxy import LatencyProxy  # noqa: E402

RESP_STREAM = (
    b"HTTP/1.1 100 Continue\r\n\r\n"  # interim: the final answer to the same request follows
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
    b"HTTP/1.1 200 OK\r\nContent-Length: 123\r\n\r\n"  # answer to HEAD: no body
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"4;ext=1\r\nabcd\r\n10\r\n0123456789abcdef\r\n0\r\nX-Trailer: t\r\n\r\n"
    b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"
    b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nnop"
    b"HTTP/1.1 200 OK\r\n\r\nuntil the close"
)
METHODS = ["PUT", "HEAD", "GET", "DELETE", "GET", "GET"]

REQ_STREAM = (
    b"GET /b/k HTTP/1.1\r\nHost: h\r\n\r\n"
    b"PUT /b/k HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\nbody"
    b"PUT /b/c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    b"HEAD /b/k HTTP/1.1\r\nHost: h\r\n\r\n"
)


def _events(kind: str, chunks: list[bytes], methods: list[str] = ()) -> list[tuple]:
    """All events of a stream fed in ``chunks``, offsets made absolute."""
    f = Framer(kind)
    f.methods.extend(methods)
    out, base = [], 0
    for c in chunks:
        out += [(k, base + off, info) for k, off, info in f.feed(c)]
        base += len(c)
    out += [(k, base, info) for k, _, info in f.eof()]
    return out


def _boundaries(stream: bytes, first: bytes) -> list[int]:
    return [i for i in range(len(stream)) if stream.startswith(first, i)]


def test_response_framing_whole_stream() -> None:
    ev = _events(RESPONSE, [RESP_STREAM], METHODS)
    starts = [off for k, off, _ in ev if k == "start"]
    assert starts == _boundaries(RESP_STREAM, b"HTTP/1.1 ")
    ends = [(off, final) for k, off, final in ev if k == "end"]
    assert [f for _, f in ends] == [False, True, True, True, True, True, True]
    # each message ends where the next starts; the last one at the close
    assert [off for off, _ in ends] == starts[1:] + [len(RESP_STREAM)]
    heads = [info for k, _, info in ev if k == "head"]
    assert heads == [(100, False), (200, True), (200, True), (200, True), (204, True),
                     (404, True), (200, True)]


def test_response_framing_any_split() -> None:
    whole = _events(RESPONSE, [RESP_STREAM], METHODS)
    for cut in range(1, len(RESP_STREAM)):
        got = _events(RESPONSE, [RESP_STREAM[:cut], RESP_STREAM[cut:]], METHODS)
        assert got == whole, cut
    assert _events(RESPONSE, [RESP_STREAM[i : i + 1] for i in range(len(RESP_STREAM))],
                   METHODS) == whole


def test_request_framing_any_split() -> None:
    whole = _events(REQUEST, [REQ_STREAM])
    assert [info for k, _, info in whole if k == "head"] == ["GET", "PUT", "PUT", "HEAD"]
    starts = [off for k, off, _ in whole if k == "start"]
    ends = [off for k, off, _ in whole if k == "end"]
    assert ends == starts[1:] + [len(REQ_STREAM)]
    for cut in range(1, len(REQ_STREAM)):
        assert _events(REQUEST, [REQ_STREAM[:cut], REQ_STREAM[cut:]]) == whole, cut


def test_a_body_cut_short_has_no_end() -> None:
    ev = _events(RESPONSE, [b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"], ["GET"])
    assert [k for k, _, _ in ev] == ["start", "head"]


@pytest.mark.parametrize("bad", [
    b"SSH-2.0-OpenSSH\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
])
def test_not_http_raises(bad: bytes) -> None:
    with pytest.raises(FramingError):
        Framer(RESPONSE).feed(bad)


# -- the proxy -------------------------------------------------------------------------


@pytest.fixture
def delayed(seaweed, tmp_path):
    with LatencyProxy(seaweed.endpoint_url, 0.05, tmp_path / "stats.json") as p:
        yield p


def _client(seaweed, endpoint: str, pool: int = 10):
    import boto3
    from botocore.config import Config

    return boto3.client("s3", endpoint_url=endpoint, **seaweed.session_vars(),
                        config=Config(max_pool_connections=pool,
                                      retries={"max_attempts": 1}))


def test_proxy_forwards_and_delays_every_request(seaweed, bucket, delayed) -> None:
    s3 = _client(seaweed, delayed.endpoint_url)
    body = bytes(range(256)) * 1000
    s3.put_object(Bucket=bucket, Key="k", Body=body)  # a signed PUT through the proxy
    s3.head_object(Bucket=bucket, Key="k")  # HEAD: Content-Length, no body
    n = 5
    t0 = time.perf_counter()
    for _ in range(n):  # one keep-alive connection: a mis-framed answer would hang here
        assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == body
        s3.head_object(Bucket=bucket, Key="k")
    took = time.perf_counter() - t0
    with pytest.raises(s3.exceptions.NoSuchKey):
        s3.get_object(Bucket=bucket, Key="missing")
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 1
    stats = delayed.stop()
    assert took >= 2 * n * 0.05  # every request waited the delay once
    requests = 2 + 2 * n + 2
    assert stats["requests"] == stats["responses"] == requests
    assert stats["peak_in_flight"] == 1  # one thread, one request at a time
    assert stats["bytes_down"] > n * len(body)
    assert stats["late_ms"]["p50"] is not None and stats["cpu_s"] > 0


def test_proxy_counts_requests_in_flight(seaweed, bucket, tmp_path) -> None:
    direct = _client(seaweed, seaweed.endpoint_url)
    direct.put_object(Bucket=bucket, Key="k", Body=b"x" * 1000)
    threads, delay = 8, 0.4
    with LatencyProxy(seaweed.endpoint_url, delay, tmp_path / "s.json") as p:
        s3 = _client(seaweed, p.endpoint_url, pool=threads)
        s3.head_bucket(Bucket=bucket)  # credentials and connection set up before the race
        go = threading.Barrier(threads)
        errors: list[BaseException] = []

        def one() -> None:
            try:
                go.wait()
                assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"x" * 1000
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(e)

        t0 = time.perf_counter()
        ts = [threading.Thread(target=one) for _ in range(threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        took = time.perf_counter() - t0
        stats = p.stop()
    assert not errors
    assert stats["peak_in_flight"] == threads
    assert stats["requests"] == stats["responses"] == threads + 1
    assert delay <= took < threads * delay / 2  # concurrent, not one after the other


def _raw_server(answers: list[bytes], got: list[bytes]) -> tuple[socket.socket, threading.Thread]:
    """A one-connection server: reads one GET head per answer and sends that answer."""
    ls = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = ls.accept()
        with conn:
            buf = b""
            for a in answers:
                while b"\r\n\r\n" not in buf:
                    buf += conn.recv(4096)
                head, buf = buf.split(b"\r\n\r\n", 1)
                got.append(head)
                conn.sendall(a)
            conn.shutdown(socket.SHUT_WR)  # the last answer runs until this close

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return ls, t


def test_proxy_frames_chunked_and_close_delimited_answers(tmp_path) -> None:
    answers = [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nto the end",
    ]
    got: list[bytes] = []
    ls, t = _raw_server(answers, got)
    port = ls.getsockname()[1]
    with LatencyProxy(f"http://127.0.0.1:{port}", 0.1, tmp_path / "s.json") as p:
        host, pport = p.endpoint_url.rsplit(":", 1)
        with socket.create_connection(("127.0.0.1", int(pport))) as c:
            waits, received = [], b""
            for i, a in enumerate(answers):
                t0 = time.perf_counter()
                c.sendall(f"GET /{i} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
                part = b""
                while len(part) < len(a):
                    more = c.recv(65536)
                    if not more:
                        break
                    part += more
                waits.append(time.perf_counter() - t0)
                received += part
            assert c.recv(10) == b""  # the server's close reaches the client
        stats = p.stop()
    t.join(5)
    ls.close()
    assert received == b"".join(answers)
    assert [h.split(b" ")[1] for h in got] == [b"/0", b"/1", b"/2"]
    assert all(w >= 0.1 for w in waits), waits  # each answer on the connection was held
    assert stats["requests"] == stats["responses"] == 3
