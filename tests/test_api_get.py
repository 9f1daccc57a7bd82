"""S3.get / get_many / get_recursive / get_all against SeaweedFS: results, ranges, missing
objects, directory semantics. One S3 context per module (each context starts workers)."""

from __future__ import annotations

import collections
import os

import pytest
from buckets import scratch_bucket

from fasts3 import S3, RangeInfo, S3GetObject, S3InvalidRange, S3NotFound, S3URLError

DATA = bytes(range(100))
CSV = b"x,y\n1,2\n"
TREE = {  # key -> bytes; directory semantics are checked against this
    "log": b"the log object",
    "log/x": b"x",
    "log/sub/y": b"yy",
    "log_other/z": b"zzz",
    "log2": b"log two",
    "obj": b"obj itself",
    "obj/child": b"child",
}


@pytest.fixture(scope="module")
def bucket(seaweed):
    with scratch_bucket(seaweed, "api-get") as name:
        client = seaweed.client()
        client.put_object(Bucket=name, Key="root/data.bin", Body=DATA,
                          Metadata={"owner": "alice"})
        client.put_object(Bucket=name, Key="root/a.csv", Body=CSV, ContentType="text/csv")
        client.put_object(Bucket=name, Key="root/empty", Body=b"")
        for key, body in TREE.items():
            client.put_object(Bucket=name, Key="root/tree/" + key, Body=body)
        yield name


@pytest.fixture(scope="module")
def root(bucket):
    return f"s3://{bucket}/root"


def _kwargs(seaweed, tmp_path_factory):
    return dict(endpoint_url=seaweed.endpoint_url, session_vars=seaweed.session_vars(),
                progress=False, tmproot=str(tmp_path_factory.mktemp("get")))


@pytest.fixture(scope="module")
def s3(seaweed, root, tmp_path_factory):
    with S3(s3root=root + "/", **_kwargs(seaweed, tmp_path_factory)) as s3:
        yield s3


@pytest.fixture(scope="module")
def s3_noroot(seaweed, tmp_path_factory):
    with S3(**_kwargs(seaweed, tmp_path_factory)) as s3:
        yield s3


# -- get ---------------------------------------------------------------------------------
def test_get_whole_object(s3, seaweed, bucket, root):
    o = s3.get("data.bin")
    head = seaweed.client().head_object(Bucket=bucket, Key="root/data.bin")
    assert o.url == root + "/data.bin"
    assert o.key == "data.bin"
    assert o.prefix == root
    assert o.exists and o.downloaded
    assert o.blob == DATA and o.size == 100
    assert o.text == DATA.decode("utf-8", errors="replace")
    assert os.path.dirname(o.path) == s3.tmpdir
    assert open(o.path, "rb").read() == DATA
    assert o.has_info
    assert o.metadata == {"owner": "alice"}
    assert o.content_type == head["ContentType"]
    assert o.range_info == RangeInfo(100, 0, 100)
    assert isinstance(o.last_modified, float)  # as in Metaflow
    assert o.last_modified == head["LastModified"].timestamp()
    assert o.encryption is None


def test_get_text_and_content_type(s3):
    o = s3.get("a.csv")
    assert o.text == CSV.decode()
    assert o.content_type == "text/csv"


def test_get_leading_slash_of_key_dropped(s3, root):
    assert s3.get("/data.bin").url == root + "/data.bin"
    assert s3.get("//a.csv").blob == CSV


def test_get_without_info(s3):
    o = s3.get("data.bin", return_info=False)
    assert o.blob == DATA and o.exists and o.downloaded
    assert not o.has_info
    assert o.metadata is None and o.content_type is None and o.last_modified is None
    assert o.range_info is None  # Metaflow: without info, range_info is None too


def test_get_empty_object(s3):
    o = s3.get("empty")
    assert o.exists and o.downloaded
    assert o.blob == b"" and o.size == 0
    assert o.range_info == RangeInfo(0, 0, 0)
    assert s3.get(S3GetObject("empty")).blob == b""


def test_get_missing_raises(s3, root):
    with pytest.raises(S3NotFound) as e:
        s3.get("nope")
    assert isinstance(e.value, FileNotFoundError)
    assert e.value.url == root + "/nope"
    assert e.value.code == "NoSuchKey"
    assert root + "/nope" in str(e.value) and "NoSuchKey" in str(e.value)


