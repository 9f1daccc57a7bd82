"""Integrity: downloads are checked against the object's checksum (MD5 ETag, or
x-amz-checksum-* when the server sends one) and uploads carry Content-MD5 the server checks;
a mismatch is retried, and with the checks turned off corruption would get through."""

from __future__ import annotations

import base64
import hashlib
import os
import zlib

import pytest
from faultproxy import FaultProxy, MiB, quick_config

from fasts3 import S3
from fasts3.engine import checksums
from fasts3.engine.transport import NetworkFailure

DATA = os.urandom(100_000)
MD5 = hashlib.md5(DATA).hexdigest()


# -- which checksum a response is checked against ---------------------------------------------
def _run(digest, data: bytes) -> None:
    for i in range(0, len(data), 7000):
        digest.update(memoryview(data)[i:i + 7000])
    digest.verify()


def test_md5_etag_is_checked():
    d = checksums.for_download({"etag": f'"{MD5}"'})
    assert d is not None and d.name == "MD5"
    _run(d, DATA)
    d = checksums.for_download({"etag": f'"{MD5}"'})
    with pytest.raises(NetworkFailure) as ei:
        _run(d, DATA[:-1] + b"x")
    assert ei.value.code == "ChecksumMismatch" and ei.value.transient


@pytest.mark.parametrize("headers", [
    {"etag": f'"{MD5}-3"'},  # multipart upload: not an MD5 of the body
    {"etag": f'"{MD5}"', "x-amz-server-side-encryption": "aws:kms"},
    {"etag": f'"{MD5}"', "x-amz-server-side-encryption-customer-algorithm": "AES256"},
    {"etag": '"not-hex"'},
    {},
])
def test_unverifiable_etags_are_skipped(headers):
    assert checksums.for_download(headers) is None


def test_full_object_checksums_are_preferred_and_checked():
    crc = base64.b64encode(zlib.crc32(DATA).to_bytes(4, "big")).decode()
    sha = base64.b64encode(hashlib.sha256(DATA).digest()).decode()
    d = checksums.for_download({"etag": '"' + "0" * 32 + '"', "x-amz-checksum-crc32": crc})
    assert d.name == "CRC32"
    _run(d, DATA)
    d = checksums.for_download({"x-amz-checksum-sha256": sha})
    assert d.name == "SHA256"
    with pytest.raises(NetworkFailure):
        _run(d, b"x" + DATA[1:])
    # A composite (multipart) checksum says nothing about the body: fall back to the ETag.
    d = checksums.for_download({"etag": f'"{MD5}"', "x-amz-checksum-crc32": crc + "-2",
                                "x-amz-checksum-type": "COMPOSITE"})
    assert d.name == "MD5"
    # CRC32C has no standard-library implementation: skipped.
    assert checksums.for_download({"x-amz-checksum-crc32c": crc}) is None


def test_content_md5_of_bytes_and_file_slices(tmp_path):
    p = tmp_path / "f"
    p.write_bytes(DATA)
    want = base64.b64encode(hashlib.md5(DATA[10:5010]).digest()).decode()
    fd = os.open(p, os.O_RDONLY)
    try:
        assert checksums.content_md5(None, fd, 10, 5000) == want
        with pytest.raises(OSError):
            checksums.content_md5(None, fd, 99_000, 5000)  # the file is shorter
    finally:
        os.close(fd)
    assert checksums.content_md5(DATA[10:5010]) == want


# -- end to end through the proxy --------------------------------------------------------------
def _object_gets(r) -> bool:
    return r.method == "GET" and "list-type" not in r.query and "uploads" not in r.query


def test_corrupted_downloads_are_detected_and_retried(seaweed, bucket, proxy, via):
    objs = {f"c{i}": os.urandom(50_000 + i) for i in range(8)}  # (an empty body has no
    # byte to corrupt, and its first answer is a 416: it would waste injected faults)
    with S3(s3root=f"s3://{bucket}/i", config=quick_config(), **via) as s3:
        s3.put_many(list(objs.items()))
        proxy.set_faults(match=_object_gets, corrupt=1.0, budget=6)
        got = s3.get_many(list(objs))
        assert {o.key: o.blob for o in got} == objs
    assert proxy.stats.faults["corrupt"] == 6
    gets = [r for r in proxy.records if _object_gets(r)]
    assert len(gets) >= len(objs) + 6  # every corrupted answer was asked for again
    assert all(r.headers.get("x-amz-checksum-mode") == "ENABLED" for r in gets)


