"""URL and root rules (DESIGN.md "The public API"): pure functions, plus the S3 client raising
S3URLError before any request is sent."""

from __future__ import annotations

import os

import pytest

from fasts3 import S3, S3URLError
from fasts3.errors import S3Error
from fasts3.urls import (
    key_of,
    local_path_for_key,
    make_root,
    relative_key,
    resolve,
    split_url,
    temp_name,
)

# An endpoint nothing listens on: if a request were sent, the error would not be S3URLError.
DEAD = dict(endpoint_url="http://127.0.0.1:9", progress=False,
            session_vars=dict(aws_access_key_id="x", aws_secret_access_key="y",
                              region_name="us-east-1"))


# -- roots -------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, root", [
    (dict(s3root="s3://bkt/p"), "s3://bkt/p"),
    (dict(s3root="s3://bkt/p/"), "s3://bkt/p"),
    (dict(s3root="s3://bkt/p//"), "s3://bkt/p"),
    (dict(s3root="s3://bkt/a/b/c/"), "s3://bkt/a/b/c"),
    (dict(s3root="s3://bkt"), "s3://bkt"),
    (dict(s3root="s3://bkt/"), "s3://bkt"),
    (dict(bucket="bkt"), "s3://bkt"),
    (dict(bucket="bkt", prefix="p"), "s3://bkt/p"),
    (dict(bucket="bkt", prefix="/p/q/"), "s3://bkt/p/q"),
    (dict(bucket="bkt", prefix="/"), "s3://bkt"),
    (dict(), None),
])
def test_make_root(kwargs, root):
    assert make_root(**kwargs) == root


@pytest.mark.parametrize("kwargs", [
    dict(s3root="/tmp/data"),
    dict(s3root="http://bkt/p"),
    dict(s3root="s3:/bkt/p"),
    dict(s3root="S3://bkt/p"),
    dict(s3root="bkt/p"),
    dict(s3root="s3://"),
    dict(s3root="s3:///p"),
    dict(s3root="s3://b/p"),  # bucket names have at least 2 more characters
    dict(s3root="s3://bkt/p", bucket="bkt"),
    dict(prefix="p"),
])
def test_bad_roots(kwargs):
    with pytest.raises(S3URLError):
        make_root(**kwargs)


@pytest.mark.parametrize("root", ["/tmp/x", "http://bkt/p", "file:///x", "gs://bkt/p"])
def test_s3_rejects_non_s3_root_at_construction(root, tmp_path):
    before = set(os.listdir(tmp_path))
    with pytest.raises(S3URLError) as e:
        S3(s3root=root, tmproot=str(tmp_path), **DEAD)
    assert e.value.url == root
    assert set(os.listdir(tmp_path)) == before  # no temp root left behind


# -- resolving keys ----------------------------------------------------------------------
@pytest.mark.parametrize("key, url", [
    ("a", "s3://bkt/p/a"),
    ("/a", "s3://bkt/p/a"),
    ("//a/b", "s3://bkt/p/a/b"),
    ("a/b/", "s3://bkt/p/a/b/"),
    (None, "s3://bkt/p"),
    ("", "s3://bkt/p"),
    ("a b?c#d%20e+f=g&h~i", "s3://bkt/p/a b?c#d%20e+f=g&h~i"),
    ("ünï/©ode", "s3://bkt/p/ünï/©ode"),
])
def test_resolve_with_root(key, url):
    assert resolve("s3://bkt/p", key) == url


def test_resolve_bucket_root():
    assert resolve("s3://bkt", "/x/y") == "s3://bkt/x/y"


@pytest.mark.parametrize("key", ["s3://bkt/p/a", "s3://other/a"])
def test_absolute_url_with_root_is_an_error(key):
    with pytest.raises(S3URLError) as e:
        resolve("s3://bkt/p", key)
    assert e.value.url == key


@pytest.mark.parametrize("key", ["a", "/a", "bkt/a", None, "", "s3://bkt", "s3://bkt/",
                                 "http://bkt/a", "s3:/bkt/a"])
def test_without_root_only_full_urls(key):
    with pytest.raises(S3URLError):
        resolve(None, key)


