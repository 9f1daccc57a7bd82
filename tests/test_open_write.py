"""S3.open(key, "wb"/"w"/"r"): the streaming writer (parts upload in parallel while the caller
writes, a bounded window of staged parts, the object only on close, aborted on exception) and
text modes. Against SeaweedFS, through the fault proxy where requests are counted."""

from __future__ import annotations

import gc
import io
import os
import random
import stat
import threading
import time

import pytest
from botocore.exceptions import ClientError
from faultproxy import MiB, open_uploads, quick_config

from fasts3 import S3
from fasts3.errors import S3AccessDenied, S3InvalidObject, S3NotFound
from fasts3.seekable import S3File
from fasts3.writer import S3Writer


def _exists(client, bucket: str, key: str) -> bool:
    try:
        client.head_object(Bucket=bucket, Key=key)
        return True
    except ClientError as e:
        assert e.response["Error"]["Code"] in ("404", "NoSuchKey")
        return False


def _staged(tmpdir: str) -> list[str]:
    return [n for n in os.listdir(tmpdir) if n.endswith(".part")]


def _parts(proxy) -> list:
    return [r for r in list(proxy.records) if "partNumber" in r.query]


def _wait_for_idle_uploader() -> None:
    deadline = time.monotonic() + 30
    while any(t.name == "fasts3-writer" for t in threading.enumerate()):
        assert time.monotonic() < deadline, "the uploader thread did not end"
        time.sleep(0.05)


@pytest.fixture
def client(seaweed):
    return seaweed.client()


def test_small_object_is_one_put_on_close(via, proxy, client, bucket, tmp_path):
    with S3(s3root=f"s3://{bucket}", tmproot=str(tmp_path), config=quick_config(),
            **via) as s3:
        with s3.open("cfg/small.json", "wb", metadata={"epoch": 3}) as f:
            assert isinstance(f, S3Writer) and f.writable() and not f.seekable()
            assert f.name == f"s3://{bucket}/cfg/small.json" and f.mode == "wb"
            for piece in (b'{"a": ', b"1", b"}"):
                assert f.write(piece) == len(piece)
            assert f.tell() == 8
            assert not _exists(client, bucket, "cfg/small.json")  # nothing before close
        assert f.closed
        info = s3.info("cfg/small.json")
        assert info.size == 8 and info.metadata == {"epoch": 3}
        assert info.content_type == "application/json"
        assert s3.get("cfg/small.json").blob == b'{"a": 1}'
        assert not [r for r in proxy.records if "uploads" in r.query or "uploadId" in r.query]
        assert _staged(s3.tmpdir) == []


def test_exactly_one_part_and_empty_object_are_single_puts(via, proxy, client, bucket):
    with S3(s3root=f"s3://{bucket}", config=quick_config(), **via) as s3:
        data = os.urandom(5 * MiB)
        with s3.open("one.bin", "wb") as f:
            f.write(data)
        with s3.open("empty.bin", "wb"):
            pass
        assert s3.get("one.bin").blob == data and s3.get("empty.bin").blob == b""
        assert not [r for r in proxy.records if "uploads" in r.query]


def test_parts_upload_in_parallel_while_writing(via, proxy, client, bucket, tmp_path):
    """Parts are sent before close() and overlap; bytes of odd-sized writes round-trip."""
    proxy.latency_match = lambda r: "partNumber" in r.query
    proxy.latency = 0.5
    rng = random.Random(7)
    data = rng.randbytes(23 * MiB + 4321)
    with S3(s3root=f"s3://{bucket}", tmproot=str(tmp_path), config=quick_config(),
            **via) as s3:
        with s3.open("big.bin", "wb", window=4) as f:
            pos = 0
            while pos < len(data):
                n = rng.choice((1, 17, 4096, 700_000, 3 * MiB))
                f.write(memoryview(data)[pos:pos + n])
                pos += n
            deadline = time.monotonic() + 30
            while len(_parts(proxy)) < 4 and time.monotonic() < deadline:
                time.sleep(0.05)
            sent_before_close = len(_parts(proxy))
            staged = _staged(s3.tmpdir)  # the last part, being filled (and maybe more)
            assert staged and all(stat.S_IMODE(os.stat(os.path.join(s3.tmpdir, n)).st_mode)
                                  == 0o600 for n in staged)
            assert open_uploads(client, bucket, "big.bin")  # started, not complete
            assert not _exists(client, bucket, "big.bin")
        assert sent_before_close >= 4  # 4 full parts left while the caller still held f
        parts = _parts(proxy)
        assert sorted(int(r.query["partNumber"]) for r in parts) == [1, 2, 3, 4, 5]
        assert max(r.inflight for r in parts) >= 2  # parts overlapped
        assert s3.get("big.bin").blob == data
        assert open_uploads(client, bucket) == []
        assert _staged(s3.tmpdir) == []


