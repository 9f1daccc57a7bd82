"""Tests of fasts3.local: the embedded SeaweedFS and moto servers themselves."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from botocore.exceptions import BotoCoreError, ClientError

from fasts3 import local
from fasts3.local import LocalS3, LocalS3Error, start_moto, start_seaweedfs, weed_binary

REPO = Path(__file__).resolve().parents[1]


def _listening(pid: int) -> list[tuple[str, int]]:
    return [(c.laddr.ip, c.laddr.port) for c in psutil.Process(pid).net_connections("inet")
            if c.status == psutil.CONN_LISTEN]


def _error_code(exc: ClientError) -> tuple[int, str]:
    return exc.response["ResponseMetadata"]["HTTPStatusCode"], exc.response["Error"]["Code"]


def test_weed_binary_is_executable() -> None:
    path = weed_binary()
    assert os.path.isfile(path) and os.access(path, os.X_OK)
    out = subprocess.run([path, "version"], capture_output=True, text=True, timeout=30)
    assert "version" in out.stdout.lower()


def test_seaweed_bucket_and_object_roundtrip(seaweed: LocalS3, bucket: str) -> None:
    assert seaweed.kind == "seaweedfs" and seaweed.running()
    assert seaweed.endpoint_url.startswith("http://127.0.0.1:")
    client = seaweed.client()
    client.put_object(Bucket=bucket, Key="dir/hello.txt", Body=b"hello world")
    assert client.get_object(Bucket=bucket, Key="dir/hello.txt")["Body"].read() == b"hello world"
    listed = client.list_objects_v2(Bucket=bucket, Prefix="dir/")
    assert [o["Key"] for o in listed["Contents"]] == ["dir/hello.txt"]
    assert bucket in [b["Name"] for b in client.list_buckets()["Buckets"]]
    seaweed.create_bucket(bucket)  # idempotent


def test_seaweed_listens_on_loopback_only(seaweed: LocalS3) -> None:
    addrs = _listening(seaweed.pid)
    assert addrs, "weed listens on nothing?"
    assert {ip for ip, _ in addrs} == {"127.0.0.1"}, addrs
    s3_port = int(seaweed.endpoint_url.rsplit(":", 1)[1])
    assert s3_port in {port for _, port in addrs}


def test_seaweed_rejects_wrong_credentials(seaweed: LocalS3, bucket: str) -> None:
    bad_secret = LocalS3("seaweedfs", seaweed.endpoint_url, seaweed.access_key, "wrong-secret")
    with pytest.raises(ClientError) as info:
        bad_secret.client().list_objects_v2(Bucket=bucket)
    assert _error_code(info.value) == (403, "SignatureDoesNotMatch")

    bad_key = LocalS3("seaweedfs", seaweed.endpoint_url, "no-such-key", seaweed.secret_key)
    with pytest.raises(ClientError) as info:
        bad_key.client().put_object(Bucket=bucket, Key="x", Body=b"x")
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_session_vars_and_env(seaweed: LocalS3, bucket: str,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3
    from botocore.config import Config

    assert seaweed.session_vars() == {"aws_access_key_id": seaweed.access_key,
                                      "aws_secret_access_key": seaweed.secret_key,
                                      "region_name": "us-east-1"}
    env = seaweed.env()
    assert env["AWS_ENDPOINT_URL_S3"] == env["AWS_ENDPOINT_URL"] == seaweed.endpoint_url
    # A plain boto3 client configured only through the environment reaches the server.
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    client = boto3.session.Session().client("s3", config=Config(s3={"addressing_style": "path"}))
    client.put_object(Bucket=bucket, Key="via-env", Body=b"ok")
    session = boto3.session.Session(**seaweed.session_vars())
    client = session.client("s3", endpoint_url=seaweed.endpoint_url,
                            config=Config(s3={"addressing_style": "path"}))
    assert client.get_object(Bucket=bucket, Key="via-env")["Body"].read() == b"ok"


def test_two_seaweed_servers_run_at_once_and_stop_is_scoped(seaweed: LocalS3, bucket: str,
                                                            tmp_path: Path) -> None:
    other = start_seaweedfs(access_key="other-key", secret_key="other-secret",
                            buckets=["other-bucket"])
    data_dir = other.data_dir
    try:
        assert other.endpoint_url != seaweed.endpoint_url and other.pid != seaweed.pid
        assert not set(_listening(other.pid)) & set(_listening(seaweed.pid))
        other.client().put_object(Bucket="other-bucket", Key="k", Body=b"other")
        seaweed.client().put_object(Bucket=bucket, Key="k", Body=b"first")
        names = {b["Name"] for b in other.client().list_buckets()["Buckets"]}
        assert "other-bucket" in names and bucket not in names
    finally:
        other.stop()
    assert not psutil.pid_exists(other.pid) or psutil.Process(other.pid).status() == "zombie"
    assert data_dir is not None and not os.path.exists(data_dir)  # it made it, so it removed it
    other.stop()  # idempotent
    with other:  # __exit__ -> stop() again: still fine
        pass
    # The session server is untouched.
    assert seaweed.running()
    assert seaweed.client().get_object(Bucket=bucket, Key="k")["Body"].read() == b"first"
    with pytest.raises((BotoCoreError, ClientError)):
        other.client(retries={"max_attempts": 1}, connect_timeout=1).list_buckets()


def test_seaweed_given_data_dir_is_kept_and_reusable(tmp_path: Path) -> None:
    data = tmp_path / "weed-data"
    with start_seaweedfs(data_dir=str(data), buckets=["keep"]) as srv:
        srv.client().put_object(Bucket="keep", Key="a/b", Body=b"persisted")
        first_url = srv.endpoint_url
    assert not srv.running()
    assert (data / "server.log").is_file()
    with start_seaweedfs(data_dir=str(data)) as again:
        assert again.endpoint_url != first_url or not srv.running()
        body = again.client().get_object(Bucket="keep", Key="a/b")["Body"].read()
        assert body == b"persisted"


def test_start_failure_reports_log_and_cleans_up(monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path) -> None:
    fake = tmp_path / "weed"
    fake.write_text("#!/bin/sh\necho 'fake weed: cannot start' >&2\nexit 3\n")
    fake.chmod(0o755)
    monkeypatch.setattr(local, "weed_binary", lambda: str(fake))
    live = set(local._LIVE)
    with pytest.raises(LocalS3Error, match="cannot start") as info:
        start_seaweedfs(timeout=10)
    assert "exited (code 3)" in str(info.value)
    own_dir = str(info.value).split("end of ", 1)[1].split(":\n", 1)[0]
    assert not os.path.exists(os.path.dirname(own_dir))  # the temp data dir it made is gone
    with pytest.raises(LocalS3Error, match="cannot start"):
        start_seaweedfs(data_dir=str(tmp_path / "kept"), timeout=10)
    assert (tmp_path / "kept" / "server.log").is_file()  # a given data dir is kept
    assert local._LIVE == live


def test_start_timeout_stops_the_process(monkeypatch: pytest.MonkeyPatch,
                                          tmp_path: Path) -> None:
    fake = tmp_path / "weed"
    fake.write_text("#!/bin/sh\necho $$ > fake.pid; exec sleep 60\n")  # runs in the data dir
    fake.chmod(0o755)
    monkeypatch.setattr(local, "weed_binary", lambda: str(fake))
    live = set(local._LIVE)
    t0 = time.monotonic()
    with pytest.raises(LocalS3Error, match="not ready after"):
        start_seaweedfs(data_dir=str(tmp_path / "d"), timeout=1.5)
    assert time.monotonic() - t0 < 15
    assert local._LIVE == live
    pid = int((tmp_path / "d" / "fake.pid").read_text())
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"


def test_moto_server(moto_server: LocalS3, moto_bucket: str) -> None:
    assert moto_server.kind == "moto" and moto_server.running()
    assert {ip for ip, _ in _listening(moto_server.pid)} == {"127.0.0.1"}
    client = moto_server.client()
    client.put_object(Bucket=moto_bucket, Key="k", Body=b"moto")
    assert client.get_object(Bucket=moto_bucket, Key="k")["Body"].read() == b"moto"
    moto_server.create_bucket(moto_bucket)  # idempotent
    anyone = LocalS3("moto", moto_server.endpoint_url, "any", "thing")
    assert anyone.client().get_object(Bucket=moto_bucket, Key="k")["Body"].read() == b"moto"


def test_moto_stop_is_idempotent() -> None:
    srv = start_moto()
    pid = srv.pid
    srv.stop()
    srv.stop()
    assert not srv.running() and srv.pid == pid
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"


def test_module_import_does_not_import_boto3() -> None:
    code = ("import sys, fasts3.local\n"
            "assert 'boto3' not in sys.modules and 'botocore' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60, cwd=REPO)


def test_cli_runs_until_interrupted(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "fasts3.local", "--bucket", "cli-bucket"],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True)
    try:
        lines = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "Ctrl-C" in line:
                break
        text = "".join(lines)
        assert "export AWS_ENDPOINT_URL_S3=http://127.0.0.1:" in text, text
        pid = int(text.split("(pid ", 1)[1].split(")", 1)[0])
        env = dict(line.split(" ", 1)[1].strip().split("=", 1) for line in lines
                   if line.startswith("export "))
        srv = LocalS3("seaweedfs", env["AWS_ENDPOINT_URL_S3"], env["AWS_ACCESS_KEY_ID"],
                      env["AWS_SECRET_ACCESS_KEY"])
        assert "cli-bucket" in {b["Name"] for b in srv.client().list_buckets()["Buckets"]}
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
