"""Connections resolved without botocore (``fasts3.plain_env``): the answer must be the one
botocore gives, the fast path must step aside whenever only botocore can tell, transfers on
it are signed correctly (SeaweedFS checks SigV4), and the first worker is launched before
the connection is resolved and never outlives a context whose connection failed."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import psutil
import pytest

from fasts3 import S3, S3NoCredentials, plain_env
from fasts3.engine.sigv4 import Credentials
from fasts3.session import Connection

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KEYS = {"aws_access_key_id": "AKIDEXAMPLE", "aws_secret_access_key": "secret/example"}
_AWS_VARS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
             "AWS_SECURITY_TOKEN", "AWS_CREDENTIAL_EXPIRATION", "AWS_DEFAULT_REGION",
             "AWS_REGION", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL",
             "AWS_ENDPOINT_URL_S3", "AWS_CA_BUNDLE")


@pytest.fixture
def aws_env(tmp_path, monkeypatch):
    """A clean AWS environment: no variables, config and credentials files in tmp_path
    (absent until a test writes them). Returns the config file's path."""
    for name in _AWS_VARS:
        monkeypatch.delenv(name, raising=False)
    config = tmp_path / "config"
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    return config


def _both(monkeypatch, **kwargs) -> tuple[Connection, Connection]:
    """The connection on the fast path, and the same one resolved by botocore."""
    fast = Connection(**kwargs)
    with monkeypatch.context() as m:
        m.setattr(plain_env, "resolve", lambda *a, **k: None)
        slow = Connection(**kwargs)
    return fast, slow


SCENARIOS = {
    "explicit keys, endpoint": (
        {}, "", dict(endpoint_url="http://127.0.0.1:9000", session_vars=KEYS)),
    "explicit keys win over the environment's": (
        {"AWS_ACCESS_KEY_ID": "ENVKEY", "AWS_SECRET_ACCESS_KEY": "envsecret",
         "AWS_SESSION_TOKEN": "envtoken"}, "",
        dict(endpoint_url="http://127.0.0.1:9000", session_vars=KEYS)),
    "environment keys and token, region variable": (
        {"AWS_ACCESS_KEY_ID": "ENVKEY", "AWS_SECRET_ACCESS_KEY": "envsecret",
         "AWS_SECURITY_TOKEN": "legacy-token", "AWS_SESSION_TOKEN": "token",
         "AWS_DEFAULT_REGION": "eu-west-3"}, "", {}),
    "environment session token": (
        {"AWS_ACCESS_KEY_ID": "ENVKEY", "AWS_SECRET_ACCESS_KEY": "envsecret",
         "AWS_SESSION_TOKEN": "token", "AWS_REGION": "eu-west-1"}, "", {}),
    "region of the default profile": (
        {"AWS_ACCESS_KEY_ID": "ENVKEY", "AWS_SECRET_ACCESS_KEY": "envsecret"},
        "[default]\nregion = ap-south-1\noutput = json\n", {}),
    "explicit region wins over the profile's": (
        {"AWS_ACCESS_KEY_ID": "ENVKEY", "AWS_SECRET_ACCESS_KEY": "envsecret"},
        "[default]\nregion = ap-south-1\n", dict(region="us-west-2")),
    "AWS_PROFILE names a profile; the environment's keys still come first": (
        {"AWS_ACCESS_KEY_ID": "ENVKEY", "AWS_SECRET_ACCESS_KEY": "envsecret",
         "AWS_PROFILE": "lab"},
        "[profile lab]\nregion = ca-central-1\naws_access_key_id = PROFKEY\n"
        "aws_secret_access_key = profsecret\n", {}),
    "anonymous": ({}, "", dict(anonymous=True, region="eu-north-1")),
    "the config file's path names a variable": (
        {"AWS_ACCESS_KEY_ID": "ENVKEY", "AWS_SECRET_ACCESS_KEY": "envsecret",
         "AWS_CONFIG_FILE": "$FASTS3_TEST_AWS_DIR/config"},
        "[default]\nregion = sa-east-1\n", {}),
    "the credentials file holds only keys": (
        {}, "[default]\nregion = eu-west-2\n", dict(session_vars=KEYS), "credentials",
        "[default]\naws_access_key_id = FILEKEY\naws_secret_access_key = filesecret\n"),
}


def _setup(aws_env, monkeypatch, env: dict, config: str, *files: str) -> None:
    """Set ``env`` (``$FASTS3_TEST_AWS_DIR``: the files' directory), write the config file
    and (``files`` = name, text) the credentials file."""
    monkeypatch.setenv("FASTS3_TEST_AWS_DIR", str(aws_env.parent))
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    if config:
        aws_env.write_text(config)
    if files:
        (aws_env.parent / files[0]).write_text(files[1])


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_fast_path_gives_botocores_answer(aws_env, monkeypatch, name):
    env, config, kwargs, *files = SCENARIOS[name]
    _setup(aws_env, monkeypatch, env, config, *files)
    assert plain_env.resolve(kwargs.get("session_vars"), None, None, None,
                             kwargs.get("anonymous", False), kwargs.get("region")) is not None
    fast, slow = _both(monkeypatch, **kwargs)
    assert fast.endpoint == slow.endpoint
    assert fast.credentials() == slow.credentials()
    assert fast.anonymous == slow.anonymous