def test_window_bounds_staged_parts_and_blocks_the_writer(via, proxy, bucket, tmp_path):
    proxy.latency_match = lambda r: "partNumber" in r.query
    proxy.latency = 1.0
    with S3(s3root=f"s3://{bucket}", tmproot=str(tmp_path), config=quick_config(),
            **via) as s3:
        seen: list[int] = []
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                seen.append(len(_staged(s3.tmpdir)))
                time.sleep(0.01)

        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            chunk = os.urandom(MiB)
            started = time.monotonic()
            with s3.open("w.bin", "wb", window=2) as f:
                for _ in range(8 * 5):  # 8 parts of 5 MiB
                    f.write(chunk)
                writing = time.monotonic() - started
        finally:
            stop.set()
            sampler.join()
        assert max(seen) <= 3  # 2 queued or uploading + the one being filled
        assert max(seen) >= 2
        assert writing >= 2.0  # 7 parts shipped 2 at a time at 1 s each: the writer waited
        assert s3.info("w.bin").size == 40 * MiB


def test_exception_in_with_block_aborts(seaweed, via, client, bucket, tmp_path):
    with S3(s3root=f"s3://{bucket}", tmproot=str(tmp_path), config=quick_config(),
            **via) as s3:
        with pytest.raises(RuntimeError, match="model diverged"):
            with s3.open("ckpt.pt", "wb") as f:
                f.write(os.urandom(12 * MiB))  # two parts shipped: an upload exists
                deadline = time.monotonic() + 30
                while not open_uploads(client, bucket) and time.monotonic() < deadline:
                    time.sleep(0.05)
                assert open_uploads(client, bucket)
                raise RuntimeError("model diverged")
        assert f.closed
        assert open_uploads(client, bucket) == []
        assert not _exists(client, bucket, "ckpt.pt")
        assert _staged(s3.tmpdir) == []
        with pytest.raises(ValueError):
            f.write(b"x")


def test_text_mode_exception_aborts_and_close_publishes(client, bucket, s3_kwargs):
    with S3(s3root=f"s3://{bucket}", config=quick_config(), **s3_kwargs) as s3:
        with pytest.raises(KeyError):
            with s3.open("t.txt", "w") as f:
                f.write("never\n")
                raise KeyError("x")
        assert not _exists(client, bucket, "t.txt")
        f = s3.open("t.txt", "w", encoding="latin-1", newline="\r\n")
        f.write("héllo\nwörld\n")
        assert not _exists(client, bucket, "t.txt")
        f.close()
        body = client.get_object(Bucket=bucket, Key="t.txt")["Body"].read()
        assert body == "héllo\r\nwörld\r\n".encode("latin-1")
        with s3.open("t.txt", "r", encoding="latin-1", newline="") as r:
            assert isinstance(r, io.TextIOWrapper)
            assert r.readlines() == ["héllo\r\n", "wörld\r\n"]
        with s3.open("t.txt", "rt", encoding="latin-1") as r:
            assert r.read() == "héllo\nwörld\n"  # universal newlines by default