def test_without_root_listing_accepts_bucket_urls():
    assert resolve(None, "s3://bkt", allow_bucket=True) == "s3://bkt"
    assert resolve(None, "s3://bkt/", allow_bucket=True) == "s3://bkt/"
    with pytest.raises(S3URLError):
        resolve(None, "bkt", allow_bucket=True)


def test_without_root_full_url_kept_verbatim():
    url = "s3://bkt/x//y/ z?#"
    assert resolve(None, url) == url


@pytest.mark.parametrize("key", ["a\nb", "a\x00b", "a\x7fb", "tab\there", "\x01\xff"])
def test_control_characters_are_ordinary_key_characters(key):
    """S3 keys are any UTF-8 (Metaflow reads and writes "crazypath/\\x01\\xff")."""
    assert resolve("s3://bkt/p", key) == "s3://bkt/p/" + key
    assert split_url("s3://bkt/" + key) == ("bkt", key)


def test_key_length_limit_counts_utf8_bytes():
    assert resolve("s3://bkt", "é" * 512)  # 1024 bytes: allowed
    with pytest.raises(S3URLError):
        resolve("s3://bkt", "é" * 512 + "x")
    with pytest.raises(S3URLError):
        resolve("s3://bkt/pp", "x" * 1022)  # the root's prefix counts too


def test_non_str_key_rejected():
    with pytest.raises(S3URLError):
        resolve("s3://bkt", 42)  # type: ignore[arg-type]
    with pytest.raises(S3URLError):
        key_of(type("K", (), {"key": b"bytes"})())


def test_key_of():
    assert key_of("a") == "a"
    assert key_of(None) is None
    assert key_of(type("K", (), {"key": "k"})()) == "k"


# -- split, relative keys ----------------------------------------------------------------
@pytest.mark.parametrize("url, parts", [
    ("s3://bkt/a/b", ("bkt", "a/b")),
    ("s3://bkt", ("bkt", "")),
    ("s3://bkt/", ("bkt", "")),
    ("s3://bkt/a?x=1#frag", ("bkt", "a?x=1#frag")),
    ("s3://my.bucket-1/%2F", ("my.bucket-1", "%2F")),
])
def test_split_url(url, parts):
    assert split_url(url) == parts


@pytest.mark.parametrize("url", ["bkt/a", "s3://", "s3://-bad/a", "s3://b/a", "s3://bk t/a",
                                 b"s3://bkt/a"])
def test_split_url_rejects(url):
    with pytest.raises(S3URLError):
        split_url(url)  # type: ignore[arg-type]


def test_relative_key():
    assert relative_key("s3://b/p", "s3://b/p/x/y") == "x/y"
    assert relative_key("s3://b/p/", "s3://b/p/x") == "x"
    assert relative_key(None, "s3://b/p/x") == "s3://b/p/x"
    assert relative_key("s3://b/p", "s3://b/p") == "s3://b/p"
    assert relative_key("s3://b/p", "s3://b/pother/x") == "s3://b/pother/x"


# -- local paths -------------------------------------------------------------------------
@pytest.mark.parametrize("key, rel", [
    ("a", "a"),
    ("a/b/c.txt", "a/b/c.txt"),
    ("dir/", "dir"),
    ("ü ©/x?y#z", "ü ©/x?y#z"),
    ("..a/b..", "..a/b.."),
    ("crazypath/\x01\xff", "crazypath/%01\xff"),
    ("a\nb/\x00/\x7f\x85", "a%0Ab/%00/%7F%C2%85"),
])
def test_local_path_for_key(tmp_path, key, rel):
    assert local_path_for_key(str(tmp_path), key) == os.path.join(str(tmp_path), rel)


@pytest.mark.parametrize("key", ["../x", "a/../../x", "a/..", "..", ".", "./a", "/abs", "a//b",
                                 "", "/", "C:/x", "c:", "a\\..\\..\\x", "a/./b"])
def test_local_path_for_key_refuses_escapes(tmp_path, key):
    with pytest.raises(S3URLError):
        local_path_for_key(str(tmp_path), key)


