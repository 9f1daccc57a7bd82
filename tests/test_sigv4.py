"""fasts3.engine.sigv4.Signer must produce exactly botocore's S3SigV4Auth Authorization header
for the same request, time and credentials. Pure unit test: no server."""

from __future__ import annotations

import datetime
import hashlib
from unittest import mock

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials as BotoCredentials

from fasts3.engine.sigv4 import UNSIGNED, Credentials, Signer, canonical_query, quote_path

NOW = datetime.datetime(2024, 3, 9, 23, 59, 58, tzinfo=datetime.timezone.utc)
ACCESS, SECRET = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
TOKEN = "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQD+token/with+chars="


def botocore_auth(method, scheme, host, port, bucket, key, params, headers, body, token,
                  region, sign_payload):
    """Sign with botocore the way its S3 client does (path-style URL already quoted)."""
    netloc = host if port in (80, 443) else f"{host}:{port}"
    url = f"{scheme}://{netloc}" + quote_path(f"/{bucket}/{key}" if key else f"/{bucket}")
    req = AWSRequest(method=method, url=url, headers=dict(headers), data=body,
                     params=dict(params or {}))
    req.context["client_config"] = Config(s3={"payload_signing_enabled": sign_payload})
    auth = S3SigV4Auth(BotoCredentials(ACCESS, SECRET, token), "s3", region)
    with mock.patch("botocore.auth.get_current_datetime", return_value=NOW.replace(tzinfo=None)):
        auth.add_auth(req)
    return req.headers


def fasts3_auth(method, host, port, bucket, key, params, headers, body, token, region,
                sign_payload):
    signer = Signer(Credentials(ACCESS, SECRET, token), region)
    hdrs = {k.lower(): v for k, v in headers.items()}
    host_header = host if port in (80, 443) else f"{host}:{port}"
    payload = hashlib.sha256(body or b"").hexdigest() if sign_payload else UNSIGNED
    signer.sign(method, host_header, quote_path(f"/{bucket}/{key}" if key else f"/{bucket}"),
                canonical_query(params), hdrs, payload, now=NOW.timestamp())
    return hdrs


CASES = [
    # (id, method, key, params, headers, body)
    ("get-plain", "GET", "data/file.bin", None, {}, b""),
    ("get-weird-key", "GET", "dir with space/a+b%c=d&e?f#g~h/ünï©ode.txt", None, {}, b""),
    ("list-query", "GET", "", {"list-type": "2", "prefix": "a b/ü+=&", "delimiter": "/",
                               "continuation-token": "1/abc+def=="}, {}, b""),
    ("get-control-key", "GET", "crazypath/\x01\xff\n\t\x7f", None, {}, b""),
    ("list-encoding-type", "GET", "", {"list-type": "2", "prefix": "crazypath/\x01\r",
                                       "encoding-type": "url"}, {}, b""),
    ("mpu-create", "POST", "big.parquet", {"uploads": ""},
     {"Content-Type": "application/vnd.apache.parquet"}, b""),
    ("mpu-part", "PUT", "big.parquet", {"partNumber": "3", "uploadId": "u/p+l=d"}, {},
     b"x" * 1000),
    ("put-meta", "PUT", "k.json", None,
     {"Content-Type": "application/json", "x-amz-meta-owner": "  alice   and  bob ",
      "x-amz-meta-metaflow-user-attributes": '{"a": 1}', "Content-MD5": "1B2M2Y8AsgTpgAmY7PhCfg=="},
     b"{}"),
]


# (scheme, host, port, region, sign_payload): botocore always signs the payload over http.
ENDPOINTS = {
    "aws-unsigned-payload": ("https", "s3.eu-west-1.amazonaws.com", 443, "eu-west-1", False),
    "aws-signed-payload": ("https", "s3.eu-west-1.amazonaws.com", 443, "eu-west-1", True),
    "local-port": ("http", "127.0.0.1", 8333, "us-east-1", True),
}


@pytest.mark.parametrize("token", [None, TOKEN], ids=["no-token", "session-token"])
@pytest.mark.parametrize("endpoint", list(ENDPOINTS.values()), ids=list(ENDPOINTS))
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_same_authorization_as_botocore(case, endpoint, token):
    _, method, key, params, headers, body = case
    scheme, host, port, region, sign_payload = endpoint
    theirs = botocore_auth(method, scheme, host, port, "my-bucket", key, params, headers, body,
                           token, region, sign_payload)
    ours = fasts3_auth(method, host, port, "my-bucket", key, params, headers, body, token,
                       region, sign_payload)
    assert ours["authorization"] == theirs["Authorization"]
    assert ours["x-amz-date"] == theirs["X-Amz-Date"] == "20240309T235958Z"
    assert ours["x-amz-content-sha256"] == theirs["X-Amz-Content-SHA256"]
    if token:
        assert ours["x-amz-security-token"] == theirs["X-Amz-Security-Token"] == TOKEN
    else:
        assert "x-amz-security-token" not in ours


def test_signing_key_cached_per_day_and_reset_on_new_day():
    signer = Signer(Credentials(ACCESS, SECRET), "us-east-1")
    h1: dict[str, str] = {}
    signer.sign("GET", "h", "/b/k", "", h1, now=NOW.timestamp())
    h2: dict[str, str] = {}
    signer.sign("GET", "h", "/b/k", "", h2, now=NOW.timestamp() + 3)  # next day (UTC)
    assert h1["authorization"] != h2["authorization"]
    assert "/20240310/us-east-1/s3/aws4_request" in h2["authorization"]
    h3: dict[str, str] = {}
    signer.sign("GET", "h", "/b/k", "", h3, now=NOW.timestamp())  # back: recomputed, same
    assert h3["authorization"] == h1["authorization"]


def test_anonymous_adds_nothing():
    headers: dict[str, str] = {"range": "bytes=0-1"}
    Signer(Credentials(None, None), "us-east-1").sign("GET", "h", "/b/k", "", headers)
    assert headers == {"range": "bytes=0-1"}


def test_credentials_repr_hides_secrets():
    text = repr(Credentials(ACCESS, SECRET, TOKEN))
    assert ACCESS not in text and SECRET not in text and TOKEN not in text
