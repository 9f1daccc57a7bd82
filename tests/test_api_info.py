"""S3.info / info_many (HEAD only) against SeaweedFS, and server-side encryption on moto."""

from __future__ import annotations

import json
import os

import pytest
from buckets import scratch_bucket

from fasts3 import S3, S3NotFound, S3PutObject


@pytest.fixture(scope="module")
def root(seaweed):
    with scratch_bucket(seaweed, "api-info") as name:
        client = seaweed.client()
        client.put_object(Bucket=name, Key="root/a.json", Body=b'{"a": 1}',
                          ContentType="application/json",
                          Metadata={"owner": "alice", "n": "1"})
        client.put_object(Bucket=name, Key="root/mf", Body=b"metaflow",
                          Metadata={"metaflow-user-attributes": json.dumps({"x": "y", "n": 2})})
        client.put_object(Bucket=name, Key="root/empty", Body=b"")
        yield f"s3://{name}/root"


@pytest.fixture(scope="module")
def s3(seaweed, root, tmp_path_factory):
    with S3(s3root=root, endpoint_url=seaweed.endpoint_url,
            session_vars=seaweed.session_vars(), progress=False,
            tmproot=str(tmp_path_factory.mktemp("info"))) as s3:
        yield s3


def test_info(s3, seaweed, root):
    o = s3.info("a.json")
    head = seaweed.client().head_object(Bucket=root.split("/")[2], Key="root/a.json")
    assert o.url == root + "/a.json" and o.key == "a.json" and o.prefix == root
    assert o.exists and not o.downloaded
    assert o.path is None and o.blob is None and o.text is None
    assert o.size == 8
    assert o.has_info
    assert o.content_type == "application/json"
    assert o.metadata == {"owner": "alice", "n": "1"}
    assert o.last_modified == int(head["LastModified"].timestamp())
    assert o.range_info is None
    assert o.encryption is None
    assert not any("a.json" in name for name in os.listdir(s3.tmpdir))  # nothing downloaded


def test_info_metaflow_metadata(s3):
    assert s3.info("mf").metadata == {"x": "y", "n": 2}


def test_info_empty_object(s3):
    o = s3.info("empty")
    assert o.exists and o.size == 0


def test_info_missing(s3, root):
    with pytest.raises(S3NotFound) as e:
        s3.info("nope")
    assert e.value.url == root + "/nope"
    assert e.value.code in ("NoSuchKey", "NotFound", "404")  # HEAD answers carry no body
    o = s3.info("nope", return_missing=True)
    assert not o.exists and not o.downloaded and o.size is None and not o.has_info
    assert o.key == "nope"


def test_info_many(s3, root):
    keys = ["empty", "nope", "a.json", "/a.json", "mf"]
    objs = s3.info_many(keys, return_missing=True)
    assert [o.url for o in objs] == [root + "/" + k.lstrip("/") for k in keys]
    assert [o.exists for o in objs] == [True, False, True, True, True]
    assert [o.size for o in objs] == [0, None, 8, 8, 8]
    with pytest.raises(S3NotFound) as e:
        s3.info_many(keys)
    assert e.value.url == root + "/nope"
    assert s3.info_many([]) == []


def test_info_full_url_without_root(seaweed, root, tmp_path):
    with S3(endpoint_url=seaweed.endpoint_url, session_vars=seaweed.session_vars(),
            progress=False, tmproot=str(tmp_path)) as s3:
        o = s3.info(root + "/a.json")
        assert o.key == o.url == root + "/a.json" and o.size == 8


def test_encryption_reported(moto_server, moto_bucket, tmp_path):
    """moto honours x-amz-server-side-encryption (SeaweedFS does not report it)."""
    with S3(s3root=f"s3://{moto_bucket}/enc", endpoint_url=moto_server.endpoint_url,
            session_vars=moto_server.session_vars(), progress=False,
            tmproot=str(tmp_path)) as s3:
        s3.put_many([S3PutObject("aes", value=b"secret", encryption="AES256"),
                     S3PutObject("plain", value=b"plain")])
        aes, plain = s3.info_many(["aes", "plain"])
        assert aes.encryption == "AES256"
        assert s3.get("aes").encryption == "AES256"
        assert s3.get("aes").blob == b"secret"
        head = moto_server.client().head_object(Bucket=moto_bucket, Key="enc/aes")
        assert head["ServerSideEncryption"] == "AES256"
    with S3(s3root=f"s3://{moto_bucket}/enc2", endpoint_url=moto_server.endpoint_url,
            session_vars=moto_server.session_vars(), progress=False, encryption="AES256",
            tmproot=str(tmp_path)) as s3:
        s3.put("default", b"x")  # the client-wide default applies
        assert s3.info("default").encryption == "AES256"