def test_text_round_trip_of_many_lines_across_parts(client, bucket, s3_kwargs):
    lines = [f"{i},ünïcode-{i * 7},{'x' * (i % 50)}\n" for i in range(300_000)]
    with S3(s3root=f"s3://{bucket}", config=quick_config(), **s3_kwargs) as s3:
        with s3.open("rows.csv", "w") as f:
            for line in lines:
                f.write(line)
        assert s3.info("rows.csv").size > 10 * MiB  # a multipart upload
        with s3.open("rows.csv", "r") as r:
            assert r.read() == "".join(lines)


def test_binary_read_mode_is_the_seekable_file(client, bucket, s3_kwargs):
    client.put_object(Bucket=bucket, Key="r.bin", Body=b"0123456789")
    with S3(s3root=f"s3://{bucket}", **s3_kwargs) as s3:
        for f in (s3.open("r.bin"), s3.open("r.bin", "rb")):
            with f:
                assert isinstance(f, S3File) and f.read() == b"0123456789"
        with pytest.raises(S3NotFound):
            s3.open("missing.bin", "r")


@pytest.mark.parametrize("mode, kwargs, exc", [
    ("a", {}, ValueError), ("r+", {}, ValueError), ("x", {}, ValueError),
    ("rb", {"encoding": "utf-8"}, ValueError), ("wb", {"newline": ""}, ValueError),
    ("r", {"metadata": {"a": 1}}, ValueError), ("rb", {"acl": "private"}, ValueError),
    ("wb", {"version_id": "v1"}, ValueError), ("wb", {"part_size": MiB}, ValueError),
    ("wb", {"window": 0}, ValueError), ("wb", {"acl": "everyone"}, S3InvalidObject),
    ("wb", {"metadata": {"x": object()}}, S3InvalidObject),
    ("w", {"cache_control": "a\nb"}, S3InvalidObject),
])
def test_bad_open_arguments_send_nothing(via, proxy, bucket, mode, kwargs, exc):
    with S3(s3root=f"s3://{bucket}", **via) as s3:
        proxy.reset_stats()
        with pytest.raises(exc):
            s3.open("k.bin", mode, **kwargs)
        assert proxy.stats.requests == 0


def test_failed_part_raises_typed_error_and_aborts(via, proxy, client, bucket, tmp_path):
    proxy.custom_error = (403, "AccessDenied", "Access Denied")
    proxy.set_faults(match=lambda r: r.query.get("partNumber") == "2", error=1.0)
    with S3(s3root=f"s3://{bucket}", tmproot=str(tmp_path), config=quick_config(),
            **via) as s3:
        f = s3.open("denied.bin", "wb")
        with pytest.raises(S3AccessDenied) as info:
            for _ in range(40):
                f.write(os.urandom(MiB))
            f.close()
        assert info.value.url == f"s3://{bucket}/denied.bin" and info.value.code == "AccessDenied"
        deadline = time.monotonic() + 30  # the uploader aborts as soon as the part fails
        while open_uploads(client, bucket) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert open_uploads(client, bucket) == []
        with pytest.raises(S3AccessDenied):
            f.close()  # the failure is raised once more, then the writer is closed
        assert f.closed
        f.close()
        assert not _exists(client, bucket, "denied.bin")
        assert _staged(s3.tmpdir) == []


def test_unclosed_writer_is_aborted_by_gc_and_by_closing_the_client(client, bucket,
                                                                    s3_kwargs):
    with S3(s3root=f"s3://{bucket}", config=quick_config(), **s3_kwargs) as s3:
        f = s3.open("dropped.bin", "wb")
        f.write(os.urandom(11 * MiB))
        deadline = time.monotonic() + 30
        while not open_uploads(client, bucket) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert open_uploads(client, bucket)
        f.abort()  # explicit abort: the same path as the finalizer's
        assert open_uploads(client, bucket) == [] and f.closed
        g = s3.open("gc.bin", "wb")
        g.write(b"abc")
        del g
        gc.collect()
        g = s3.open("gc-parts.bin", "wb")
        g.write(os.urandom(11 * MiB))  # two parts go up, then the uploader thread ends
        _wait_for_idle_uploader()
        assert open_uploads(client, bucket)
        del g
        gc.collect()
        assert open_uploads(client, bucket) == []  # aborted by the finalizer, client open
        h = s3.open("left-open.bin", "wb")
        h.write(os.urandom(11 * MiB))
    assert h.closed  # closing the client aborted it
    assert open_uploads(client, bucket) == []
    for key in ("dropped.bin", "gc.bin", "gc-parts.bin", "left-open.bin"):
        assert not _exists(client, bucket, key)


