"""S3.open(): a read-only, seekable, block-cached, ETag-pinned file over one object.

Everything runs against the session's SeaweedFS; retries go through ``faultproxy``.
"""

from __future__ import annotations

import io
import os
import random
import tarfile

import pytest
from faultproxy import FaultProxy

from fasts3 import S3, TransferConfig
from fasts3.errors import S3Error, S3NotFound, S3RetriesExhausted, S3URLError
from fasts3.seekable import S3File, S3ObjectChanged

KiB = 1 << 10
MiB = 1 << 20


@pytest.fixture
def put(seaweed, bucket):
    """``put(key, data)`` uploads with boto3 and returns ``data``."""
    client = seaweed.client()

    def _put(key: str, data: bytes) -> bytes:
        client.put_object(Bucket=bucket, Key=key, Body=data)
        return data

    return _put


def test_read_seek_tell_every_whence(put, bucket, s3_kwargs):
    data = put("obj.bin", os.urandom(MiB + 123))
    with S3(s3root=f"s3://{bucket}", **s3_kwargs) as s3, s3.open("obj.bin",
                                                                block_size=64 * KiB) as f:
        assert isinstance(f, S3File) and isinstance(f, io.RawIOBase)
        assert f.size == len(data) and f.name == f"s3://{bucket}/obj.bin" and f.mode == "rb"
        assert f.etag and f.tell() == 0
        assert f.read(10) == data[:10] and f.tell() == 10
        assert f.seek(1000) == 1000 and f.read(5) == data[1000:1005]
        assert f.seek(-5, io.SEEK_CUR) == 1000 and f.read(5) == data[1000:1005]
        assert f.seek(-100, io.SEEK_END) == len(data) - 100
        assert f.read() == data[-100:] and f.read() == b"" and f.read(1) == b""
        assert f.seek(10, io.SEEK_END) == len(data) + 10 and f.read(5) == b""  # past the end
        with pytest.raises(OSError):
            f.seek(-1)
        with pytest.raises(OSError):
            f.seek(-len(data) - 1, io.SEEK_END)
        with pytest.raises(ValueError):
            f.seek(0, 3)
        assert f.tell() == len(data) + 10  # failed seeks leave the position alone
        f.seek(70_000)
        buf = bytearray(200_000)
        assert f.readinto(buf) == 200_000 and buf == data[70_000:270_000]
        f.seek(len(data) - 10)
        assert f.readinto(buf) == 10 and buf[:10] == data[-10:] and f.readinto(buf) == 0
        f.seek(0)
        assert f.read(None) == data
        f.seek(5)
        assert f.readall() == data[5:]
        for _ in range(200):  # random reads agree with the data
            pos, n = random.randrange(len(data) + 10), random.randrange(1, 300_000)
            f.seek(pos)
            assert f.read(n) == data[pos:pos + n]


def test_io_protocol_and_close(put, bucket, s3_kwargs):
    text = "".join(f"line {i}\n" for i in range(20_000)).encode()
    put("t.txt", text)
    with S3(s3root=f"s3://{bucket}", **s3_kwargs) as s3:
        with s3.open("t.txt") as f:
            assert f.readable() and f.seekable() and not f.writable()
            with pytest.raises(io.UnsupportedOperation):
                f.write(b"x")
            with pytest.raises(io.UnsupportedOperation):
                f.fileno()
            assert f.readline() == b"line 0\n"
        assert f.closed
        f.close()  # idempotent
        for op in (f.read, f.tell, f.readable, lambda: f.seek(0), lambda: f.readinto(b"x")):
            with pytest.raises(ValueError):
                op()
        with io.TextIOWrapper(io.BufferedReader(s3.open("t.txt"), 4096), "utf-8") as t:
            lines = t.readlines()
        assert len(lines) == 20_000 and lines[-1] == "line 19999\n"
        br = io.BufferedReader(s3.open("t.txt"))
        br.seek(7)
        assert br.read(7) == b"line 1\n" and br.peek(1)[:1] == b"l"
        br.seek(-7, io.SEEK_END)
        assert br.read() == text[-7:]
        br.close()