def test_without_verification_corruption_gets_through(seaweed, bucket, proxy, via):
    with S3(s3root=f"s3://{bucket}/n", config=quick_config(verify_checksums=False), **via) as s3:
        s3.put("x", DATA)
        proxy.set_faults(match=_object_gets, corrupt=1.0, budget=1)
        blob = s3.get("x").blob
    assert len(blob) == len(DATA) and blob != DATA
    assert all("x-amz-checksum-mode" not in r.headers for r in proxy.records)


@pytest.mark.parametrize("mode,header", [("crc32", "x-amz-checksum-crc32"),
                                         ("md5", "content-md5")])
def test_corrupted_uploads_are_rejected_by_the_server_and_retried(seaweed, bucket, proxy, via,
                                                                 mode, header):
    """Every PUT (single or part) carries a checksum (CRC32 by default, or Content-MD5);
    SeaweedFS answers a corrupted body with 400 BadDigest, which is retried."""
    items = [("s1", os.urandom(3000)), ("s2", os.urandom(2 * MiB)), ("m", os.urandom(11 * MiB))]
    proxy.set_faults(match=lambda r: r.method == "PUT", corrupt_request=1.0, budget=5)
    cfg = quick_config(inline_put_limit=MiB, upload_checksums=mode)
    with S3(s3root=f"s3://{bucket}/u-{mode}", config=cfg, **via) as s3:
        s3.put_many(items)
    assert proxy.stats.faults["corrupt_request"] == 5
    puts = [r for r in proxy.records if r.method == "PUT"]
    assert puts and all(header in r.headers for r in puts)
    assert sum("partNumber" in r.query for r in puts) >= 3
    client = seaweed.client()
    for key, value in items:
        assert client.get_object(Bucket=bucket, Key=f"u-{mode}/{key}")["Body"].read() == value


def test_without_content_md5_a_corrupted_upload_is_stored(seaweed, bucket, proxy, via):
    proxy.set_faults(match=lambda r: r.method == "PUT", corrupt_request=1.0, budget=1)
    with S3(s3root=f"s3://{bucket}/w", config=quick_config(upload_checksums=False), **via) as s3:
        s3.put("x", DATA)
    assert all("content-md5" not in r.headers and "x-amz-checksum-crc32" not in r.headers
               for r in proxy.records)
    stored = seaweed.client().get_object(Bucket=bucket, Key="w/x")["Body"].read()
    assert len(stored) == len(DATA) and stored != DATA


def test_server_checksum_headers_are_verified(moto_server, moto_bucket):
    """moto returns x-amz-checksum-crc32 for objects stored with one; corrupted bodies are
    caught and retried."""
    client = moto_server.client()
    client.put_object(Bucket=moto_bucket, Key="crc/x", Body=DATA, ChecksumAlgorithm="CRC32")
    with FaultProxy(moto_server.endpoint_url) as proxy:
        proxy.set_faults(match=_object_gets, corrupt=1.0, budget=2)
        with S3(s3root=f"s3://{moto_bucket}/crc", endpoint_url=proxy.endpoint_url,
                session_vars=moto_server.session_vars(), progress=False,
                config=quick_config()) as s3:
            assert s3.get("x").blob == DATA
        assert proxy.stats.faults["corrupt"] == 2
        assert len([r for r in proxy.records if _object_gets(r)]) == 3


def test_short_body_is_detected_for_parts(seaweed, bucket, proxy, via):
    """Ranged parts carry no checksum, but their length is checked: a truncated part is
    fetched again."""
    big = os.urandom(11 * MiB)
    with S3(s3root=f"s3://{bucket}/t", config=quick_config(), **via) as s3:
        s3.put("big", big)
        proxy.set_faults(match=_object_gets, truncate=1.0, budget=3)
        assert s3.get("big").blob == big
    assert proxy.stats.faults["truncate"] == 3