def test_put_options_of_the_writer_are_read_back(client, bucket, s3_kwargs):
    with S3(s3root=f"s3://{bucket}", config=quick_config(), **s3_kwargs) as s3:
        for key, size in (("small.gz", 100), ("large.gz", 11 * MiB)):
            with s3.open(key, "wb", content_type="text/csv", cache_control="max-age=60",
                         content_encoding="gzip",
                         content_disposition='attachment; filename="t.csv"') as f:
                f.write(os.urandom(size))
            head = client.head_object(Bucket=bucket, Key=key)
            assert head["ContentType"] == "text/csv"
            assert head["CacheControl"] == "max-age=60"
            assert head["ContentEncoding"] == "gzip"
            assert head["ContentDisposition"] == 'attachment; filename="t.csv"'


CHECKPOINT = r'''
import hashlib, json, os, sys, threading, time
import psutil
from fasts3 import S3, TransferConfig

endpoint, bucket, total = sys.argv[1], sys.argv[2], int(sys.argv[3])
proc = psutil.Process()
peak = [0]
stop = threading.Event()

def sample():
    while not stop.is_set():
        peak[0] = max(peak[0], proc.memory_info().rss)
        time.sleep(0.005)

MiB = 1 << 20
base = bytearray(os.urandom(MiB))
small = os.urandom(200)
cfg = TransferConfig(processes=2, part_size=8 * MiB)
session = dict(aws_access_key_id=os.environ["KEY"], aws_secret_access_key=os.environ["SECRET"],
               region_name="us-east-1")
with S3(s3root=f"s3://{bucket}", endpoint_url=endpoint, session_vars=session, config=cfg,
        progress=False) as s3:
    s3.put("warm-up", b"x")  # workers started: the baseline includes the pool's pipes
    baseline = proc.memory_info().rss
    threading.Thread(target=sample, daemon=True).start()
    digest = hashlib.sha256()
    started = time.monotonic()
    with s3.open("ckpt.pt", "wb") as f:  # the shape of torch.save(model, f)
        written, i = 0, 0
        while written < total:
            f.write(small)  # pickle opcodes and zip headers: many small writes
            digest.update(small)
            base[:8] = i.to_bytes(8, "little")  # a tensor's storage: large writes
            f.write(base)
            digest.update(base)
            written += len(small) + len(base)
            i += 1
    seconds = time.monotonic() - started
    stop.set()
    obj = s3.get("ckpt.pt")
    h = hashlib.sha256()
    with open(obj.path, "rb") as r:
        while chunk := r.read(8 * MiB):
            h.update(chunk)
    print(json.dumps({"growth": peak[0] - baseline, "size": obj.size, "written": written,
                      "same": h.hexdigest() == digest.hexdigest(), "seconds": seconds}))
'''


def test_one_gib_checkpoint_streams_with_bounded_memory(seaweed, bucket, tmp_path):
    """A torch.save-style stream of 1 GiB (small and 1 MiB writes) to open("wb"): the
    process's RSS grows by less than 64 MiB, and the object reads back byte for byte."""
    import json
    import subprocess
    import sys

    v = seaweed.session_vars()
    env = dict(os.environ, KEY=v["aws_access_key_id"], SECRET=v["aws_secret_access_key"],
               PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    r = subprocess.run([sys.executable, "-c", CHECKPOINT, seaweed.endpoint_url, bucket,
                        str(1 << 30)], capture_output=True, text=True, env=env, timeout=280,
                       cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["written"] >= 1 << 30 and out["size"] == out["written"] and out["same"]
    print(out)
    assert out["growth"] < 64 * MiB, out
