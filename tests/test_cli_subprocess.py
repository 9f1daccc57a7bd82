"""``python -m fasts3`` as a separate process: the embedded server, a round trip through it
with only environment variables (as the server prints them), exit codes, bench pass-through."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["PYTHONPATH"] = REPO + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.update(extra)
    return env


def fasts3(*args: str, env: dict[str, str] | None = None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fasts3", *args], capture_output=True,
                          text=True, env=env or _env(), timeout=120, **kw)


@pytest.fixture
def server():
    """``fasts3 server --kind moto --json --bucket demo`` running in its own process."""
    proc = subprocess.Popen([sys.executable, "-m", "fasts3", "server", "--kind", "moto",
                             "--json", "--bucket", "demo"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env())
    try:
        line = proc.stdout.readline()
        assert line, proc.stderr.read()
        yield proc, json.loads(line)
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_server_and_round_trip_through_env(server, tmp_path):
    proc, info = server
    assert info["endpoint_url"].startswith("http://127.0.0.1:")
    assert info["buckets"] == ["demo"]
    env = _env(**info["env"])
    assert env["AWS_ENDPOINT_URL_S3"] == info["endpoint_url"]
    src = tmp_path / "hello.txt"
    src.write_text("hello from a subprocess\n")
    r = fasts3("cp", str(src), "s3://demo/greetings/", env=env)
    assert r.returncode == 0, r.stderr
    r = fasts3("ls", "-r", "s3://demo", "--json", env=env)
    assert [json.loads(x)["name"] for x in r.stdout.splitlines()] == ["greetings/hello.txt"]
    r = fasts3("cat", "s3://demo/greetings/hello.txt", env=env)
    assert r.stdout == "hello from a subprocess\n"
    r = fasts3("rm", "s3://demo/greetings/hello.txt", "-q", env=env)
    assert r.returncode == 0 and r.stdout == ""
    proc.terminate()
    assert proc.wait(timeout=30) == 0


def test_server_text_output_has_exports():
    proc = subprocess.Popen([sys.executable, "-m", "fasts3", "server", "--kind", "moto"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_env())
    try:
        lines = []
        while True:
            line = proc.stdout.readline()
            assert line, proc.stderr.read()
            lines.append(line)
            if line.startswith("Ctrl-C"):
                break
        text = "".join(lines)
        assert "export AWS_ENDPOINT_URL_S3=http://127.0.0.1:" in text
        assert "export AWS_ACCESS_KEY_ID=" in text and "secret key:" in text
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0


def test_exit_codes_and_help():
    assert fasts3("cp", "a", "b").returncode == 2
    r = fasts3("--version")
    assert r.returncode == 0 and r.stdout.startswith("fasts3 ")
    r = fasts3("info", "s3://no-such-bucket-anywhere/key",
               env=_env(AWS_ENDPOINT_URL_S3="http://127.0.0.1:9", AWS_ACCESS_KEY_ID="a",
                        AWS_SECRET_ACCESS_KEY="b", FASTS3_MAX_ATTEMPTS="1"))
    assert r.returncode == 1 and "s3://no-such-bucket-anywhere/key" in r.stderr


def test_bench_passes_arguments_through():
    r = fasts3("bench", "--", "--help")
    assert r.returncode == 0 and "usage: python -m bench" in r.stdout
