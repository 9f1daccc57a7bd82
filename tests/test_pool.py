"""The engine seen through the API on SeaweedFS: multipart GET/PUT byte for byte, one pool of
worker processes per context (reused, gone after close), the temp root's lifetime, and a
1000-object batch."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import random
import stat

import pytest
from buckets import scratch_bucket

from fasts3 import S3, S3Error, S3GetObject, S3TransientError, TransferConfig

MiB = 1 << 20
PART = 5 * MiB
BIG = 11 * MiB + 12345  # three parts of 5 MiB: 5 + 5 + 1.01


@pytest.fixture(scope="module")
def bucket(seaweed):
    with scratch_bucket(seaweed, "pool") as name:
        yield name


def _kwargs(seaweed, tmproot, **extra):
    cfg = TransferConfig(part_size=PART, multipart_threshold=PART, processes=2,
                         requests_per_process=8)
    return dict(endpoint_url=seaweed.endpoint_url, session_vars=seaweed.session_vars(),
                progress=False, tmproot=str(tmproot), config=cfg, **extra)


@pytest.fixture(scope="module")
def s3(seaweed, bucket, tmp_path_factory):
    with S3(s3root=f"s3://{bucket}/root", **_kwargs(seaweed, tmp_path_factory.mktemp("pool"))) \
            as s3:
        yield s3


@pytest.fixture(scope="module")
def big():
    return random.Random(42).randbytes(BIG)


# -- multipart ---------------------------------------------------------------------------------
def test_multipart_put_round_trip(s3, seaweed, bucket, big):
    s3.put("big/put.bin", big, metadata={"k": "v"})
    head = seaweed.client().head_object(Bucket=bucket, Key="root/big/put.bin")
    assert head["ETag"].strip('"').endswith("-3")  # it was a 3-part multipart upload
    assert head["ContentLength"] == BIG
    assert head["Metadata"] == {"metaflow-user-attributes": '{"k": "v"}'}  # Metaflow's way
    assert s3.info("big/put.bin").metadata == {"k": "v"}
    body = seaweed.client().get_object(Bucket=bucket, Key="root/big/put.bin")["Body"].read()
    assert hashlib.sha256(body).digest() == hashlib.sha256(big).digest()


def test_multipart_put_files_round_trip(s3, seaweed, bucket, big, tmp_path):
    path = tmp_path / "big.parquet"
    path.write_bytes(big)
    [(key, _)] = s3.put_files([("big/file.parquet", str(path))])
    head = seaweed.client().head_object(Bucket=bucket, Key="root/" + key)
    assert head["ETag"].strip('"').endswith("-3")
    assert head["ContentType"] == "application/vnd.apache.parquet"
    assert s3.get(key).blob == big


def test_get_in_parts_round_trip(s3, seaweed, bucket, big):
    # Uploaded by boto3 in one PUT, so only our GET path is under test here.
    seaweed.client().put_object(Bucket=bucket, Key="root/big/single.bin", Body=big)
    o = s3.get("big/single.bin")
    assert o.size == BIG and o.range_info == (BIG, 0, BIG)
    with open(o.path, "rb") as f:
        assert f.read() == big
    assert not [n for n in os.listdir(s3.tmpdir) if n.endswith(".part")]


@pytest.fixture(scope="module")
def big_object(s3, big):
    s3.put("big/ranges.bin", big)
    return "big/ranges.bin"


@pytest.mark.parametrize("offset, length", [
    (PART - 10, 20),  # across a part boundary
    (3, 2 * PART),  # several parts, unaligned
    (PART, None),  # to the end from a part boundary
    (BIG - 7, 100),  # clamped
    (0, -(PART + 3)),  # a suffix longer than a part
    (7, BIG),  # clamped to the end, starting unaligned
])
def test_ranges_of_a_large_object(s3, big_object, big, offset, length):
    o = s3.get(S3GetObject(big_object, offset, length))
    if length is None:
        expected, start = big[offset:], offset
    elif length < 0:
        expected, start = big[length:], BIG + length
    else:
        expected, start = big[offset:offset + length], offset
    assert o.blob == expected
    assert o.range_info == (BIG, start, len(expected))


@pytest.mark.parametrize("size, parts", [(PART - 1, None), (PART, 1), (PART + 1, 2)])
def test_sizes_around_the_part_size(s3, seaweed, bucket, size, parts):
    data = random.Random(size).randbytes(size)
    s3.put(f"edge/{size}", data)
    etag = seaweed.client().head_object(Bucket=bucket, Key=f"root/edge/{size}")["ETag"]
    assert etag.strip('"').endswith(f"-{parts}") if parts else "-" not in etag
    o = s3.get(f"edge/{size}")
    assert o.blob == data and o.range_info == (size, 0, size)
    tail = s3.get(S3GetObject(f"edge/{size}", size - 2, 10))
    assert tail.blob == data[-2:] and tail.range_info == (size, size - 2, 2)


def test_many_large_and_small_together(s3, big):
    items = [("mix/big1", big), ("mix/small", b"s"), ("mix/big2", big[::-1]), ("mix/e", b"")]
    s3.put_many(items)
    objs = s3.get_many([k for k, _ in items] + [S3GetObject("mix/big2", PART - 1, 2)])
    assert [o.blob for o in objs] == [v for _, v in items] + [big[::-1][PART - 1:PART + 1]]


# -- the pool ----------------------------------------------------------------------------------
def _pids(s3):
    return sorted(w.proc.pid for w in s3._engine.pool.workers())


def test_pool_is_reused_across_calls(s3):
    s3.put("reuse/a", b"a")
    before = _pids(s3)
    assert 1 <= len(before) <= 2  # started as earlier batches needed them, <= processes
    s3.get_many(["reuse/a"] * 5)
    s3.list_recursive(["reuse"])
    s3.info("reuse/a")
    assert _pids(s3) == before
    assert all(w.proc.poll() is None for w in s3._engine.pool.workers())


def test_lifecycle_pool_and_temp_root(seaweed, bucket, tmp_path):
    s3 = S3(s3root=f"s3://{bucket}/root", **_kwargs(seaweed, tmp_path))
    tmpdir = s3.tmpdir
    assert os.path.dirname(tmpdir) == str(tmp_path)
    assert stat.S_IMODE(os.stat(tmpdir).st_mode) == 0o700
    assert s3._engine.pool is None  # workers start lazily, on the first batch
    with s3:
        s3.put("life/a", b"abc")
        o = s3.get("life/a")
        assert o.path.startswith(tmpdir + os.sep) and os.path.isfile(o.path)
        procs = [w.proc for w in s3._engine.pool.workers()]
        assert procs and all(p.poll() is None for p in procs)
    assert all(p.returncode is not None for p in procs)  # exited and reaped
    assert not os.path.exists(tmpdir)
    assert o.path is not None and not os.path.exists(o.path)
    with pytest.raises(S3Error):
        s3.get("life/a")
    s3.close()  # idempotent


def test_temp_root_removed_when_the_block_raises(seaweed, bucket, tmp_path):
    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        with S3(s3root=f"s3://{bucket}/root", **_kwargs(seaweed, tmp_path)) as s3:
            s3.put("boom/a", b"abc")
            path = s3.get("boom/a").path
            procs = [w.proc for w in s3._engine.pool.workers()]
            assert os.path.isfile(path)
            raise Boom()
    assert not os.path.exists(os.path.dirname(path))  # the whole temp dir is gone
    assert os.listdir(tmp_path) == []
    assert all(p.returncode is not None for p in procs)


# -- a 1000-object batch -----------------------------------------------------------------------
def test_thousand_objects(s3):
    rnd = random.Random(7)
    sizes = [0] * 20 + [1] * 5 + [rnd.randint(0, 64 * 1024) for _ in range(975)]
    rnd.shuffle(sizes)
    items = [(f"batch/{i:04d}-{n}", rnd.randbytes(n)) for i, n in enumerate(sizes)]
    result = s3.put_many(items)
    assert [k for k, _ in result] == [k for k, _ in items]
    order = list(range(len(items)))
    rnd.shuffle(order)
    objs = s3.get_many([items[i][0] for i in order])
    assert len(objs) == 1000
    for i, o in zip(order, objs, strict=True):
        key, data = items[i]
        assert o.key == key and o.size == len(data)
        assert o.blob == data, key
    s3.put_many([(f"batch/zz-extra-{i}", b"x") for i in range(3)])
    listed = s3.list_recursive(["batch"])  # more than one page of 1000
    assert len(listed) == 1003
    assert {o.key: o.size for o in listed if "extra" not in o.key} == \
        {k.removeprefix("batch/"): len(v) for k, v in items}


# -- a local read error while sending is permanent ---------------------------------------------
def test_local_read_error_during_upload_is_not_retried(seaweed, bucket, tmp_path):
    from fasts3.engine.upload_plan import PutOp

    # Computing a checksum first would read (and fail on) the file before sendfile does.
    names = {f.name for f in dataclasses.fields(TransferConfig)}
    no_md5 = {"upload_checksums": False} if "upload_checksums" in names else {}
    kw = _kwargs(seaweed, tmp_path)
    kw["config"] = TransferConfig(part_size=PART, processes=1, max_attempts=2, **no_md5)
    url = f"s3://{bucket}/root/engine/dir-upload"
    with S3(**kw) as s3:
        op = PutOp(url, bucket, "root/engine/dir-upload", 10, {"content-type": "x/y"},
                   path=str(tmp_path))  # a directory: os.open works, reading it fails
        with pytest.raises(S3Error) as e:
            s3._engine.run([op], "put")
    assert not isinstance(e.value, S3TransientError)
    assert e.value.code == "LocalIOError"
