"""delete_many / copy_many (server side, incl. the UploadPartCopy path) and versioned reads."""

from __future__ import annotations

import os

import pytest

from fasts3 import S3, S3GetObject, S3NotFound, S3URLError

MiB = 1 << 20


def _keys(s3: S3) -> list[str]:
    return sorted(o.key for o in s3.list_recursive())


def test_delete_many_batches_over_1000_keys(s3root, s3_kwargs):
    with S3(s3root=s3root, **s3_kwargs) as s3:
        names = [f"d/{i:04d}" for i in range(1003)]
        s3.put_many([(k, b"x") for k in names] + [("keep", b"y")])
        deleted = s3.delete_many(names + ["d/missing"])  # a missing key is not an error
        assert len(deleted) == len(names) + 1
        assert deleted[0] == f"{s3root}/d/0000"
        assert _keys(s3) == ["keep"]


def test_delete_many_validates_before_sending(s3root, s3_kwargs):
    with S3(s3root=s3root, **s3_kwargs) as s3:
        s3.put("a", "1")
        with pytest.raises(S3URLError):
            s3.delete_many(["a", "s3://other/absolute"])
        assert _keys(s3) == ["a"]


def test_delete_many_missing_bucket(seaweed, s3_kwargs):
    with S3(**s3_kwargs) as s3, pytest.raises(S3NotFound) as e:
        s3.delete_many(["s3://no-such-bucket-fasts3/a"])
    assert e.value.code == "NoSuchBucket"


def test_copy_many_keeps_content_type_and_metadata(s3root, s3_kwargs):
    with S3(s3root=s3root, **s3_kwargs) as s3:
        s3.put("src/a.json", '{"a": 1}', metadata={"owner": "me"})
        s3.put("src/b", b"bee")
        done = s3.copy_many([("src/a.json", "dst/a.json"), ("src/b", "dst/b")])
        assert done == [(f"{s3root}/src/a.json", f"{s3root}/dst/a.json"),
                        (f"{s3root}/src/b", f"{s3root}/dst/b")]
        a = s3.get("dst/a.json")
        assert a.text == '{"a": 1}'
        assert a.content_type == "application/json"
        assert a.metadata == {"owner": "me"}
        assert s3.get("dst/b").blob == b"bee"


def test_copy_many_multipart_path(s3root, s3_kwargs):
    """Above the (lowered) threshold the copy is an UploadPartCopy multipart upload."""
    data = os.urandom(11 * MiB)
    with S3(s3root=s3root, **s3_kwargs) as s3:
        s3.put("big.bin", data, metadata={"k": "v"}, content_type="application/x-test")
        s3.copy_many([("big.bin", "copy.bin")], multipart_threshold=5 * MiB,
                     part_size=5 * MiB)
        got = s3.get("copy.bin")
        assert got.blob == data
        assert got.etag.endswith("-3")  # three parts: 5 + 5 + 1 MiB
        assert got.metadata == {"k": "v"}
        assert got.content_type == "application/x-test"


def test_copy_many_multipart_on_moto(moto_bucket, moto_kwargs):
    data = os.urandom(11 * MiB)
    with S3(s3root=f"s3://{moto_bucket}", **moto_kwargs) as s3:
        s3.put("big", data)
        s3.copy_many([("big", "big2")], multipart_threshold=5 * MiB, part_size=5 * MiB)
        got = s3.get("big2")
        assert got.blob == data and got.etag.endswith("-3")


def test_copy_many_missing_source_and_overwrite_false(s3root, s3_kwargs):
    with S3(s3root=s3root, **s3_kwargs) as s3:
        s3.put("a", "new")
        s3.put("b", "old")
        assert s3.copy_many([("a", "b")], overwrite=False) == []
        assert s3.get("b").text == "old"
        with pytest.raises(S3NotFound) as e:
            s3.copy_many([("missing", "c")])
        assert e.value.url == f"{s3root}/missing"
        assert s3.get("c", return_missing=True).exists is False


def test_copy_many_without_root_across_buckets(seaweed, bucket, s3_kwargs):
    other = bucket + "-2"
    seaweed.create_bucket(other)
    try:
        with S3(**s3_kwargs) as s3:
            src = f"s3://{bucket}/x/y.txt"
            with S3(s3root=f"s3://{bucket}", **s3_kwargs) as rooted:
                rooted.put("x/y.txt", "hello")
            s3.copy_many([(src, f"s3://{other}/z.txt")])
            assert s3.get(f"s3://{other}/z.txt").text == "hello"
    finally:
        seaweed.client().delete_bucket(Bucket=other)


@pytest.fixture
def versioned(moto_server, moto_bucket):
    moto_server.client().put_bucket_versioning(
        Bucket=moto_bucket, VersioningConfiguration={"Status": "Enabled"})
    return moto_bucket


def test_versioned_get_info_and_copy(versioned, moto_server, moto_kwargs):
    with S3(s3root=f"s3://{versioned}", **moto_kwargs) as s3:
        s3.put("k", "one")
        first = s3.info("k").version_id
        s3.put("k", "two")
        latest = s3.info("k")
        assert first and latest.version_id and first != latest.version_id
        old = s3.get(S3GetObject("k", version_id=first))
        assert old.text == "one" and old.version_id == first
        assert s3.get("k").text == "two"
        assert s3.info(S3GetObject("k", version_id=first)).version_id == first
        part = s3.get(S3GetObject("k", offset=1, length=2, version_id=first))
        assert part.text == "ne"
        s3.copy_many([(S3GetObject("k", version_id=first), "restored")])
        assert s3.get("restored").text == "one"
        s3.delete_many(["k"])  # a delete marker; old versions stay readable
        assert s3.get("k", return_missing=True).exists is False
        assert s3.get(S3GetObject("k", version_id=first)).text == "one"