def test_cached_reads_and_seeks_send_no_request(put, bucket, s3_kwargs):
    data = put("c.bin", os.urandom(MiB))
    with S3(s3root=f"s3://{bucket}", **s3_kwargs) as s3, s3.open(
            "c.bin", block_size=128 * KiB, readahead=0) as f:
        assert f.requests == 1 and f.bytes_fetched == 128 * KiB  # open fetched block 0
        assert f.read(1000) == data[:1000]
        f.seek(100_000)
        assert f.read(20_000) == data[100_000:120_000]
        f.seek(0, io.SEEK_END)
        f.seek(3)
        assert f.read(10) == data[3:13]
        assert f.requests == 1
        f.seek(500_000)
        assert f.read(10) == data[500_000:500_010]
        assert f.requests == 2 and f.bytes_fetched == 256 * KiB  # one more aligned block
        f.seek(0)
        assert f.read(10) == data[:10] and f.requests == 2


def test_cache_is_bounded_lru(put, bucket, s3_kwargs):
    bs = 16 * KiB
    data = put("lru.bin", os.urandom(64 * bs))
    with S3(s3root=f"s3://{bucket}", **s3_kwargs) as s3, s3.open(
            "lru.bin", block_size=bs, cache_size=4 * bs, readahead=0) as f:
        rng = random.Random(7)
        for _ in range(300):
            pos = rng.randrange(len(data))
            f.seek(pos)
            assert f.read(100) == data[pos:pos + 100]
            assert f.cached_bytes <= 4 * bs
        for i in (1, 2, 3, 4):  # fill the cache with blocks 1..4
            f.seek(i * bs)
            f.read(1)
        before = f.requests
        for i in (1, 2, 3, 4):
            f.seek(i * bs)
            f.read(1)
        assert f.requests == before  # all four held
        f.seek(10 * bs)
        f.read(1)  # evicts block 1, the least recently used
        f.seek(2 * bs)
        f.read(1)
        assert f.requests == before + 1
        f.seek(1 * bs)
        assert f.read(5) == data[bs:bs + 5] and f.requests == before + 2


def test_sequential_reads_use_readahead(put, bucket, s3_kwargs):
    data = put("seq.bin", os.urandom(8 * MiB))
    with S3(s3root=f"s3://{bucket}", **s3_kwargs) as s3:
        with s3.open("seq.bin", block_size=16 * KiB) as f:
            chunks = iter(lambda: f.read(16 * KiB), b"")
            assert b"".join(chunks) == data
            assert f.bytes_fetched == len(data)  # nothing fetched twice
            # 512 blocks; the window grows to 1/16 of the run so far (512 KiB at the end) and
            # is refilled half a window at a time in quarter-window chunks (one per thread).
            assert f.requests < 512 * 0.6
        with s3.open("seq.bin", block_size=64 * KiB, readahead=0) as f:
            while f.read(16 * KiB):
                pass
            assert f.requests == 128 and f.bytes_fetched == len(data)
        with s3.open("seq.bin", block_size=64 * KiB) as f:  # one big read, fetched in chunks
            assert f.read() == data and f.bytes_fetched == len(data)
        with s3.open("seq.bin", block_size=64 * KiB) as f:  # short sequential reads waste little
            f.seek(3 * MiB)
            for _ in range(4):
                f.read(4 * KiB)
            assert f.bytes_fetched <= 64 * KiB * 3


def test_object_overwritten_while_open(put, bucket, s3_kwargs):
    old = put("o.bin", os.urandom(MiB))
    with S3(s3root=f"s3://{bucket}", **s3_kwargs) as s3:
        with s3.open("o.bin", block_size=64 * KiB, readahead=0) as f:
            assert f.read(100) == old[:100]
            put("o.bin", os.urandom(MiB))  # same size, new content
            f.seek(10)
            assert f.read(100) == old[10:110]  # held data is still the old version
            f.seek(512 * KiB)
            with pytest.raises(S3ObjectChanged) as ei:
                f.read(100)
            e = ei.value
            assert isinstance(e, S3Error) and e.code == "ObjectChanged" and e.status == 412
            assert e.url == f"s3://{bucket}/o.bin"
        with s3.open("o.bin", block_size=64 * KiB) as f:
            f.read(10)
            put("o.bin", b"short now")
            f.seek(900 * KiB)
            with pytest.raises(S3ObjectChanged):
                f.read(10)