DECLINED = {
    "a profile argument": ({}, "", dict(session_vars=KEYS, profile="lab")),
    "a role": ({}, "", dict(session_vars=KEYS, role="arn:aws:iam::1:role/x")),
    "client_params": ({}, "", dict(session_vars=KEYS, client_params={"verify": False})),
    "other session_vars": ({}, "", dict(session_vars=dict(KEYS, botocore_session=None))),
    "half a key pair": ({}, "", dict(session_vars={"aws_access_key_id": "AKID"})),
    "only AWS_ACCESS_KEY_ID": ({"AWS_ACCESS_KEY_ID": "ENVKEY"}, "", {}),
    "no keys (the chain: files, SSO, instance roles)": ({}, "", {}),
    "refreshable environment keys": (
        {"AWS_ACCESS_KEY_ID": "K", "AWS_SECRET_ACCESS_KEY": "S",
         "AWS_CREDENTIAL_EXPIRATION": "2030-01-01T00:00:00Z"}, "", {}),
    "the profile sets an endpoint": (
        {}, "[default]\nendpoint_url = http://127.0.0.1:1\n", dict(session_vars=KEYS)),
    "the profile sets S3 options": (
        {}, "[default]\ns3 =\n  addressing_style = virtual\n", dict(session_vars=KEYS)),
    "a named profile that does not exist": (
        {"AWS_PROFILE": "missing"}, "[default]\nregion = us-east-1\n",
        dict(session_vars=KEYS)),
    "an unreadable config file": ({}, "[default\nregion", dict(session_vars=KEYS)),
    "a malformed nested value in another profile": (
        {}, "[default]\nregion = us-east-1\n[profile other]\ns3 =\n  garbage\n",
        dict(session_vars=KEYS)),
    "default defined twice": (
        {}, "[default]\noutput = json\n[profile default]\nregion = eu-central-1\n",
        dict(session_vars=KEYS)),
    "AWS_PROFILE=default names a profile that does not exist": (
        {"AWS_PROFILE": "default"}, "", dict(session_vars=KEYS)),
    "an empty region variable": ({"AWS_DEFAULT_REGION": ""}, "", dict(session_vars=KEYS)),
    "an empty profile variable": ({"AWS_PROFILE": ""}, "", dict(session_vars=KEYS)),
    "the credentials file sets the region": (
        {}, "", dict(session_vars=KEYS), "credentials", "[default]\nregion = eu-west-1\n"),
    "the credentials file sets an endpoint": (
        {}, "", dict(session_vars=KEYS), "credentials",
        "[default]\nendpoint_url = http://127.0.0.1:1\n"),
}


@pytest.mark.parametrize("name", list(DECLINED))
def test_fast_path_steps_aside_when_only_botocore_can_tell(aws_env, monkeypatch, name):
    env, config, kwargs, *files = DECLINED[name]
    _setup(aws_env, monkeypatch, env, config, *files)
    assert plain_env.resolve(kwargs.get("session_vars"), kwargs.get("client_params"),
                             kwargs.get("role"), kwargs.get("profile"), False,
                             kwargs.get("region")) is None


def test_static_credentials_from_the_fast_path(aws_env, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "ENVKEY")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "envsecret")
    c = Connection(endpoint_url="http://127.0.0.1:9000")
    assert c.credentials() == Credentials("ENVKEY", "envsecret", None)
    assert c.endpoint.region == "us-east-1" and c.endpoint.path_style


_PROGRAM = """
import json, sys
from fasts3 import S3, S3AccessDenied
out = {}
try:
    with S3(s3root=sys.argv[1], endpoint_url=sys.argv[2], progress=False) as s3:
        s3.put("plain/k", b"no botocore")
        out["blob"] = s3.get("plain/k").blob.decode()
except S3AccessDenied as e:
    out["error"] = type(e).__name__
out["botocore"] = "botocore" in sys.modules
print(json.dumps(out))
"""


def _run(seaweed, bucket, secret: str) -> dict:
    env = dict(os.environ, PYTHONPATH=REPO, AWS_ACCESS_KEY_ID=seaweed.access_key,
               AWS_SECRET_ACCESS_KEY=secret, AWS_CONFIG_FILE=os.devnull + "-none")
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE",
                 "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        env.pop(name, None)
    r = subprocess.run([sys.executable, "-c", _PROGRAM, f"s3://{bucket}",
                        seaweed.endpoint_url], env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_transfers_on_the_fast_path_are_signed_and_never_import_botocore(seaweed, bucket):
    good = _run(seaweed, bucket, seaweed.secret_key)
    assert good == {"blob": "no botocore", "botocore": False}
    bad = _run(seaweed, bucket, seaweed.secret_key + "x")  # SeaweedFS checks the signature
    assert bad == {"error": "S3AccessDenied", "botocore": False}


def _worker_processes() -> list[psutil.Process]:
    out = []
    for p in psutil.Process().children(recursive=True):
        try:
            if any("fasts3.engine.worker" in part for part in p.cmdline()):
                out.append(p)
        except psutil.Error:
            continue
    return out


def test_worker_launched_early_is_gone_when_the_connection_fails(seaweed, bucket, aws_env):
    before = {p.pid for p in _worker_processes()}
    with S3(s3root=f"s3://{bucket}", endpoint_url=seaweed.endpoint_url, progress=False) as s3:
        with pytest.raises(S3NoCredentials):
            s3.get("k")
        with pytest.raises(S3NoCredentials):  # the launched worker waits for a second try
            s3.get("k")
        assert len([p for p in _worker_processes() if p.pid not in before]) <= 1
    left = [p for p in _worker_processes() if p.pid not in before]
    psutil.wait_procs(left, timeout=10)
    assert not [p for p in left if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
