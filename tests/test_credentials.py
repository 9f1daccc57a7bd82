"""Credentials and profiles as users have them (issue 11), against SeaweedFS (SigV4 enforced):
no credentials at all, half a key pair, and a profile whose config names the endpoint
(``endpoint_url``, or a ``services`` section). API and CLI."""

from __future__ import annotations

import pytest

from fasts3 import S3, S3AccessDenied, S3NoCredentials
from fasts3.cli import main
from fasts3.cli.common import EXIT_ERROR


def _ls(bucket: str, capsys, *extra: str) -> tuple[int, str, str]:
    code = main(["ls", f"s3://{bucket}/", *extra])
    out, err = capsys.readouterr()
    return code, out, err


def test_no_credentials_anywhere_is_a_typed_error_with_the_way_out(seaweed, bucket, capsys):
    with S3(s3root=f"s3://{bucket}", endpoint_url=seaweed.endpoint_url, progress=False) as s3:
        with pytest.raises(S3NoCredentials) as ei:
            s3.get("k")
    e = ei.value
    assert isinstance(e, S3AccessDenied) and e.code == "NoCredentials"
    assert "anonymous=True" in str(e) and "--no-sign-request" in str(e)
    code, _, err = _ls(bucket, capsys, "--endpoint-url", seaweed.endpoint_url)
    assert code == EXIT_ERROR and "NoCredentials" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_only_the_access_key_id_is_a_typed_error(seaweed, bucket, monkeypatch, capsys):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", seaweed.access_key)
    with S3(s3root=f"s3://{bucket}", endpoint_url=seaweed.endpoint_url, progress=False) as s3:
        with pytest.raises(S3NoCredentials) as ei:
            s3.list_paths()
    assert ei.value.code == "PartialCredentials"
    assert "AWS_SECRET_ACCESS_KEY" in str(ei.value)
    code, _, err = _ls(bucket, capsys, "--endpoint-url", seaweed.endpoint_url)
    assert code == EXIT_ERROR and "PartialCredentials" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_anonymous_still_sends_unsigned_requests(seaweed, bucket):
    with S3(s3root=f"s3://{bucket}", endpoint_url=seaweed.endpoint_url, anonymous=True,
            progress=False) as s3:
        with pytest.raises(S3AccessDenied) as ei:  # SeaweedFS refuses unsigned requests
            s3.get("k")
    assert not isinstance(ei.value, S3NoCredentials)


def _profile_config(tmp_path, seaweed, style: str) -> str:
    keys = (f"aws_access_key_id = {seaweed.access_key}\n"
            f"aws_secret_access_key = {seaweed.secret_key}\n")
    if style == "endpoint_url":
        text = f"[profile lab]\nendpoint_url = {seaweed.endpoint_url}\n{keys}"
    else:
        text = (f"[profile lab]\nservices = lab-services\n{keys}\n"
                f"[services lab-services]\ns3 =\n  endpoint_url = {seaweed.endpoint_url}\n")
    path = tmp_path / "config"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("style", ["endpoint_url", "services"])
def test_profile_endpoint_is_a_custom_endpoint(seaweed, bucket, tmp_path, monkeypatch,
                                               capsys, style):
    monkeypatch.setenv("AWS_CONFIG_FILE", _profile_config(tmp_path, seaweed, style))
    with S3(s3root=f"s3://{bucket}/p", profile="lab", progress=False) as s3:
        s3.put("hello.txt", b"from a profile")
        assert s3.get("hello.txt").blob == b"from a profile"
        assert s3._engine.connection.endpoint.path_style
    code, out, err = _ls(bucket, capsys, "--profile", "lab", "-r")
    assert code == 0, err
    assert "hello.txt" in out