def test_get_missing_returned(s3, root):
    o = s3.get("nope", return_missing=True)
    assert not o.exists and not o.downloaded
    assert o.path is None and o.blob is None and o.text is None and o.size is None
    assert o.url == root + "/nope" and o.key == "nope"


def test_get_root_itself(seaweed, root, tmp_path_factory):
    with S3(s3root=root + "/data.bin", **_kwargs(seaweed, tmp_path_factory)) as s3:
        o = s3.get()
        assert o.blob == DATA
        assert o.key == root + "/data.bin"  # the root itself: key is the URL
        assert s3.get("").blob == DATA


def test_get_full_urls_without_root(s3_noroot, root):
    o = s3_noroot.get(root + "/data.bin")
    assert o.blob == DATA
    assert o.key == o.url == root + "/data.bin"
    assert o.prefix is None


# -- get_many ----------------------------------------------------------------------------
def test_get_many_input_order_and_repeats(s3, root):
    keys = ["a.csv", "data.bin", "tree/log/x", "a.csv", "empty", "data.bin", "tree/log2"]
    expected = {"a.csv": CSV, "data.bin": DATA, "empty": b"", "tree/log/x": b"x",
                "tree/log2": b"log two"}
    objs = s3.get_many(keys)
    assert [o.key for o in objs] == keys
    assert [o.url for o in objs] == [root + "/" + k for k in keys]
    assert [o.blob for o in objs] == [expected[k] for k in keys]
    assert len({o.path for o in objs}) == len(keys)  # repeats get their own files


def test_get_many_two_ranges_of_one_object(s3):
    a, b, whole = s3.get_many([S3GetObject("data.bin", 0, 10), S3GetObject("data.bin", 90, 10),
                               "data.bin"])
    assert a.blob == DATA[:10] and a.range_info == RangeInfo(100, 0, 10)
    assert b.blob == DATA[90:] and b.range_info == RangeInfo(100, 90, 10)
    assert whole.blob == DATA
    assert a.key == b.key == "data.bin"


def test_get_many_accepts_iterators_and_duck_typed_ranges(s3):
    Req = collections.namedtuple("Req", "key offset length")  # Metaflow's S3GetObject shape
    objs = s3.get_many(iter([Req("data.bin", 5, 5), Req("a.csv", None, None)]))
    assert objs[0].blob == DATA[5:10]
    assert objs[1].blob == CSV


def test_get_many_missing(s3, root):
    with pytest.raises(S3NotFound) as e:
        s3.get_many(["data.bin", "missing-1", "a.csv"])
    assert e.value.url == root + "/missing-1"
    objs = s3.get_many(["missing-1", "data.bin", "missing-2"], return_missing=True)
    assert [o.exists for o in objs] == [False, True, False]
    assert [o.downloaded for o in objs] == [False, True, False]
    assert objs[1].blob == DATA
    assert objs[2].key == "missing-2"


def test_get_many_empty(s3):
    assert s3.get_many([]) == []


# -- ranges ------------------------------------------------------------------------------
@pytest.mark.parametrize("offset, length, start, end", [
    (10, 5, 10, 15),
    (0, 1, 0, 1),
    (99, 1, 99, 100),
    (0, 100, 0, 100),
    (90, None, 90, 100),  # to the end
    (0, None, 0, 100),
    (95, 50, 95, 100),  # clamped at the end
    (1, 10_000, 1, 100),
    (0, -7, 93, 100),  # suffix
    (50, -7, 93, 100),  # suffix ignores the offset
    (0, -100, 0, 100),
    (0, -1000, 0, 100),  # suffix longer than the object: clamped
])
def test_ranges(s3, offset, length, start, end):
    o = s3.get(S3GetObject("data.bin", offset, length))
    assert o.blob == DATA[start:end]
    assert o.size == end - start
    assert o.range_info == RangeInfo(100, start, end - start)
    [m] = s3.get_many([S3GetObject("data.bin", offset, length)])
    assert m.blob == DATA[start:end] and m.range_info == o.range_info


