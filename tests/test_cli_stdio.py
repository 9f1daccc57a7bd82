"""``python -m fasts3`` in subprocesses: ``cp s3://b/k -`` (stdout), ``cp - s3://b/k`` (stdin,
streamed as a multipart upload), the put-option flags, and ``--json`` for usage errors,
interrupts and zip. Against SeaweedFS (moto for ACLs)."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
import zipfile

import pytest
from faultproxy import MiB, open_uploads

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"


def _env(server, tmp) -> dict[str, str]:
    v = server.session_vars()
    env = {k: val for k, val in os.environ.items() if not k.startswith("AWS_")}
    env.update(PYTHONPATH=REPO, TMPDIR=str(tmp), AWS_ACCESS_KEY_ID=v["aws_access_key_id"],
               AWS_SECRET_ACCESS_KEY=v["aws_secret_access_key"],
               AWS_DEFAULT_REGION=v["region_name"], AWS_ENDPOINT_URL_S3=server.endpoint_url,
               FASTS3_PROCESSES="2", FASTS3_PART_SIZE="5MiB",
               FASTS3_MULTIPART_THRESHOLD="5MiB")
    return env


@pytest.fixture
def env(seaweed, tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    return _env(seaweed, tmp)


def fasts3(*args: str, env: dict[str, str], stdin: bytes | None = None,
           **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fasts3", *args], input=stdin,
                          capture_output=True, env=env, timeout=120, **kw)


def _popen(*args: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "fasts3", *args], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)


def _wait_for(check, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _exists(client, bucket: str, key: str) -> bool:
    return bool(client.list_objects_v2(Bucket=bucket, Prefix=key).get("Contents"))


# -- stdout ---------------------------------------------------------------------------------
def test_object_to_stdout(seaweed, bucket, env):
    client = seaweed.client()
    data = os.urandom(21 * MiB + 3)
    client.put_object(Bucket=bucket, Key="big.bin", Body=data)
    client.put_object(Bucket=bucket, Key="empty", Body=b"")
    r = fasts3("cp", f"s3://{bucket}/big.bin", "-", env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout == data
    assert b"download: s3://" in r.stderr
    r = fasts3("cp", f"s3://{bucket}/big.bin", "-", "--json", env=env)
    assert r.returncode == 0 and r.stdout == data  # nothing but the bytes on stdout
    record = json.loads(r.stderr.decode().strip().splitlines()[-1])
    assert record == {"op": "download", "source": f"s3://{bucket}/big.bin", "dest": "-",
                      "ok": True, "size": len(data)}
    r = fasts3("cp", f"s3://{bucket}/big.bin", "-", "--dry-run", env=env)
    assert r.returncode == 0 and r.stdout == b""
    assert r.stderr.decode() == f"(dry run) download: s3://{bucket}/big.bin -> -\n"
    r = fasts3("cp", f"s3://{bucket}/empty", "-", "-q", env=env)
    assert r.returncode == 0 and r.stdout == b"" and r.stderr == b""
    assert os.listdir(env["TMPDIR"]) == []  # no temp file or directory left


def test_missing_object_to_stdout(seaweed, bucket, env):
    r = fasts3("cp", f"s3://{bucket}/nope", "-", env=env)
    assert r.returncode == 1 and r.stdout == b""
    assert b"NoSuchKey" in r.stderr
    r = fasts3("--json", "cp", f"s3://{bucket}/nope", "-", env=env)
    assert r.returncode == 1 and r.stdout == b""
    record = json.loads(r.stderr.decode().strip().splitlines()[-1])
    assert record["ok"] is False and record["code"] == "NoSuchKey"
    assert record["source"] == f"s3://{bucket}/nope"


def test_stdout_closed_early(seaweed, bucket, env):
    client = seaweed.client()
    client.put_object(Bucket=bucket, Key="big.bin", Body=os.urandom(30 * MiB))
    proc = _popen("cp", f"s3://{bucket}/big.bin", "-", env=env)
    assert proc.stdout is not None
    assert len(proc.stdout.read(10)) == 10  # `| head -c 10`
    proc.stdout.close()
    proc.wait(timeout=60)
    assert proc.returncode == 141
    assert os.listdir(env["TMPDIR"]) == []


# -- stdin ----------------------------------------------------------------------------------
def test_stdin_uploads_as_it_arrives(seaweed, bucket, env):
    client = seaweed.client()
    first, rest = os.urandom(12 * MiB), os.urandom(11 * MiB + 7)
    proc = _popen("cp", "-", f"s3://{bucket}/stream.bin", "--json", env=env)
    assert proc.stdin is not None
    proc.stdin.write(first)
    proc.stdin.flush()
    # two full parts were read: the multipart upload is under way while stdin is still open
    _wait_for(lambda: open_uploads(client, bucket), "an upload started from stdin")
    assert not _exists(client, bucket, "stream.bin")
    proc.stdin.write(rest)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert json.loads(out) == {"op": "upload", "source": "-",
                               "dest": f"s3://{bucket}/stream.bin", "ok": True,
                               "size": len(first) + len(rest)}
    obj = client.get_object(Bucket=bucket, Key="stream.bin")
    assert obj["Body"].read() == first + rest
    assert obj["ETag"].strip('"').endswith("-5")  # 5 parts of 5 MiB
    assert open_uploads(client, bucket) == []
    assert os.listdir(env["TMPDIR"]) == []


def test_small_stdin_and_put_flags(seaweed, bucket, env):
    client = seaweed.client()
    r = fasts3("cp", "-", f"s3://{bucket}/notes/a.txt.gz", "--cache-control", "no-cache",
               "--content-encoding", "gzip", "--content-disposition", "inline",
               env=env, stdin=b"hello\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode() == f"upload: - -> s3://{bucket}/notes/a.txt.gz\n"
    head = client.head_object(Bucket=bucket, Key="notes/a.txt.gz")
    assert (head["CacheControl"], head["ContentEncoding"], head["ContentDisposition"]) == \
        ("no-cache", "gzip", "inline")
    assert client.get_object(Bucket=bucket, Key="notes/a.txt.gz")["Body"].read() == b"hello\n"
    r = fasts3("cp", "-", f"s3://{bucket}/dry.txt", "--dry-run", env=env, stdin=b"x")
    assert r.returncode == 0 and r.stdout.decode() == \
        f"(dry run) upload: - -> s3://{bucket}/dry.txt\n"
    assert not _exists(client, bucket, "dry.txt")
    r = fasts3("cp", "-", f"s3://{bucket}/notes/a.txt.gz", "-n", env=env, stdin=b"other")
    assert r.returncode == 0 and b"skip (exists)" in r.stdout
    assert client.get_object(Bucket=bucket, Key="notes/a.txt.gz")["Body"].read() == b"hello\n"


@pytest.mark.parametrize("sig, code, text", [(signal.SIGTERM, 143, "Terminated"),
                                             (signal.SIGINT, 130, "Interrupted")])
def test_interrupted_stdin_upload_is_aborted(seaweed, bucket, env, sig, code, text):
    client = seaweed.client()
    proc = _popen("--json", "cp", "-", f"s3://{bucket}/cut.bin", env=env)
    assert proc.stdin is not None
    proc.stdin.write(os.urandom(16 * MiB))
    proc.stdin.flush()
    _wait_for(lambda: open_uploads(client, bucket), "an upload started from stdin")
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    record = json.loads(out.decode().strip().splitlines()[-1])
    assert record["ok"] is False and record["code"] == text
    assert open_uploads(client, bucket) == []
    assert not _exists(client, bucket, "cut.bin")
    assert os.listdir(env["TMPDIR"]) == []


def test_acl_flag_on_moto(moto_server, moto_bucket, tmp_path):
    env = _env(moto_server, tmp_path)
    client = moto_server.client()
    src = tmp_path / "f.txt"
    src.write_text("x")
    r = fasts3("cp", "-", f"s3://{moto_bucket}/pub.txt", "--acl", "public-read", env=env,
               stdin=b"x")
    assert r.returncode == 0, r.stderr
    r = fasts3("cp", str(src), f"s3://{moto_bucket}/file-pub.txt", "--acl", "public-read",
               env=env)
    assert r.returncode == 0, r.stderr
    r = fasts3("cp", str(src), f"s3://{moto_bucket}/private.txt", env=env)
    assert r.returncode == 0, r.stderr
    for key, public in (("pub.txt", True), ("file-pub.txt", True), ("private.txt", False)):
        grants = client.get_object_acl(Bucket=moto_bucket, Key=key)["Grants"]
        assert any(g["Grantee"].get("URI") == ALL_USERS for g in grants) == public, key


def test_put_flags_on_cp_and_sync_uploads(seaweed, bucket, env, tmp_path):
    client = seaweed.client()
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "index.html").write_text("<p>hi</p>")
    (tmp_path / "one.css").write_text("p{}")
    flags = ["--cache-control", "max-age=600", "--content-disposition", "inline"]
    r = fasts3("sync", str(tmp_path / "site"), f"s3://{bucket}/site", *flags, env=env)
    assert r.returncode == 0, r.stderr
    r = fasts3("cp", str(tmp_path / "one.css"), f"s3://{bucket}/one.css", *flags, env=env)
    assert r.returncode == 0, r.stderr
    for key in ("site/index.html", "one.css"):
        head = client.head_object(Bucket=bucket, Key=key)
        assert (head["CacheControl"], head["ContentDisposition"]) == ("max-age=600", "inline")
        assert "ContentEncoding" not in head


# -- usage errors and --json ----------------------------------------------------------------
@pytest.mark.parametrize("argv", [
    ["--json", "cp", "-", "-"],
    ["cp", "--json", "-", "./local"],
    ["cp", "s3://b/k", "-", "-r", "--json"],
    ["cp", "s3://b/*.csv", "-", "--json"],
    ["cp", "s3://b/k", "-", "--cache-control", "x", "--json"],  # a download
    ["cp", "s3://b/k", "s3://b/k2", "--acl", "private", "--json"],  # a server-side copy
    ["cp", "--bogus-option", "--json", "a", "b"],  # argparse's own errors
    ["cp", "-", "s3://b/k", "--acl", "everyone", "--json"],
    ["ls", "--acl", "private", "--json"],
    ["--json"],
    ["--json", "bench"],
    ["zip", "get", "s3://b/a.zip", "m", "-", "--json"],
])
def test_usage_errors_in_json_mode(env, argv):
    r = fasts3(*argv, env=env)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert r.stderr == b""
    (line,) = r.stdout.decode().splitlines()  # exactly one JSON object
    record = json.loads(line)
    assert record["ok"] is False and record["code"] == "UsageError" and record["error"]
    assert record["command"].startswith("fasts3")


def test_usage_errors_in_text_mode(env):
    r = fasts3("cp", "--bogus-option", "a", "b", env=env)
    assert r.returncode == 2 and r.stdout == b""
    assert r.stderr.startswith(b"usage: fasts3") and b"unrecognized arguments" in r.stderr
    r = fasts3("cp", env=env)
    assert r.returncode == 2 and r.stdout == b""
    assert r.stderr.startswith(b"usage: fasts3 cp") and b"arguments are required" in r.stderr
    r = fasts3("cp", "-", "-", env=env)
    assert r.returncode == 2 and b"fasts3 cp: error:" in r.stderr


def test_zip_commands_in_json(seaweed, bucket, env, tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("a/one.txt", "one")
        z.writestr("a/two.txt", "two" * 100)
    seaweed.client().put_object(Bucket=bucket, Key="a.zip", Body=buf.getvalue())
    r = fasts3("zip", "ls", f"s3://{bucket}/a.zip", "--json", env=env)
    assert r.returncode == 0, r.stderr
    records = [json.loads(x) for x in r.stdout.decode().splitlines()]
    assert [(x["name"], x["size"], x["method"]) for x in records] == \
        [("a/one.txt", 3, "deflate"), ("a/two.txt", 300, "deflate")]
    out = tmp_path / "out"
    r = fasts3("--json", "zip", "get", f"s3://{bucket}/a.zip", "a/t*", str(out), env=env)
    assert r.returncode == 0, r.stderr
    (record,) = [json.loads(x) for x in r.stdout.decode().splitlines()]
    assert record == {"op": "extract", "source": f"s3://{bucket}/a.zip",
                      "dest": str(out / "a" / "two.txt"), "ok": True}
    assert (out / "a" / "two.txt").read_text() == "two" * 100
    r = fasts3("--json", "zip", "get", f"s3://{bucket}/a.zip", "nope*", str(out), env=env)
    assert r.returncode == 1
    assert json.loads(r.stdout)["code"] == "NoSuchMember"


def test_cat_errors_in_json_go_to_stderr(seaweed, bucket, env):
    seaweed.client().put_object(Bucket=bucket, Key="a.txt", Body=b"abc")
    r = fasts3("--json", "cat", f"s3://{bucket}/a.txt", f"s3://{bucket}/nope", env=env)
    assert r.returncode == 1
    assert r.stdout == b"abc"  # the bytes, and nothing else
    record = json.loads(r.stderr.decode().strip().splitlines()[-1])
    assert record["ok"] is False and record["code"] == "NoSuchKey"
