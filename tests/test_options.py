"""Client options: endpoint from the environment, profile, region, addressing style,
anonymous access, requester-pays, SSE-S3/SSE-KMS with a key id, storage class, assume-role.

Headers are checked on the wire with a small recording HTTP server (a real local server the
worker processes talk to), effects against moto and SeaweedFS.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import pytest

from fasts3 import S3, S3AccessDenied
from fasts3.session import Connection, upload_headers

KEYS = dict(aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret",
            region_name="us-east-1")


class _Recorder(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list[tuple[str, str, dict[str, str]]] = []

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        self.seen.append((self.command, self.path, {k.lower(): v for k, v in
                                                    self.headers.items()}))
        self.send_response(200)
        self.send_header("ETag", '"900150983cd24fb0d6963f7d28e17f72"')
        self.send_header("Last-Modified", "Wed, 01 Jan 2025 00:00:00 GMT")
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_PUT = do_HEAD = do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[tuple[str, list]]:
    seen: list = []
    handler = type("Handler", (_Recorder,), {"seen": seen})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def test_requester_pays_sse_kms_and_storage_class_on_the_wire(recorder):
    url, seen = recorder
    with S3(s3root="s3://bkt/p", endpoint_url=url, session_vars=KEYS, progress=False,
            requester_pays=True, kms_key_id="key-1", storage_class="STANDARD_IA") as s3:
        s3.put("x.txt", b"abc")
        s3.info("x.txt")
    (put,) = [h for m, p, h in seen if m == "PUT"]
    (head,) = [h for m, p, h in seen if m == "HEAD"]
    assert [p for m, p, _ in seen] == ["/bkt/p/x.txt", "/bkt/p/x.txt"]  # path style
    for h in (put, head):
        assert h["x-amz-request-payer"] == "requester"
        assert "x-amz-request-payer" in h["authorization"]  # signed
    assert put["x-amz-server-side-encryption"] == "aws:kms"
    assert put["x-amz-server-side-encryption-aws-kms-key-id"] == "key-1"
    assert put["x-amz-storage-class"] == "STANDARD_IA"
    assert "x-amz-storage-class" not in head and "x-amz-server-side-encryption" not in head


def test_anonymous_requests_are_unsigned(recorder):
    url, seen = recorder
    with S3(s3root="s3://bkt", endpoint_url=url, session_vars=KEYS, anonymous=True,
            progress=False) as s3:
        s3.info("k")
    assert "authorization" not in seen[0][2]


def test_upload_headers_rules():
    assert upload_headers("aws:kms", "k", None) == {
        "x-amz-server-side-encryption-aws-kms-key-id": "k"}
    assert upload_headers(None, None, "GLACIER_IR") == {"x-amz-storage-class": "GLACIER_IR"}
    assert upload_headers("AES256", "k", None) == {}  # an AES256 upload keeps no KMS key
    with pytest.raises(TypeError):
        upload_headers(None, None, "not a class")


def test_connection_region_and_addressing_style():
    c = Connection(session_vars=KEYS, region="eu-west-1", addressing_style="virtual")
    assert c.endpoint.region == "eu-west-1"
    assert c.endpoint.host == "s3.eu-west-1.amazonaws.com"
    assert c.endpoint.path_style is False
    c = Connection(endpoint_url="http://127.0.0.1:9", session_vars=KEYS)
    assert c.endpoint.path_style is True and c.endpoint.port == 9
    c = Connection(endpoint_url="http://127.0.0.1:9", session_vars=KEYS,
                   addressing_style="virtual")
    assert c.endpoint.path_style is False
    assert c.endpoint.headers == ()


def test_endpoint_from_environment(seaweed, s3root, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", seaweed.endpoint_url)
    with S3(s3root=s3root, session_vars=seaweed.session_vars(), progress=False) as s3:
        s3.put("a", "env")
        assert s3.get("a").text == "env"


def test_profile_from_config_files(seaweed, s3root, tmp_path, monkeypatch):
    (tmp_path / "credentials").write_text(
        f"[demo]\naws_access_key_id = {seaweed.access_key}\n"
        f"aws_secret_access_key = {seaweed.secret_key}\n")
    (tmp_path / "config").write_text("[profile demo]\nregion = us-east-1\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    with S3(s3root=s3root, endpoint_url=seaweed.endpoint_url, profile="demo",
            progress=False) as s3:
        s3.put("p", "profile")  # SeaweedFS checks the signature: the profile's keys work
        assert s3.get("p").text == "profile"


def test_anonymous_public_and_private_objects(moto_server, moto_bucket):
    c = moto_server.client()
    c.put_object(Bucket=moto_bucket, Key="public", Body=b"open", ACL="public-read")
    c.put_object(Bucket=moto_bucket, Key="private", Body=b"closed")
    from botocore import UNSIGNED
    from botocore.config import Config

    for kwargs in ({"anonymous": True},
                   {"client_params": {"config": Config(signature_version=UNSIGNED)}}):
        with S3(s3root=f"s3://{moto_bucket}", endpoint_url=moto_server.endpoint_url,
                progress=False, **kwargs) as s3:
            assert s3.get("public").text == "open"
            with pytest.raises(S3AccessDenied):
                s3.get("private")


def test_anonymous_is_refused_by_seaweed(seaweed, s3root, s3_kwargs):
    with S3(s3root=s3root, **s3_kwargs) as s3:
        s3.put("a", "x")
    with S3(s3root=s3root, endpoint_url=seaweed.endpoint_url, anonymous=True,
            progress=False) as s3, pytest.raises(S3AccessDenied):
        s3.get("a")


def test_sse_and_storage_class_stored(moto_server, moto_bucket, moto_kwargs):
    root = f"s3://{moto_bucket}"
    with S3(s3root=root, kms_key_id="my-key", storage_class="STANDARD_IA",
            **moto_kwargs) as s3:
        s3.put("kms", "a")
        info = s3.info("kms")
        assert info.encryption == "aws:kms"
    with S3(s3root=root, encryption="AES256", **moto_kwargs) as s3:
        s3.put("aes", "b")
        s3.copy_many([("kms", "aes-copy")])
        assert s3.info("aes").encryption == "AES256"
        assert s3.info("aes-copy").encryption == "AES256"
    head = moto_server.client().head_object(Bucket=moto_bucket, Key="kms")
    assert head["SSEKMSKeyId"].endswith("my-key")
    assert head["StorageClass"] == "STANDARD_IA"


def test_assume_role_through_sts_refreshes(moto_server, moto_bucket, moto_kwargs,
                                           monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", moto_server.endpoint_url)
    role = {"RoleArn": "arn:aws:iam::123456789012:role/fasts3-test",
            "RoleSessionName": "fasts3-test",
            "DurationSeconds": 900}  # inside botocore's refresh window: refresh each time
    with S3(s3root=f"s3://{moto_bucket}", role=role, **moto_kwargs) as s3:
        s3.put("a", "one")
        conn = s3._engine.connection
        first = conn.credentials()
        assert first.access_key.startswith("ASIA") and first.token
        assert first.access_key != moto_server.access_key
        second = conn.credentials()
        assert second.access_key != first.access_key  # refreshed through STS
        assert s3.get("a").text == "one"  # the pool got the new credentials


def test_role_as_arn_string(moto_server, moto_bucket, moto_kwargs, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", moto_server.endpoint_url)
    with S3(s3root=f"s3://{moto_bucket}", role="arn:aws:iam::123456789012:role/r",
            **moto_kwargs) as s3:
        s3.put("b", "two")
        assert s3._engine.connection.credentials().access_key.startswith("ASIA")
