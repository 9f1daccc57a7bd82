"""S3.list_paths / list_recursive against SeaweedFS (the hierarchy of Metaflow's docstring,
plus a sibling ``a_other`` that must never show up under ``a``)."""

from __future__ import annotations

import pytest
from buckets import scratch_bucket

from fasts3 import S3

TREE = {
    "a/0.txt": b"0",
    "a/b/1.txt": b"11",
    "a/c/2.txt": b"222",
    "a/d/e/3.txt": b"3333",
    "f/4.txt": b"44444",
    "a_other/5.txt": b"555555",
    "top.txt": b"top",
}


@pytest.fixture(scope="module")
def root(seaweed):
    with scratch_bucket(seaweed, "api-list") as name:
        client = seaweed.client()
        for key, body in TREE.items():
            client.put_object(Bucket=name, Key="root/" + key, Body=body)
        yield f"s3://{name}/root"


def _kwargs(seaweed, tmp_path_factory):
    return dict(endpoint_url=seaweed.endpoint_url, session_vars=seaweed.session_vars(),
                progress=False, tmproot=str(tmp_path_factory.mktemp("list")))


@pytest.fixture(scope="module")
def s3(seaweed, root, tmp_path_factory):
    with S3(s3root=root, **_kwargs(seaweed, tmp_path_factory)) as s3:
        yield s3


def _summary(objs):
    return sorted((o.url, o.key, o.exists, o.size) for o in objs)


def test_list_paths_one_level(s3, root):
    objs = s3.list_paths(["a", "f"])
    assert _summary(objs) == sorted([
        (root + "/a/0.txt", "0.txt", True, 1),
        (root + "/a/b/", "b", False, None),
        (root + "/a/c/", "c", False, None),
        (root + "/a/d/", "d", False, None),
        (root + "/f/4.txt", "4.txt", True, 5),
    ])
    for o in objs:
        assert not o.downloaded and o.path is None
        # the listed key ends with "/" (as in Metaflow), and key is relative to it
        assert o.prefix in (root + "/a/", root + "/f/") and o.url.startswith(o.prefix)
        if o.exists:
            assert isinstance(o.last_modified, float)


def test_list_paths_of_root(s3, root):
    assert _summary(s3.list_paths()) == sorted([
        (root + "/a/", "a", False, None),
        (root + "/a_other/", "a_other", False, None),
        (root + "/f/", "f", False, None),
        (root + "/top.txt", "top.txt", True, 3),
    ])
    assert _summary(s3.list_paths([None])) == _summary(s3.list_paths())
    assert {o.prefix for o in s3.list_paths()} == {root + "/"}


def test_list_paths_trailing_and_leading_slash(s3):
    assert _summary(s3.list_paths(["a/"])) == _summary(s3.list_paths(["/a"]))


def test_list_paths_nothing_there(s3):
    assert s3.list_paths(["nothing"]) == []
    assert s3.list_paths(["top.txt"]) == []  # an object is not a directory


def test_list_recursive(s3, root):
    objs = s3.list_recursive(["a", "f"])
    assert _summary(objs) == sorted([
        (root + "/a/0.txt", "0.txt", True, 1),
        (root + "/a/b/1.txt", "b/1.txt", True, 2),
        (root + "/a/c/2.txt", "c/2.txt", True, 3),
        (root + "/a/d/e/3.txt", "d/e/3.txt", True, 4),
        (root + "/f/4.txt", "4.txt", True, 5),
    ])
    assert all(isinstance(o.last_modified, float) and not o.downloaded for o in objs)
    assert {o.prefix for o in objs} == {root + "/a", root + "/f"}  # as given


def test_list_recursive_everything(s3, root):
    objs = s3.list_recursive()
    assert {o.url: o.size for o in objs} == {root + "/" + k: len(v) for k, v in TREE.items()}
    assert {o.key for o in objs} == set(TREE)


def test_list_recursive_object_key_included(s3, root):
    [o] = s3.list_recursive(["top.txt"])
    assert o.url == root + "/top.txt" and o.exists and o.size == 3
    assert s3.list_recursive(["nothing"]) == []


def test_list_full_urls_without_root(seaweed, root, tmp_path_factory):
    with S3(**_kwargs(seaweed, tmp_path_factory)) as s3:
        objs = s3.list_paths([root + "/a"])
        assert {o.url for o in objs} == {root + "/a/0.txt", root + "/a/b/", root + "/a/c/",
                                         root + "/a/d/"}
        objs = s3.list_recursive([root + "/f/"])
        assert [(o.url, o.size) for o in objs] == [(root + "/f/4.txt", 5)]
        bucket_url = root.rsplit("/", 1)[0]  # listing a whole bucket needs no key
        for url in (bucket_url, bucket_url + "/"):
            assert [(o.key, o.exists) for o in s3.list_paths([url])] == [("root", False)]
        assert len(s3.list_recursive([bucket_url])) == len(TREE)
