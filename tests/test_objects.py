"""The plain data objects: S3GetObject, S3PutObject, S3Object, RangeInfo (no server)."""

from __future__ import annotations

import io

import pytest

from fasts3 import RangeInfo, S3GetObject, S3InvalidObject, S3Object, S3PutObject, S3URLError


# -- S3GetObject -------------------------------------------------------------------------
@pytest.mark.parametrize("offset, length, header", [
    (0, None, None),
    (10, None, "bytes=10-"),
    (0, 5, "bytes=0-4"),
    (100, 1, "bytes=100-100"),
    (7, -3, "bytes=-3"),  # suffix: offset ignored
    (0, -1, "bytes=-1"),
])
def test_get_object_range_header(offset, length, header):
    g = S3GetObject("k", offset, length)
    assert (g.key, g.offset, g.length) == ("k", offset, length)
    assert g.range_header() == header


def test_get_object_length_zero_rejected_at_construction():
    with pytest.raises(S3URLError):
        S3GetObject("k", 0, 0)
    with pytest.raises(ValueError):  # S3URLError is a ValueError
        S3GetObject("k", 10, 0)


@pytest.mark.parametrize("kwargs", [dict(offset=-1), dict(offset=1.5), dict(length=2.0)])
def test_get_object_bad_numbers(kwargs):
    with pytest.raises(S3URLError):
        S3GetObject("k", **kwargs)


def test_get_object_offset_none_is_zero_as_in_metaflow():
    """Metaflow code writes S3GetObject(key, None, -5) for "the last 5 bytes"."""
    suffix = S3GetObject("k", None, -5)
    assert (suffix.offset, suffix.length, suffix.range_header()) == (0, -5, "bytes=-5")
    head = S3GetObject("k", None, 10)
    assert (head.offset, head.range_header()) == (0, "bytes=0-9")
    assert S3GetObject("k", offset=None).range_header() is None


def test_get_object_key_must_be_str():
    with pytest.raises(S3URLError):
        S3GetObject(None)  # type: ignore[arg-type]


def test_get_object_defaults_and_repr():
    g = S3GetObject("a/b")
    assert (g.offset, g.length, g.version_id) == (0, None, None)
    assert "a/b" in repr(g)


# -- S3PutObject -------------------------------------------------------------------------
def test_put_object_value_or_path():
    p = S3PutObject("k", value=b"x", content_type="text/plain", encryption="AES256",
                    metadata={"a": "1"})
    assert (p.key, p.value, p.path, p.content_type, p.encryption, p.metadata) == (
        "k", b"x", None, "text/plain", "AES256", {"a": "1"})
    f = S3PutObject("k", path="/tmp/x")
    assert (f.value, f.path, f.metadata) == (None, "/tmp/x", None)
    assert "/tmp/x" in repr(f)


def test_put_object_needs_exactly_one_source():
    with pytest.raises(S3InvalidObject):
        S3PutObject("k")
    with pytest.raises(S3InvalidObject):
        S3PutObject("k", value=b"x", path="/tmp/x")


def test_put_object_accepts_pathlike_and_copies_metadata(tmp_path):
    meta = {"a": "1"}
    p = S3PutObject("k", path=tmp_path / "f", metadata=meta)
    assert p.path == str(tmp_path / "f")
    meta["b"] = "2"
    assert p.metadata == {"a": "1"}


def test_put_object_file_value_kept():
    buf = io.BytesIO(b"abc")
    assert S3PutObject("k", value=buf).value is buf


# -- S3Object ----------------------------------------------------------------------------
def test_downloaded_object(tmp_path):
    path = tmp_path / "f"
    path.write_bytes("héllo".encode())
    o = S3Object("s3://b/root/dir/f.txt", "s3://b/root", path=str(path), size=6, exists=True,
                 content_type="text/plain", metadata={"a": "1"}, range_info=RangeInfo(6, 0, 6),
                 last_modified=1700000000, encryption="AES256", has_info=True)
    assert o.url == "s3://b/root/dir/f.txt"
    assert o.prefix == "s3://b/root"
    assert o.key == "dir/f.txt"
    assert o.exists and o.downloaded
    assert o.path == str(path)
    assert o.blob == "héllo".encode()
    assert o.text == "héllo"
    assert o.size == 6
    assert o.has_info
    assert o.metadata == {"a": "1"}
    assert o.content_type == "text/plain"
    assert o.range_info == (6, 0, 6)
    assert o.range_info.total_size == 6 and o.range_info.request_length == 6
    assert o.last_modified == 1700000000 and isinstance(o.last_modified, int)
    assert o.encryption == "AES256"
    assert "local" in str(o) and o.url in repr(o)


def test_text_replaces_invalid_utf8(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"ok\xff")
    assert S3Object("s3://b/k", path=str(path), size=3).text == "ok\ufffd"


def test_blob_is_read_lazily_from_path(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"one")
    o = S3Object("s3://b/k", path=str(path), size=3)
    path.write_bytes(b"two")
    assert o.blob == b"two"


def test_missing_object():
    o = S3Object("s3://b/root/x", "s3://b/root", exists=False)
    assert not o.exists and not o.downloaded
    assert o.path is None and o.blob is None and o.text is None
    assert o.size is None and not o.has_info and o.metadata is None
    assert o.range_info is None and o.last_modified is None
    assert o.key == "x"
    assert "does not exist" in str(o)


def test_listed_prefix_key_has_no_trailing_slash():
    o = S3Object("s3://b/root/dir/", "s3://b/root")
    assert not o.exists
    assert o.key == "dir"
    assert o.url == "s3://b/root/dir/"


def test_listed_object_in_s3():
    o = S3Object("s3://b/root/k", "s3://b/root", size=0, last_modified=5)
    assert o.exists and not o.downloaded and o.size == 0
    assert "in S3" in str(o)


def test_no_prefix_key_is_url():
    o = S3Object("s3://b/k", None, size=1)
    assert o.prefix is None and o.key == "s3://b/k"
    o = S3Object("s3://b/k", "s3://b/k", size=1)  # the root itself
    assert o.prefix is None and o.key == "s3://b/k"


def test_range_info_is_a_named_tuple():
    r = RangeInfo(100, 10, 5)
    assert r == (100, 10, 5)
    assert (r.total_size, r.request_offset, r.request_length) == (100, 10, 5)
