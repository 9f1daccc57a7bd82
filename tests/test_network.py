"""Real-network failures (issue 11), against SeaweedFS through the fault proxy: refused, reset,
unresolvable and unanswered connections; bodies framed by chunks or by nothing; listings
truncated without a token; servers that ignore Range; buckets in another region."""

from __future__ import annotations

import os
import socket
import time

import pytest
from faultproxy import MiB, partial_files, quick_config

from fasts3 import (
    S3,
    S3GetObject,
    S3NetworkError,
    S3ProtocolError,
    S3RetriesExhausted,
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _gets(rec) -> bool:
    return rec.method == "GET" and "list-type" not in rec.query


# -- connections --------------------------------------------------------------------------
def test_refused_connection_is_a_typed_network_error_naming_the_endpoint(seaweed, tmp_path):
    port = _free_port()
    t0 = time.monotonic()
    with S3(s3root="s3://bkt", endpoint_url=f"http://127.0.0.1:{port}",
            session_vars=seaweed.session_vars(), progress=False, tmproot=str(tmp_path),
            config=quick_config(max_attempts=3, backoff_base=0.1, backoff_max=0.1)) as s3:
        with pytest.raises(S3NetworkError) as ei:
            s3.get("k")
        assert partial_files(s3.tmpdir) == []
    e = ei.value
    assert isinstance(e, S3RetriesExhausted) and e.code == "ConnectionRefused"
    assert f"127.0.0.1:{port}" in str(e) and "3 attempts" in str(e)
    assert time.monotonic() - t0 < 10


def test_refused_for_a_while_then_retried_to_success(proxy, via, bucket, tmp_path):
    with S3(s3root=f"s3://{bucket}", **via, config=quick_config()) as s3:
        s3.put_many([(f"k{i}", b"v%d" % i) for i in range(4)])
    proxy.refuse_connections(0.6)
    proxy.reset_stats()
    t0 = time.monotonic()
    cfg = quick_config(max_attempts=40, backoff_base=0.05, backoff_max=0.1)
    with S3(s3root=f"s3://{bucket}", **via, config=cfg, tmproot=str(tmp_path)) as s3:
        objs = s3.get_many([f"k{i}" for i in range(4)])
        assert [o.blob for o in objs] == [b"v%d" % i for i in range(4)]
    assert time.monotonic() - t0 >= 0.5  # the first tries really were refused
    assert proxy.stats.requests == 4


def test_reset_at_connect_is_retried(proxy, via, bucket):
    with S3(s3root=f"s3://{bucket}", **via, config=quick_config()) as s3:
        s3.put("k", b"data")
        proxy.set_faults(reset_before=1.0, budget=3)
        assert s3.get("k").blob == b"data"
    assert proxy.stats.faults["reset_before"] == 3


def test_dns_failure_is_a_typed_network_error(seaweed):
    with S3(s3root="s3://bkt", endpoint_url="http://fasts3-no-such-host.invalid:9000",
            session_vars=seaweed.session_vars(), progress=False,
            config=quick_config(max_attempts=2)) as s3:
        with pytest.raises(S3NetworkError) as ei:
            s3.info("k")
    assert ei.value.code == "DNSFailure" and "fasts3-no-such-host.invalid" in str(ei.value)


def test_connect_timeout_is_a_typed_network_error(seaweed):
    # A listener that never accepts, its backlog filled: further SYNs go unanswered.
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(0)
    port = lsock.getsockname()[1]
    fillers = []
    try:
        for _ in range(8):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            fillers.append(s)
        time.sleep(0.2)
        with S3(s3root="s3://bkt", endpoint_url=f"http://127.0.0.1:{port}",
                session_vars=seaweed.session_vars(), progress=False,
                config=quick_config(max_attempts=2, connect_timeout=0.3)) as s3:
            with pytest.raises(S3NetworkError) as ei:
                s3.info("k")
    finally:
        for s in fillers:
            s.close()
        lsock.close()
    assert ei.value.code == "ConnectTimeout" and f"127.0.0.1:{port}" in str(ei.value)


def test_reset_mid_body_is_retried_and_typed_at_the_end(proxy, via, bucket, tmp_path):
    with S3(s3root=f"s3://{bucket}", **via, config=quick_config(max_attempts=2),
            tmproot=str(tmp_path)) as s3:
        s3.put("k", os.urandom(300_000))
        proxy.set_faults(truncate=1.0, match=_gets)
        with pytest.raises(S3NetworkError) as ei:
            s3.get("k")
        assert partial_files(s3.tmpdir) == [] and not any(
            n for n in os.listdir(s3.tmpdir) if not n.startswith("."))
        with pytest.raises(S3NetworkError):
            with s3.open("k") as f:
                f.read()
    assert ei.value.code == "ShortBody"


# -- framing ------------------------------------------------------------------------------
def test_chunked_answers_are_read_correctly(proxy, via, bucket):
    small, large = os.urandom(100_000), os.urandom(12 * MiB + 3)
    cfg = quick_config()
    with S3(s3root=f"s3://{bucket}", **via, config=cfg) as s3:
        proxy.set_faults(chunked=1.0)  # every answer: puts, multipart, gets, lists
        s3.put("small", small)
        s3.put("large", large)
        assert sorted(o.key for o in s3.list_recursive([""])) == ["large", "small"]
        assert s3.get("small").blob == small
        assert s3.get("large").blob == large  # one chunked stream, read to its end
        part = s3.get(S3GetObject("large", offset=MiB, length=7 * MiB))
        assert part.blob == large[MiB:8 * MiB]
        chunked = proxy.stats.faults["chunked"]
        # the parts of a large download (ranged answers) chunked, the first answer not
        proxy.set_faults(chunked=1.0, match=lambda r: _gets(r) and "range" in r.headers)
        assert s3.get("large").blob == large
        assert proxy.stats.faults["chunked"] - chunked >= 2
        with s3.open("large") as f:
            f.seek(5 * MiB)
            assert f.read(MiB) == large[5 * MiB:6 * MiB]
    assert chunked >= 8


def test_chunked_head_has_no_size_so_info_is_a_typed_error(proxy, via, bucket):
    with S3(s3root=f"s3://{bucket}", **via, config=quick_config()) as s3:
        s3.put("k", b"abc")
        proxy.set_faults(chunked=1.0, match=lambda r: r.method == "HEAD")
        with pytest.raises(S3ProtocolError) as ei:
            s3.info("k")
    assert ei.value.code == "UnframedResponse"


def test_unframed_answers_never_make_a_file(proxy, via, bucket, tmp_path):
    data = os.urandom(200_000)
    with S3(s3root=f"s3://{bucket}", **via, config=quick_config(),
            tmproot=str(tmp_path)) as s3:
        proxy.set_faults(unframed=1.0, match=lambda r: r.method in ("PUT", "POST") or (
            r.method == "GET" and "list-type" in r.query))
        s3.put("k", data)  # answers whose body is not needed (or is XML) still work
        s3.put("big", os.urandom(11 * MiB))
        assert sorted(o.key for o in s3.list_recursive([""])) == ["big", "k"]
        proxy.set_faults(unframed=1.0, match=lambda r: r.method in ("GET", "HEAD")
                         and "list-type" not in r.query)
        for call in (lambda: s3.get("k"), lambda: s3.info("k"), lambda: s3.get("big"),
                     lambda: s3.open("k").read()):
            with pytest.raises(S3ProtocolError) as ei:
                call()
            assert ei.value.code == "UnframedResponse"
        assert os.listdir(s3.tmpdir) == []  # no 0-byte file under any name
        assert proxy.stats.faults["unframed"] >= 8


# -- listings -----------------------------------------------------------------------------
def test_truncated_listing_without_token_is_a_typed_error(proxy, via, bucket):
    with S3(s3root=f"s3://{bucket}", **via, config=quick_config()) as s3:
        s3.put_many([("a/1", b"1"), ("a/2", b"2")])
        proxy.set_faults(truncated_listing=1.0, match=lambda r: "list-type" in r.query)
        with pytest.raises(S3ProtocolError) as ei:
            s3.list_recursive(["a"])
        with pytest.raises(S3ProtocolError):
            s3.list_paths()
    assert ei.value.code == "TruncatedListing"
    assert proxy.stats.faults["truncated_listing"] == 2  # permanent: not retried


def test_sync_delete_deletes_nothing_after_a_truncated_listing(proxy, seaweed, bucket,
                                                              tmp_path, monkeypatch, capsys):
    from fasts3.cli import main

    for k, v in seaweed.env().items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", proxy.endpoint_url)
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint_url)
    url = f"s3://{bucket}/m"
    with S3(s3root=url, endpoint_url=proxy.endpoint_url,
            session_vars=seaweed.session_vars(), progress=False) as s3:
        s3.put_many([("a.txt", b"a"), ("b.txt", b"b")])
    dest = tmp_path / "dest"
    dest.mkdir()
    for name in ("a.txt", "b.txt", "local-only.txt"):
        (dest / name).write_text(name)
    proxy.set_faults(truncated_listing=1.0, match=lambda r: "list-type" in r.query)
    code = main(["sync", url, str(dest), "--delete", "-q"])
    err = capsys.readouterr().err
    assert code != 0 and "TruncatedListing" in err
    assert sorted(os.listdir(dest)) == ["a.txt", "b.txt", "local-only.txt"]
    proxy.clear()
    assert main(["sync", url, str(dest), "--delete", "-q"]) == 0  # control: it would delete
    assert sorted(os.listdir(dest)) == ["a.txt", "b.txt"]