@pytest.mark.parametrize("offset", [100, 101, 10_000])
def test_offset_at_or_past_end_is_invalid_range(s3, root, offset):
    with pytest.raises(S3InvalidRange) as e:
        s3.get(S3GetObject("data.bin", offset, 5))
    assert e.value.url == root + "/data.bin"
    assert e.value.code == "InvalidRange"
    with pytest.raises(S3InvalidRange):
        s3.get(S3GetObject("data.bin", offset, None))
    with pytest.raises(S3InvalidRange):
        s3.get_many(["a.csv", S3GetObject("data.bin", offset, 1)])


def test_range_of_empty_object_is_invalid(s3):
    with pytest.raises(S3InvalidRange):
        s3.get(S3GetObject("empty", 0, 1))


def test_length_zero_rejected_before_any_request(s3):
    with pytest.raises(ValueError):
        S3GetObject("data.bin", 0, 0)
    Req = collections.namedtuple("Req", "key offset length")
    with pytest.raises(S3URLError):
        s3.get(Req("data.bin", 0, 0))


# -- get_recursive / get_all -------------------------------------------------------------
def _tree(objs):
    return {o.url.split("/root/tree/", 1)[1]: o.blob for o in objs}


def test_get_recursive_is_a_directory_listing(s3, root):
    objs = s3.get_recursive(["tree/log"])
    # "log" is also an object, so it is returned; "log_other/z" is never under "log".
    assert _tree(objs) == {k: TREE[k] for k in ("log", "log/x", "log/sub/y")}
    # As in Metaflow: prefix is the requested key's URL, key relative to it; the object
    # named by the key itself has its URL as key and no prefix.
    assert sorted((o.prefix, o.key) for o in objs if o.prefix) == [
        (root + "/tree/log", "sub/y"), (root + "/tree/log", "x")]
    [itself] = [o for o in objs if o.prefix is None]
    assert itself.key == itself.url == root + "/tree/log"
    assert all(o.downloaded and o.exists for o in objs)


def test_get_recursive_trailing_slash_lists_only_the_directory(s3, root):
    objs = s3.get_recursive(["tree/log/"])
    assert _tree(objs) == {"log/x": b"x", "log/sub/y": b"yy"}
    assert sorted((o.prefix, o.key) for o in objs) == [
        (root + "/tree/log/", "sub/y"), (root + "/tree/log/", "x")]


def test_get_recursive_object_key_and_many_keys(s3):
    got = _tree(s3.get_recursive(["tree/log2", "tree/obj", "tree/nothing"]))
    assert got == {"log2": b"log two", "obj": b"obj itself", "obj/child": b"child"}
    assert s3.get_recursive(["tree/nothing"]) == []


def test_get_recursive_info(s3, root):
    objs = s3.get_recursive(["tree/log/sub"])
    assert not objs[0].has_info and (objs[0].prefix, objs[0].key) == (root + "/tree/log/sub", "y")
    objs = s3.get_recursive(["tree/log/sub"], return_info=True)
    assert objs[0].has_info and objs[0].metadata is None and objs[0].last_modified
    # Metaflow's rule with return_info: relative to the root
    assert (objs[0].prefix, objs[0].key) == (root, "tree/log/sub/y")


def test_get_recursive_full_urls(s3_noroot, root):
    objs = s3_noroot.get_recursive([root + "/tree/log/"])
    assert sorted(o.key for o in objs) == ["sub/y", "x"]
    assert {o.prefix for o in objs} == {root + "/tree/log/"}
    objs = s3_noroot.get_recursive([root + "/tree/log/"], return_info=True)
    assert sorted(o.key for o in objs) == [root + "/tree/log/sub/y", root + "/tree/log/x"]
    assert {o.prefix for o in objs} == {None}


def test_get_all(seaweed, root, tmp_path_factory):
    with S3(s3root=root + "/tree", **_kwargs(seaweed, tmp_path_factory)) as s3:
        objs = s3.get_all()
        assert {o.key: o.blob for o in objs} == TREE
        paths = [o.path for o in objs]
        assert all(os.path.isfile(p) for p in paths)
    assert not any(os.path.exists(p) for p in paths)  # removed on close
