"""Put options: canned ACL, Cache-Control, Content-Encoding, Content-Disposition on put,
put_many, put_files (call keywords and S3PutObject fields), single PUT and multipart, read back
with boto3. The three headers are checked against SeaweedFS (which stores them; it accepts but
ignores ACLs), the ACL against moto (GetObjectAcl)."""

from __future__ import annotations

import os

import pytest
from faultproxy import MiB, quick_config

from fasts3 import S3, S3PutObject
from fasts3.errors import S3InvalidObject

ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"
OPTIONS = dict(cache_control="max-age=3600, public", content_encoding="gzip",
               content_disposition='attachment; filename="report.csv"')


def _headers(client, bucket: str, key: str) -> dict:
    h = client.head_object(Bucket=bucket, Key=key)
    return {"cache_control": h.get("CacheControl"), "content_encoding": h.get("ContentEncoding"),
            "content_disposition": h.get("ContentDisposition")}


def _public(client, bucket: str, key: str) -> bool:
    grants = client.get_object_acl(Bucket=bucket, Key=key)["Grants"]
    return any(g["Grantee"].get("URI") == ALL_USERS and g["Permission"] == "READ"
               for g in grants)


def test_headers_on_put_put_many_put_files(seaweed, bucket, s3_kwargs, tmp_path):
    client = seaweed.client()
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(12 * MiB))  # multipart (threshold 5 MiB)
    small = tmp_path / "small.csv"
    small.write_bytes(b"a,b\n")
    with S3(s3root=f"s3://{bucket}", config=quick_config(), **s3_kwargs) as s3:
        s3.put("put.csv", "a,b\n", **OPTIONS)
        s3.put_many([("many-1.csv", b"x"), S3PutObject("many-2.csv", b"y",
                                                       cache_control="no-store")], **OPTIONS)
        s3.put_files([("files-small.csv", small), ("files-big.bin", big)], **OPTIONS)
        s3.put("plain.csv", "a,b\n")
    for key in ("put.csv", "many-1.csv", "files-small.csv", "files-big.bin"):
        assert _headers(client, bucket, key) == OPTIONS, key
    assert _headers(client, bucket, "many-2.csv") == dict(OPTIONS, cache_control="no-store")
    assert _headers(client, bucket, "plain.csv") == dict.fromkeys(OPTIONS)


def test_put_object_fields_alone(seaweed, bucket, s3_kwargs, tmp_path):
    client = seaweed.client()
    with S3(s3root=f"s3://{bucket}", **s3_kwargs) as s3:
        s3.put_many([S3PutObject("f.txt", "z", content_encoding="identity",
                                 content_disposition="inline")])
    assert _headers(client, bucket, "f.txt") == dict(cache_control=None,
                                                     content_encoding="identity",
                                                     content_disposition="inline")


def test_canned_acl_on_moto(moto_server, moto_bucket, moto_kwargs, tmp_path):
    client = moto_server.client()
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(6 * MiB))
    with S3(s3root=f"s3://{moto_bucket}", config=quick_config(), **moto_kwargs) as s3:
        s3.put("pub.txt", "x", acl="public-read")
        s3.put("priv.txt", "x")
        s3.put_files([("big-pub.bin", big)], acl="public-read")  # multipart
        s3.put_many([S3PutObject("obj-pub.txt", "x", acl="public-read"),
                     S3PutObject("obj-priv.txt", "x", acl="private")], acl="public-read")
        with s3.open("w-pub.bin", "wb", acl="public-read") as f:
            f.write(os.urandom(11 * MiB))  # multipart through the writer
    assert _public(client, moto_bucket, "pub.txt")
    assert _public(client, moto_bucket, "big-pub.bin")
    assert _public(client, moto_bucket, "obj-pub.txt")
    assert _public(client, moto_bucket, "w-pub.bin")
    assert not _public(client, moto_bucket, "priv.txt")
    assert not _public(client, moto_bucket, "obj-priv.txt")  # the field wins over the call


@pytest.mark.parametrize("kwargs", [
    {"acl": "public"}, {"acl": "PUBLIC-READ"}, {"cache_control": ""},
    {"cache_control": "a\r\nx-amz-acl: public-read"}, {"content_disposition": "naïve.txt"},
    {"content_encoding": 5},
])
def test_bad_options_rejected_before_sending(via, proxy, bucket, kwargs):
    with S3(s3root=f"s3://{bucket}", **via) as s3:
        with pytest.raises(S3InvalidObject) as info:
            s3.put("k.txt", "x", **kwargs)
        assert info.value.url == f"s3://{bucket}/k.txt"
        with pytest.raises(S3InvalidObject):
            s3.put_many([S3PutObject("k.txt", "x", **kwargs)])
    assert proxy.stats.requests == 0


def test_metaflow_signatures_unchanged():
    o = S3PutObject("k", b"v", None, "text/plain", "AES256", {"m": 1})
    assert (o.key, o.value, o.path, o.content_type, o.encryption, o.metadata) == \
        ("k", b"v", None, "text/plain", "AES256", {"m": 1})
    assert o.acl is None and o.cache_control is None
    with pytest.raises(TypeError):
        S3PutObject("k", b"v", None, None, None, None, "public-read")  # keyword-only
