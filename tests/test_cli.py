"""The ``fasts3`` command, run in-process with ``fasts3.cli.main`` against SeaweedFS/moto:
cp (all directions, -r, wildcards, filters), ls, info, cat, rm, exit codes, --json, --help."""

from __future__ import annotations

import json
import os

import pytest

from fasts3.cli import main
from fasts3.cli.common import EXIT_ERROR, EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, glob_regex


@pytest.fixture
def cli(seaweed, monkeypatch, capsys):
    """``cli(*args) -> (exit code, stdout, stderr)`` with the environment pointing at
    SeaweedFS (credentials through the standard chain, as a user would)."""
    for k, v in seaweed.env().items():
        monkeypatch.setenv(k, v)

    def run(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def jlines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture
def tree(tmp_path):
    src = tmp_path / "src"
    (src / "sub" / "deep").mkdir(parents=True)
    (src / "a.txt").write_text("alpha")
    (src / "b.csv").write_text("1,2\n")
    (src / "sub" / "c.txt").write_text("charlie")
    (src / "sub" / "deep" / "d.log").write_text("delta")
    return src


def test_cp_recursive_roundtrip(cli, bucket, tree, tmp_path):
    code, out, _ = cli("cp", "-r", str(tree), f"s3://{bucket}/data/", "--json")
    assert code == EXIT_OK
    recs = jlines(out)
    assert {r["dest"] for r in recs} == {f"s3://{bucket}/data/{k}" for k in
                                         ("a.txt", "b.csv", "sub/c.txt", "sub/deep/d.log")}
    assert all(r["ok"] and r["op"] == "upload" for r in recs)

    dest = tmp_path / "down"
    code, out, err = cli("cp", "-r", f"s3://{bucket}/data", str(dest))
    assert code == EXIT_OK, err
    assert (dest / "sub" / "deep" / "d.log").read_text() == "delta"
    assert sorted(os.listdir(dest)) == ["a.txt", "b.csv", "sub"]  # no staging dir left
    assert "downloaded 4 objects" in err

    code, out, _ = cli("ls", "-r", f"s3://{bucket}/data", "--json")
    by_name = {r["name"]: r for r in jlines(out)}
    assert set(by_name) == {"a.txt", "b.csv", "sub/c.txt", "sub/deep/d.log"}
    st = os.stat(dest / "a.txt")
    assert by_name["a.txt"]["size"] == st.st_size == 5
    assert oct(st.st_mode & 0o777) == oct(0o666 & ~_umask())
    # the file's mtime is the object's Last-Modified
    import calendar
    import time
    lm = calendar.timegm(time.strptime(by_name["a.txt"]["last_modified"], "%Y-%m-%dT%H:%M:%SZ"))
    assert int(st.st_mtime) == lm


def _umask() -> int:
    m = os.umask(0o022)
    os.umask(m)
    return m


def test_cp_single_objects_and_files(cli, bucket, tree, tmp_path):
    assert cli("cp", str(tree / "a.txt"), f"s3://{bucket}/x/renamed.txt")[0] == EXIT_OK
    assert cli("cp", str(tree / "a.txt"), str(tree / "b.csv"), f"s3://{bucket}/y/")[0] == 0
    code, out, _ = cli("ls", f"s3://{bucket}/y/", "--json")
    assert [r["name"] for r in jlines(out)] == ["a.txt", "b.csv"]
    # to a file name, to an existing directory, to a new directory (trailing /)
    assert cli("cp", f"s3://{bucket}/x/renamed.txt", str(tmp_path / "f.txt"))[0] == 0
    assert (tmp_path / "f.txt").read_text() == "alpha"
    assert cli("cp", f"s3://{bucket}/x/renamed.txt", str(tmp_path))[0] == 0
    assert (tmp_path / "renamed.txt").read_text() == "alpha"
    assert cli("cp", f"s3://{bucket}/x/renamed.txt", str(tmp_path / "new") + "/")[0] == 0
    assert (tmp_path / "new" / "renamed.txt").read_text() == "alpha"
    # S3 -> S3, server side
    assert cli("cp", f"s3://{bucket}/x/renamed.txt", f"s3://{bucket}/z/copy.txt")[0] == 0
    code, out, _ = cli("cat", f"s3://{bucket}/z/copy.txt")
    assert out == "alpha"


def test_cp_wildcards_and_filters(cli, bucket, tree, tmp_path):
    cli("cp", "-r", str(tree), f"s3://{bucket}/d")
    dest = tmp_path / "w"
    code, out, _ = cli("cp", f"s3://{bucket}/d/*.txt", str(dest), "--json")
    assert code == EXIT_OK
    assert sorted(os.listdir(dest)) == ["a.txt"]  # * stays within one level
    code, out, _ = cli("cp", f"s3://{bucket}/d/**/*.txt", str(tmp_path / "w2"))
    assert sorted(_files(tmp_path / "w2")) == ["a.txt", "sub/c.txt"]
    code, out, _ = cli("cp", "-r", f"s3://{bucket}/d", str(tmp_path / "w3"),
                       "--exclude", "*", "--include", "sub/*", "--exclude", "*.log")
    assert sorted(_files(tmp_path / "w3")) == ["sub/c.txt"]
    code, out, _ = cli("cp", f"s3://{bucket}/d/nothing-*", str(tmp_path / "w4"))
    assert code == EXIT_ERROR
    # local wildcards (as a shell that did not expand them would pass)
    code, out, _ = cli("cp", str(tree / "*.csv"), f"s3://{bucket}/g/", "--json")
    assert [r["dest"] for r in jlines(out)] == [f"s3://{bucket}/g/b.csv"]


def _files(root) -> list[str]:
    return [os.path.relpath(os.path.join(d, f), root).replace(os.sep, "/")
            for d, _, fs in os.walk(root) for f in fs]


def test_cp_dry_run_and_no_overwrite(cli, bucket, tree, tmp_path):
    code, out, _ = cli("cp", "-r", str(tree), f"s3://{bucket}/dr", "--dry-run", "--json")
    assert code == EXIT_OK and all(r["dry_run"] for r in jlines(out))
    assert "no such object" in cli("ls", f"s3://{bucket}/dr")[2]
    cli("cp", str(tree / "a.txt"), f"s3://{bucket}/n/a.txt")
    (tmp_path / "a.txt").write_text("local")
    code, out, _ = cli("cp", "-n", f"s3://{bucket}/n/a.txt", str(tmp_path), "--json")
    assert code == EXIT_OK and jlines(out)[0]["skipped"] is True
    assert (tmp_path / "a.txt").read_text() == "local"
    code, out, _ = cli("cp", "-n", str(tmp_path / "a.txt"), f"s3://{bucket}/n/a.txt", "--json")
    assert jlines(out)[0]["skipped"] is True
    assert cli("cat", f"s3://{bucket}/n/a.txt")[1] == "alpha"


def test_partial_failure_exit_code(cli, bucket, tree, tmp_path):
    cli("cp", str(tree / "a.txt"), f"s3://{bucket}/p/a.txt")
    code, out, _ = cli("cp", f"s3://{bucket}/p/a.txt", f"s3://{bucket}/p/missing.txt",
                       str(tmp_path / "out") + "/", "--json")
    assert code == EXIT_PARTIAL
    recs = {r["source"]: r for r in jlines(out)}
    assert recs[f"s3://{bucket}/p/a.txt"]["ok"] is True
    bad = recs[f"s3://{bucket}/p/missing.txt"]
    assert bad["ok"] is False and bad["code"] == "NoSuchKey"
    assert os.listdir(tmp_path / "out") == ["a.txt"]
    code, _, err = cli("cp", f"s3://{bucket}/p/missing.txt", str(tmp_path / "m"))
    assert code == EXIT_ERROR and "NoSuchKey" in err
    assert not (tmp_path / "m").exists()


def test_unsafe_keys_never_escape_dest(moto_server, moto_bucket, monkeypatch, capsys,
                                       tmp_path):
    for k, v in moto_server.env().items():
        monkeypatch.setenv(k, v)
    c = moto_server.client()
    for key in ("top/ok.txt", "top/../../escape.txt", "top/a//b.txt"):
        c.put_object(Bucket=moto_bucket, Key=key, Body=b"x")
    dest = tmp_path / "inner" / "dest"
    code = main(["cp", "-r", f"s3://{moto_bucket}/top", str(dest), "--json"])
    recs = jlines(capsys.readouterr().out)
    assert code == EXIT_PARTIAL
    assert sorted(r["source"].split("/top/", 1)[1] for r in recs if not r["ok"]) == [
        "../../escape.txt", "a//b.txt"]
    assert _files(tmp_path) == ["inner/dest/ok.txt"]


def test_ls_levels_totals_and_buckets(cli, bucket, tree):
    cli("cp", "-r", str(tree), f"s3://{bucket}/l")
    code, out, _ = cli("ls", f"s3://{bucket}/l")
    lines = out.splitlines()
    assert lines[-1] == "Total: 2 objects, 1 prefix, 9 B (9 bytes)"
    assert lines[0].endswith("a.txt") and lines[2].split() == ["DIR", "sub/"]
    code, out, _ = cli("ls", "-r", "--bytes", f"s3://{bucket}/l/")
    assert out.splitlines()[-1].startswith("Total: 4 objects")
    code, out, _ = cli("ls", f"s3://{bucket}/l/a.txt", "--json")  # an object lists itself
    assert [r["name"] for r in jlines(out)] == ["a.txt"]
    code, out, _ = cli("ls", "--json")
    assert bucket in {r["name"] for r in jlines(out)}
    code, _, err = cli("ls", f"s3://{bucket}/nothing-here")
    assert code == EXIT_ERROR and "no such object or prefix" in err


def test_info_and_cat(cli, bucket, tree):
    cli("cp", str(tree / "a.txt"), f"s3://{bucket}/i/a.txt")
    code, out, _ = cli("info", f"s3://{bucket}/i/a.txt", "--json")
    (rec,) = jlines(out)
    assert rec["size"] == 5 and rec["content_type"] == "text/plain"
    assert rec["etag"] == "2c1743a391305fbf367df8e4f069f9f9"  # md5("alpha")
    code, out, _ = cli("info", f"s3://{bucket}/i/a.txt")
    assert out.splitlines()[0] == f"s3://{bucket}/i/a.txt"
    assert "size:" in out and "5 (5 B)" in out
    code, out, err = cli("info", f"s3://{bucket}/i/a.txt", f"s3://{bucket}/i/none")
    assert code == EXIT_PARTIAL and "none" in err
    assert cli("cat", f"s3://{bucket}/i/a.txt", "--offset", "1", "--length", "3")[1] == "lph"
    assert cli("cat", f"s3://{bucket}/i/a.txt", "--length", "-2")[1] == "ha"


def test_rm(cli, bucket, tree):
    cli("cp", "-r", str(tree), f"s3://{bucket}/r")
    code, out, _ = cli("rm", "-r", f"s3://{bucket}/r/sub", "--dry-run", "--json")
    assert code == EXIT_OK and len(jlines(out)) == 2
    assert cli("ls", "-r", "--json", f"s3://{bucket}/r")[1].count("\n") == 4
    code, out, _ = cli("rm", f"s3://{bucket}/r/*.txt", "--json")
    assert [r["source"] for r in jlines(out)] == [f"s3://{bucket}/r/a.txt"]
    code, out, _ = cli("rm", "-r", f"s3://{bucket}/r/", "--exclude", "*.log")
    assert code == EXIT_OK
    code, out, _ = cli("ls", "-r", "--json", f"s3://{bucket}/r")
    assert [r["name"] for r in jlines(out)] == ["sub/deep/d.log"]
    assert cli("rm", "-r", f"s3://{bucket}/empty-prefix")[0] == EXIT_OK
    assert cli("rm", f"s3://{bucket}/r/")[0] == EXIT_USAGE  # a prefix needs -r


@pytest.mark.parametrize("args", [
    ["cp", "a", "b"],  # local to local
    ["cp", "s3://only-one"],
    ["cp", "--version-id", "v", "-r", "s3://b/k", "d"],
    ["sync", "a", "b"],
    ["ls", "not-a-url"],
    ["nosuchcommand"],
    [],
])
def test_usage_errors(cli, args):
    assert cli(*args)[0] == EXIT_USAGE


def test_help_for_every_command(cli):
    code, out, _ = cli("--help")
    assert code == 0 and "exit codes:" in out
    for cmd in ("cp", "sync", "ls", "info", "cat", "rm", "server", "bench"):
        code, out, _ = cli(cmd, "--help")
        assert code == 0 and "examples:" in out and f"fasts3 {cmd}" in out, cmd


def test_global_options_after_the_command(cli, seaweed, bucket, monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3")
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    code, out, _ = cli("ls", f"s3://{bucket}", "--endpoint-url", seaweed.endpoint_url, "--json")
    assert code == EXIT_OK
    code, out, _ = cli("--endpoint-url", seaweed.endpoint_url, "ls", f"s3://{bucket}")
    assert code == EXIT_OK


def test_glob_regex():
    assert glob_regex("a/*.txt").match("a/x.txt")
    assert not glob_regex("a/*.txt").match("a/b/x.txt")
    assert glob_regex("a/**/x.txt").match("a/x.txt")
    assert glob_regex("a/**/x.txt").match("a/b/c/x.txt")
    assert glob_regex("f[0-9]?").match("f1z") and not glob_regex("f[!0-9]").match("f1")
    assert glob_regex("x[").match("x[")  # an unclosed class is literal


def test_zip_commands_are_wired(cli, bucket, tmp_path):
    pytest.importorskip("fasts3.zip")
    import zipfile

    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("one.txt", "1")
        zf.writestr("dir/two.txt", "22")
    cli("cp", str(archive), f"s3://{bucket}/z/a.zip")
    code, out, _ = cli("zip", "ls", f"s3://{bucket}/z/a.zip", "-1", "-q")
    assert code == EXIT_OK and out.splitlines() == ["one.txt", "dir/two.txt"]


def test_versions_anonymous_and_upload_options_on_moto(moto_server, moto_bucket, monkeypatch,
                                                       capsys, tmp_path):
    for k, v in moto_server.env().items():
        monkeypatch.setenv(k, v)
    c = moto_server.client()
    c.put_bucket_versioning(Bucket=moto_bucket,
                            VersioningConfiguration={"Status": "Enabled"})
    first = c.put_object(Bucket=moto_bucket, Key="v", Body=b"one")["VersionId"]
    c.put_object(Bucket=moto_bucket, Key="v", Body=b"two")

    def run(*args: str) -> tuple[int, str]:
        code = main(list(args))
        return code, capsys.readouterr().out

    assert run("cat", f"s3://{moto_bucket}/v", "--version-id", first) == (0, "one")
    code, out = run("info", f"s3://{moto_bucket}/v", "--version-id", first, "--json")
    assert jlines(out)[0]["version_id"] == first
    assert run("cp", f"s3://{moto_bucket}/v", str(tmp_path / "old"), "--version-id", first)[0] == 0
    assert (tmp_path / "old").read_text() == "one"

    src = tmp_path / "up.txt"
    src.write_text("cold")
    assert run("cp", str(src), f"s3://{moto_bucket}/cold.txt", "--storage-class",
               "STANDARD_IA", "--sse", "AES256")[0] == 0
    head = c.head_object(Bucket=moto_bucket, Key="cold.txt")
    assert head["StorageClass"] == "STANDARD_IA" and head["ServerSideEncryption"] == "AES256"

    c.put_object(Bucket=moto_bucket, Key="public", Body=b"open", ACL="public-read")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    assert run("cat", f"s3://{moto_bucket}/public", "--no-sign-request") == (0, "open")
    assert run("cat", f"s3://{moto_bucket}/v", "--no-sign-request")[0] == EXIT_ERROR
