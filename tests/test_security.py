"""Secrets stay secret: the secret key and session token never show up in logs (parent and
workers at DEBUG), exception messages or reprs; temp files are 0600 in a 0700 directory."""

from __future__ import annotations

import io
import logging
import os
import stat
import threading
import time

import pytest
from faultproxy import FaultProxy, MiB, quick_config

from fasts3 import S3
from fasts3.engine.sigv4 import Credentials
from fasts3.errors import S3Error

SECRET = "SeCrEt-9f1b2c3d4e5f60718293a4b5c6d7e8f9"
TOKEN = "ToKeN-a1b2c3d4e5f60718293a4b5c6d7e8f90-session"
ACCESS = "AKIAFASTS3SECURITYTEST"


def _assert_clean(text: str, where: str) -> None:
    assert SECRET not in text, f"secret key in {where}"
    assert TOKEN not in text, f"session token in {where}"
    # The parts of a secret too: a log that cuts or wraps it must not leak half of it.
    for piece in (SECRET[:16], SECRET[-16:], TOKEN[:16], TOKEN[-16:]):
        assert piece not in text, f"part of a secret in {where}"


@pytest.fixture
def moto_proxy(moto_server):
    with FaultProxy(moto_server.endpoint_url, seed=5) as p:
        yield p


def _session_vars(moto_server) -> dict:
    return dict(aws_access_key_id=ACCESS, aws_secret_access_key=SECRET,
                aws_session_token=TOKEN, region_name=moto_server.region)


def test_no_secret_in_logs_errors_or_reprs(moto_server, moto_bucket, moto_proxy, caplog,
                                           capfd, monkeypatch, tmp_path):
    """Everything at DEBUG (parent loggers and worker processes), through faults that make
    workers retry, log warnings and fail; moto accepts any key pair, so the secrets are ours."""
    monkeypatch.setenv("FASTS3_WORKER_LOG", "DEBUG")
    caplog.set_level(logging.DEBUG)  # the root logger: fasts3, botocore, urllib3, ...
    texts = []
    src = tmp_path / "f.bin"
    src.write_bytes(os.urandom(6 * MiB))
    with S3(s3root=f"s3://{moto_bucket}/sec", endpoint_url=moto_proxy.endpoint_url,
            session_vars=_session_vars(moto_server), progress=False,
            config=quick_config(max_attempts=3)) as s3:
        moto_proxy.spread(0.3, ("slowdown", "error500", "reset_before", "truncate"))
        try:
            s3.put_many([("a", b"x" * 1000), ("b", os.urandom(2 * MiB))])
            s3.put_files([("c", str(src))])
            s3.get_many(["a", "b", "c"])
            s3.info_many(["a", "missing"], return_missing=True)
            s3.list_recursive()
        except S3Error as e:  # retries may run out at 30 %: the message is checked below
            texts += [str(e), repr(e)]
        moto_proxy.set_faults(error500=1.0)
        for call in (lambda: s3.get("a"), lambda: s3.put("z", b"z"), lambda: s3.info("a")):
            with pytest.raises(S3Error) as ei:
                call()
            texts += [str(ei.value), repr(ei.value), str(ei.value.args)]
        moto_proxy.clear()
        with pytest.raises(S3Error) as ei:
            s3.get("does/not/exist")
        texts += [str(ei.value), repr(ei.value)]
        conn = s3._engine.connection
        creds = conn.credentials()
        assert creds.secret_key == SECRET  # the test really used them
        texts += [repr(s3), str(s3), repr(conn), str(conn), repr(creds), str(creds),
                  repr(conn.endpoint), repr(s3._config), repr(s3._engine),
                  repr(s3._engine.pool), repr(conn.session)]
        texts += [repr(Credentials(ACCESS, SECRET, TOKEN)), f"{Credentials(ACCESS, SECRET)}"]
    time.sleep(0.2)  # let the workers' last log lines reach stderr
    out, err = capfd.readouterr()
    _assert_clean(caplog.text, "the parent's logs")
    _assert_clean(out + err, "stdout/stderr (workers log there)")
    assert "fasts3-worker" in err  # the workers' DEBUG logs were captured
    for t in texts:
        _assert_clean(t, f"an exception or repr: {t[:80]!r}")


def test_wrong_secret_error_does_not_echo_it(seaweed, bucket):
    """SeaweedFS checks signatures: the SignatureDoesNotMatch error names the URL and code,
    not the secret that was used."""
    sv = dict(seaweed.session_vars(), aws_secret_access_key=SECRET, aws_session_token=TOKEN)
    with S3(s3root=f"s3://{bucket}/w", endpoint_url=seaweed.endpoint_url, session_vars=sv,
            progress=False) as s3:
        for call in (lambda: s3.get("k"), lambda: s3.put("k", b"v"), lambda: s3.info("k")):
            with pytest.raises(S3Error) as ei:
                call()
            for t in (str(ei.value), repr(ei.value), repr(ei.value.__reduce__())):
                _assert_clean(t, "the error")


def _modes(directory: str) -> dict[str, int]:
    out = {}
    for name in os.listdir(directory):
        try:
            out[name] = stat.S_IMODE(os.stat(os.path.join(directory, name)).st_mode)
        except FileNotFoundError:
            pass
    return out


def test_temp_files_are_private(seaweed, bucket, s3_kwargs):
    """Downloads (single and multipart, their temp .part files too) and upload values
    staged on disk are 0600 inside a 0700 temp dir, whatever the umask."""
    old_umask = os.umask(0o022)
    try:
        with S3(s3root=f"s3://{bucket}/m", config=quick_config(inline_put_limit=MiB),
                **s3_kwargs) as up:
            up.put_many([("small", b"s" * 100), ("big", os.urandom(11 * MiB))])
        with FaultProxy(seaweed.endpoint_url) as proxy:
            proxy.latency = 0.3  # keep temp files around long enough to be looked at
            seen: dict[str, int] = {}
            with S3(s3root=f"s3://{bucket}/m", config=quick_config(inline_put_limit=MiB),
                    **dict(s3_kwargs, endpoint_url=proxy.endpoint_url)) as s3:
                assert stat.S_IMODE(os.stat(s3.tmpdir).st_mode) == 0o700
                stop = threading.Event()

                def watch():
                    while not stop.is_set():
                        seen.update(_modes(s3.tmpdir))
                        time.sleep(0.005)

                t = threading.Thread(target=watch, daemon=True)
                t.start()
                try:
                    s3.get_many(["small", "big"])
                    s3.put_many([("p1", os.urandom(2 * MiB)),
                                 ("p2", io.BytesIO(os.urandom(MiB + 1)))])
                finally:
                    stop.set()
                    t.join()
                seen.update(_modes(s3.tmpdir))
        assert any(n.endswith(".part") for n in seen)  # temp and staged files were seen
        assert len(seen) >= 4
        assert {n: m for n, m in seen.items() if m != 0o600} == {}
    finally:
        os.umask(old_umask)
