"""Keys with characters that need care in URLs and signatures round-trip through put, get,
info, listing and get_recursive. On moto (SeaweedFS mangles some of these keys)."""

from __future__ import annotations

import uuid

import pytest

from fasts3 import S3, S3GetObject

KEYS = [
    "with space",
    "plus+sign",
    "percent%25and%2F%",
    "ünïcødé/日本語/😀",
    "question?mark",
    "tilde~",
    "hash#frag",
    "equals=sign",
    "amp&ersand",
    "all of them/ a+b%c?d~e#f=g&h ü",
    "x?a=1&b=2#top",
    "punct!$'()*,;:@[]{}^`|\"<>",
    "back\\slash",
    "trailing space ",
    "dots..and/./.../x",
]


def _body(key: str) -> bytes:
    return ("body of " + key).encode()


@pytest.fixture(scope="module")
def bucket(moto_server):
    name = f"t-api-keys-{uuid.uuid4().hex[:10]}"
    moto_server.create_bucket(name)
    return name


@pytest.fixture(scope="module")
def s3(moto_server, bucket, tmp_path_factory):
    with S3(s3root=f"s3://{bucket}/root", endpoint_url=moto_server.endpoint_url,
            session_vars=moto_server.session_vars(), progress=False,
            tmproot=str(tmp_path_factory.mktemp("keys"))) as s3:
        result = s3.put_many([(k, _body(k)) for k in KEYS])
        assert [k for k, _ in result] == KEYS
        yield s3


@pytest.mark.parametrize("key", KEYS)
def test_key_round_trip(s3, moto_server, bucket, key):
    url = f"s3://{bucket}/root/{key}"
    # What boto3 sees is exactly the key we were given.
    got = moto_server.client().get_object(Bucket=bucket, Key="root/" + key)["Body"].read()
    assert got == _body(key)
    o = s3.get(key)
    assert (o.url, o.key, o.blob) == (url, key, _body(key))
    assert s3.get(S3GetObject(key, 3, 4)).blob == _body(key)[3:7]
    info = s3.info(key)
    assert info.url == url and info.size == len(_body(key))
    s3.put(key, b"again", metadata={"k": "v"})  # single put, overwrite
    assert s3.get(key).blob == b"again" and s3.info(key).metadata == {"k": "v"}
    s3.put(key, _body(key))


def test_listing_returns_the_exact_keys(s3, bucket):
    objs = s3.list_recursive()
    assert sorted(o.key for o in objs) == sorted(KEYS)
    assert {o.url for o in objs} == {f"s3://{bucket}/root/{k}" for k in KEYS}
    assert {o.key: o.size for o in objs} == {k: len(_body(k)) for k in KEYS}


def test_list_paths_of_a_weird_directory(s3):
    objs = s3.list_paths(["all of them"])
    assert [(o.key, o.exists) for o in objs] == [(" a+b%c?d~e#f=g&h ü", True)]
    objs = s3.list_paths(["ünïcødé"])
    assert [(o.key, o.exists) for o in objs] == [("日本語", False)]


def test_get_recursive_and_get_many(s3):
    objs = s3.get_recursive(["ünïcødé", "all of them"])
    assert {o.key: o.blob for o in objs} == {  # relative to the requested key, as in Metaflow
        "日本語/😀": _body("ünïcødé/日本語/😀"),
        " a+b%c?d~e#f=g&h ü": _body("all of them/ a+b%c?d~e#f=g&h ü"),
    }
    objs = s3.get_recursive(["ünïcødé", "all of them"], return_info=True)
    assert {o.key for o in objs} == {"ünïcødé/日本語/😀", "all of them/ a+b%c?d~e#f=g&h ü"}
    objs = s3.get_many(KEYS)
    assert [o.blob for o in objs] == [_body(k) for k in KEYS]
    assert [o.key for o in s3.info_many(KEYS)] == KEYS


def test_full_urls_without_root(moto_server, bucket, tmp_path):
    with S3(endpoint_url=moto_server.endpoint_url, session_vars=moto_server.session_vars(),
            progress=False, tmproot=str(tmp_path)) as s3:
        for key in ("hash#frag", "x?a=1&b=2#top", "percent%25and%2F%"):
            url = f"s3://{bucket}/root/{key}"
            assert s3.get(url).blob == _body(key)
            assert s3.get(url).key == url


def test_double_slash_keys_under_root(moto_server, bucket, tmp_path):
    """A key with an empty path segment right under the root (written by another tool)."""
    moto_server.client().put_object(Bucket=bucket, Key="root2//x", Body=b"double")
    moto_server.client().put_object(Bucket=bucket, Key="root2/x", Body=b"single")
    with S3(s3root=f"s3://{bucket}/root2", endpoint_url=moto_server.endpoint_url,
            session_vars=moto_server.session_vars(), progress=False,
            tmproot=str(tmp_path)) as s3b:
        got = {o.url: o.blob for o in s3b.get_all()}
        assert got == {f"s3://{bucket}/root2//x": b"double", f"s3://{bucket}/root2/x": b"single"}


def test_empty_metadata_value_round_trip(s3):
    """Empty values survive (inside the JSON header; SeaweedFS drops empty plain headers)."""
    s3.put("meta", b"x", metadata={"empty": "", "u": "ü"})
    assert s3.info("meta").metadata == {"empty": "", "u": "ü"}