def test_temp_name_unique_flat_and_keeps_extension():
    names = {temp_name(i, "d/../x y/file.csv") for i in range(3)}
    assert len(names) == 3
    for n in names:
        assert "/" not in n and " " not in n and n.endswith("file.csv")
    assert "/" not in temp_name(1, "../../etc/passwd")
    assert not temp_name(2, "dir/.hidden").startswith(".")
    assert temp_name(3, "dir/") == f"{3:08x}"
    assert len(temp_name(4, "x" * 900)) < 120


# -- the client raises before any request ------------------------------------------------
@pytest.fixture(scope="module")
def rooted(tmp_path_factory):
    with S3(s3root="s3://bkt/root/", tmproot=str(tmp_path_factory.mktemp("u")), **DEAD) as s3:
        yield s3


@pytest.fixture(scope="module")
def rootless(tmp_path_factory):
    with S3(tmproot=str(tmp_path_factory.mktemp("u")), **DEAD) as s3:
        yield s3


def _no_request_sent(s3: S3) -> bool:
    return s3._engine.pool is None


def test_client_root_normalised(rooted):
    assert rooted._root == "s3://bkt/root"
    assert rooted._url("/x") == "s3://bkt/root/x"


@pytest.mark.parametrize("call", [
    lambda s3: s3.get("s3://bkt/root/x"),
    lambda s3: s3.get_many(["ok", "s3://bkt/x"]),
    lambda s3: s3.info("s3://bkt/x"),
    lambda s3: s3.info_many(["a", "s3://bkt/x"]),
    lambda s3: s3.put("s3://bkt/x", b"1"),
    lambda s3: s3.put_many([("ok", b"1"), ("s3://bkt/x", b"1")]),
    lambda s3: s3.put_files([("s3://bkt/x", __file__)]),
    lambda s3: s3.list_paths(["s3://bkt/x"]),
    lambda s3: s3.list_recursive(["a", "s3://bkt/x"]),
    lambda s3: s3.get_recursive(["s3://bkt/x"]),
    lambda s3: s3.get("k" * 1025),
], ids=["get", "get_many", "info", "info_many", "put", "put_many", "put_files", "list_paths",
        "list_recursive", "get_recursive", "too-long"])
def test_absolute_url_with_root_fails_before_any_request(rooted, call):
    with pytest.raises(S3URLError) as e:
        call(rooted)
    assert e.value.url
    assert _no_request_sent(rooted)


@pytest.mark.parametrize("call", [
    lambda s3: s3.get("x"),
    lambda s3: s3.get(),
    lambda s3: s3.get_many(["s3://bkt/ok", "relative"]),
    lambda s3: s3.info("x"),
    lambda s3: s3.info_many(["s3://bkt/ok", "x"]),
    lambda s3: s3.put("x", b"1"),
    lambda s3: s3.put("s3://bkt", b"1"),
    lambda s3: s3.put_many([("s3://bkt/ok", b"1"), ("x", b"1")]),
    lambda s3: s3.list_paths(),
    lambda s3: s3.list_recursive(),
    lambda s3: s3.list_paths(["x"]),
    lambda s3: s3.get_recursive(["x"]),
    lambda s3: s3.get_all(),
    lambda s3: s3.get("s3://bkt/"),
    lambda s3: s3.info("s3://bkt"),
], ids=["get", "get-none", "get_many", "info", "info_many", "put", "put-bucket", "put_many",
        "list_paths", "list_recursive", "list_paths-rel", "get_recursive", "get_all",
        "get-bucket", "info-bucket"])
def test_relative_key_without_root_fails_before_any_request(rootless, call):
    with pytest.raises(S3URLError):
        call(rootless)
    assert _no_request_sent(rootless)


def test_root_itself_is_not_a_bucket_object(tmp_path):
    with S3(bucket="bkt", tmproot=str(tmp_path), **DEAD) as s3:
        with pytest.raises(S3URLError):
            s3.get()
        with pytest.raises(S3URLError):
            s3.put("", b"x")
        assert _no_request_sent(s3)


def test_closed_client_refuses(tmp_path):
    s3 = S3(s3root="s3://bkt/p", tmproot=str(tmp_path), **DEAD)
    s3.close()
    with pytest.raises(S3Error):
        s3.tmpdir  # noqa: B018
    s3.close()  # idempotent