def test_missing_empty_and_options(put, bucket, s3_kwargs):
    put("empty", b"")
    small = put("small", b"0123456789")
    with S3(s3root=f"s3://{bucket}", **s3_kwargs) as s3:
        with pytest.raises(S3NotFound) as ei:
            s3.open("nope/missing.bin")
        assert ei.value.url == f"s3://{bucket}/nope/missing.bin"
        for initial in ("head", "tail"):
            with s3.open("empty", initial=initial) as f:
                assert f.size == 0 and f.read() == b"" and f.seek(0, io.SEEK_END) == 0
            with s3.open("small", initial=initial) as f:
                assert f.size == 10 and f.read() == small and f.requests == 1
        with s3.open("/small", initial="tail", block_size=4 * KiB) as f:
            assert f.read(3) == b"012"
        for bad in (dict(block_size=10), dict(threads=0), dict(cache_size=1),
                    dict(readahead_ratio=0), dict(initial="middle"), dict(readahead=-1)):
            with pytest.raises(S3URLError):
                s3.open("small", **bad)
        with pytest.raises(S3URLError):
            s3.open(f"s3://{bucket}/small")  # absolute URL with a root
    with S3(**s3_kwargs) as s3, s3.open(f"s3://{bucket}/small") as f:
        assert f.read() == small


def test_tail_first_request_serves_the_end(put, bucket, s3_kwargs):
    data = put("tail.bin", os.urandom(300 * KiB))
    with S3(s3root=f"s3://{bucket}", **s3_kwargs) as s3, s3.open(
            "tail.bin", initial="tail", block_size=64 * KiB, readahead=0) as f:
        assert f.requests == 1 and f.bytes_fetched == 64 * KiB
        f.seek(-64 * KiB, io.SEEK_END)
        assert f.read() == data[-64 * KiB:] and f.requests == 1
        f.seek(0)
        assert f.read(10) == data[:10] and f.requests == 2


def test_tarfile_reads_a_member(put, bucket, s3_kwargs):
    buf = io.BytesIO()
    members = {f"m{i}.bin": os.urandom(50_000 + i) for i in range(20)}
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, blob in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    put("a.tar", buf.getvalue())
    with S3(s3root=f"s3://{bucket}", **s3_kwargs) as s3, s3.open("a.tar") as f, \
            tarfile.open(fileobj=f, mode="r:") as tar:
        assert tar.extractfile("m17.bin").read() == members["m17.bin"]


def test_transient_failures_are_retried(seaweed, put, bucket, s3_kwargs):
    data = put("r.bin", os.urandom(2 * MiB))
    cfg = TransferConfig(max_attempts=10, backoff_base=0.001, backoff_max=0.01)
    with FaultProxy(seaweed.endpoint_url, seed=3) as proxy:
        kwargs = dict(s3_kwargs, endpoint_url=proxy.endpoint_url, config=cfg)
        with S3(s3root=f"s3://{bucket}", **kwargs) as s3:
            proxy.set_faults(slowdown=0.15, error500=0.1, reset_before=0.1, truncate=0.1,
                             reset_after=0.05)
            with s3.open("r.bin", block_size=64 * KiB) as f:
                out = bytearray()
                while chunk := f.read(100 * KiB):
                    out += chunk
                assert out == data
                assert f.requests > 32  # 32 blocks, and some failed attempts
            assert sum(proxy.stats.faults.values()) > 0
            proxy.set_faults(error500=1.0)
            with pytest.raises(S3RetriesExhausted) as ei:
                s3.open("r.bin")
            assert ei.value.url == f"s3://{bucket}/r.bin"
            proxy.clear()
            with s3.open("r.bin", block_size=64 * KiB, readahead=0) as f:
                proxy.set_faults(error500=1.0)
                f.seek(MiB)
                with pytest.raises(S3RetriesExhausted):
                    f.read(10)
                proxy.clear()
                assert f.read(10) == data[MiB:MiB + 10]  # a later read tries again
