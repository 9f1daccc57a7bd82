"""HTTPS (issue 11): a CA and a server certificate are made at test time
(``faultmodes.make_certs``); the fault proxy serves TLS in front of SeaweedFS. Transfers of
every kind run over it with the CA given by ``client_params={"verify": ...}``,
``AWS_CA_BUNDLE`` or ``verify=False``; an untrusted certificate is one typed, unretried error;
TLS errors mid-body are retried and typed."""

from __future__ import annotations

import os
import ssl

import pytest
from faultmodes import make_certs
from faultproxy import FaultProxy, MiB, partial_files, quick_config

from fasts3 import S3, S3CertificateError, S3Error, S3GetObject, S3NetworkError


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> dict[str, str]:
    return make_certs(str(tmp_path_factory.mktemp("tls")))


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory) -> str:
    return make_certs(str(tmp_path_factory.mktemp("tls-other")))["ca"]


@pytest.fixture
def tls_proxy(seaweed, certs):
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(certs["cert"], certs["key"])
    with FaultProxy(seaweed.endpoint_url, tls=ctx) as p:
        yield p


@pytest.fixture
def https(tls_proxy, seaweed) -> dict:
    """``S3(...)`` keyword arguments for the HTTPS proxy (no CA given yet)."""
    return dict(endpoint_url=tls_proxy.endpoint_url, session_vars=seaweed.session_vars(),
                progress=False, config=quick_config())


def test_transfers_over_https_with_client_params_verify(tls_proxy, https, certs, bucket,
                                                        tmp_path):
    assert https["endpoint_url"].startswith("https://localhost:")
    small, large = os.urandom(300_000), os.urandom(11 * MiB + 5)
    src = tmp_path / "large.bin"
    src.write_bytes(large)
    with S3(s3root=f"s3://{bucket}/tls", client_params={"verify": certs["ca"]},
            **https) as s3:
        s3.put("small", small)
        s3.put_files([("large", str(src))])  # multipart: 5 MiB parts
        assert sorted(o.key for o in s3.list_recursive([""])) == ["large", "small"]
        assert [o.key for o in s3.list_paths()] == ["large", "small"]
        assert s3.info("large").size == len(large)
        got = s3.get_many(["small", "large"])
        assert got[0].blob == small and got[1].blob == large
        assert s3.get(S3GetObject("large", offset=MiB, length=6 * MiB)).blob == \
            large[MiB:7 * MiB]
        with s3.open("large") as f:
            f.seek(-1000, 2)
            assert f.read() == large[-1000:]
        s3.delete_many(["small"])
    assert tls_proxy.stats.requests >= 10
    assert any(r.method == "POST" and "uploads" in r.query for r in tls_proxy.records)


def test_aws_ca_bundle_reaches_the_workers(tls_proxy, https, certs, bucket, monkeypatch):
    monkeypatch.setenv("AWS_CA_BUNDLE", certs["ca"])
    with S3(s3root=f"s3://{bucket}", **https) as s3:
        s3.put_many([(f"k{i}", b"x" * i) for i in range(8)])
        assert [o.size for o in s3.get_many([f"k{i}" for i in range(8)])] == list(range(8))


def test_verify_false_skips_the_check(tls_proxy, https, bucket):
    with S3(s3root=f"s3://{bucket}", client_params={"verify": False}, **https) as s3:
        s3.put("k", b"unverified")
        assert s3.get("k").blob == b"unverified"


@pytest.mark.parametrize("which", ["system", "other"])
def test_untrusted_certificate_is_one_typed_error(tls_proxy, https, other_ca, bucket, which,
                                                  tmp_path):
    params = {"verify": other_ca} if which == "other" else {}
    with S3(s3root=f"s3://{bucket}", client_params=params, tmproot=str(tmp_path),
            **https) as s3:
        with pytest.raises(S3CertificateError) as ei:
            s3.get("k")
        assert partial_files(s3.tmpdir) == []
        with pytest.raises(S3CertificateError):
            s3.open("k")
    e = ei.value
    assert e.code == "CertificateError" and f"localhost:{tls_proxy.port}" in str(e)
    assert "AWS_CA_BUNDLE" in str(e)
    assert tls_proxy.stats.accepted == 2  # one handshake each for get and open: no retries


def test_unreadable_ca_bundle_is_an_option_error(https, bucket, tmp_path):
    with S3(s3root=f"s3://{bucket}", client_params={"verify": str(tmp_path / "nope.pem")},
            **https) as s3:
        with pytest.raises(S3Error) as ei:
            s3.get("k")
    assert ei.value.code == "InvalidOption" and "nope.pem" in str(ei.value)


def test_tls_errors_mid_body_are_retried_then_typed(tls_proxy, https, certs, bucket):
    data = os.urandom(500_000)
    gets = lambda r: r.method == "GET" and "list-type" not in r.query  # noqa: E731
    with S3(s3root=f"s3://{bucket}", client_params={"verify": certs["ca"]}, **https) as s3:
        s3.put("k", data)
        tls_proxy.set_faults(tls_garbage=1.0, match=gets, budget=2)
        assert s3.get("k").blob == data
        with s3.open("k") as f:
            assert f.read() == data
    assert tls_proxy.stats.faults["tls_garbage"] == 2
    cfg = quick_config(max_attempts=2)
    with S3(s3root=f"s3://{bucket}", client_params={"verify": certs["ca"]},
            **dict(https, config=cfg)) as s3:
        tls_proxy.set_faults(tls_garbage=1.0, match=gets)
        with pytest.raises(S3NetworkError) as ei:
            s3.get("k")
        with pytest.raises(S3NetworkError) as oi:  # open() lets no raw OSError escape
            with s3.open("k") as f:
                f.read()
    assert ei.value.code == "SSLError" and oi.value.code == "SSLError"