# -- Range ignored --------------------------------------------------------------------------
def test_ignored_range_is_a_typed_error_without_reading_the_body(proxy, via, bucket, tmp_path):
    big = os.urandom(40 * MiB)
    with S3(s3root=f"s3://{bucket}", **via, config=quick_config(),
            tmproot=str(tmp_path)) as s3:
        s3.put("big", big)
        s3.put("tiny", b"0123456789")
        proxy.set_faults(ignore_range=1.0, match=lambda r: "range" in r.headers)
        # the whole object inside the range asked for: that answer is the range
        assert s3.get(S3GetObject("tiny", offset=0, length=100)).blob == b"0123456789"
        assert s3.get(S3GetObject("tiny", length=-50)).blob == b"0123456789"
        proxy.reset_stats()
        for call in (lambda: s3.get("big"),
                     lambda: s3.get(S3GetObject("big", offset=MiB, length=MiB)),
                     lambda: s3.get(S3GetObject("tiny", offset=2, length=3))):
            with pytest.raises(S3ProtocolError) as ei:
                call()
            assert ei.value.code == "RangeIgnored"
        left = os.listdir(s3.tmpdir)  # the two good downloads of 'tiny' above, no more
        assert partial_files(s3.tmpdir) == [] and len(left) == 2, left
        ignored = [r for r in proxy.records if r.fault == "ignore_range"]
        big_answers = [r for r in ignored if r.path.endswith("/big")]
        # permanent (no range asked twice: not retried) and dropped unread: a part's answer
        # of the whole 40 MiB object never crossed in full
        asked = [(r.path, r.headers["range"]) for r in ignored]
        assert len(asked) >= 3 and len(set(asked)) == len(asked) and big_answers
        deadline = time.monotonic() + 10
        while not all(r.finished for r in big_answers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert all(r.sent < 30 * MiB for r in big_answers), [r.sent for r in big_answers]


def test_open_with_ignored_range_reads_no_whole_object(proxy, via, bucket):
    with S3(s3root=f"s3://{bucket}", **via, config=quick_config()) as s3:
        s3.put("big", os.urandom(40 * MiB))
        proxy.set_faults(ignore_range=1.0, match=lambda r: "range" in r.headers)
        with pytest.raises(S3ProtocolError) as ei:
            with s3.open("big") as f:
                f.read(10)
    assert ei.value.code == "RangeIgnored"
    ignored = [r for r in proxy.records if r.fault == "ignore_range"]
    assert len(ignored) == 1  # permanent: not retried
    deadline = time.monotonic() + 10
    while not ignored[0].finished and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ignored[0].sent < 30 * MiB  # the connection was dropped, the body left unread


# -- regions ------------------------------------------------------------------------------
def test_bucket_in_another_region_is_followed_once_and_remembered(proxy, via, bucket):
    data = os.urandom(6 * MiB)
    proxy.bucket_regions[bucket] = "eu-west-3"
    cfg = quick_config(processes=2)
    with S3(s3root=f"s3://{bucket}", **via, config=cfg, region="us-east-1") as s3:
        s3.put("k", data)
        s3.put_many([(f"s/{i}", b"%d" % i) for i in range(20)])
        assert s3.get("k").blob == data
        assert len(s3.list_recursive(["s"])) == 20
        with s3.open("k") as f:
            assert f.read(100) == data[:100]
        redirects = proxy.stats.faults["redirect"]
        # learned per worker process (and by open()'s own transport): only requests already
        # in flight in a worker before it learned can be redirected
        assert 1 <= redirects <= cfg.processes * cfg.requests_per_process + 1
        assert len(s3.get_many([f"s/{i}" for i in range(20)])) == 20
        assert proxy.stats.faults["redirect"] == redirects  # remembered
    signed = [r for r in proxy.records if r.fault is None]
    assert signed and all("/eu-west-3/s3/" in r.headers["authorization"] for r in signed)


@pytest.mark.parametrize("host,region,want", [
    ("s3.amazonaws.com", "eu-west-3", "s3.eu-west-3.amazonaws.com"),
    ("s3.us-east-1.amazonaws.com", "ap-south-1", "s3.ap-south-1.amazonaws.com"),
    ("s3-us-west-2.amazonaws.com", "eu-west-1", "s3.eu-west-1.amazonaws.com"),
    ("s3.cn-north-1.amazonaws.com.cn", "cn-northwest-1", "s3.cn-northwest-1.amazonaws.com.cn"),
    ("127.0.0.1", "eu-west-3", "127.0.0.1"),
    ("minio.example.org", "eu-west-3", "minio.example.org"),
])
def test_regional_host_changes_only_aws_hosts(host, region, want):
    from fasts3.engine.regions import is_aws_host, regional_host

    assert regional_host(host, region) == want
    assert is_aws_host(host) == ("amazonaws" in host)
