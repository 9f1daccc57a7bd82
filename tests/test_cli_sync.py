"""``fasts3 sync`` in every direction, and the sync planner (fasts3.sync)."""

from __future__ import annotations

import json
import os
import time

import pytest

from fasts3.cli import main
from fasts3.cli.common import EXIT_OK, EXIT_USAGE
from fasts3.sync import Entry, etag_matches_file, multipart_etag, plan_sync

MiB = 1 << 20


@pytest.fixture
def cli(seaweed, monkeypatch, capsys):
    for k, v in seaweed.env().items():
        monkeypatch.setenv(k, v)

    def run(*args: str) -> tuple[int, list[dict], str]:
        code = main([*args, "--json"])
        out, err = capsys.readouterr()
        return code, [json.loads(x) for x in out.splitlines() if x.strip()], err

    return run


def _write(root, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def _ops(recs: list[dict]) -> list[tuple[str, str]]:
    return sorted((r["op"], (r.get("dest") or r["source"]).rsplit("/", 1)[-1]) for r in recs)


def test_sync_up_down_and_delete(cli, bucket, tmp_path):
    src = tmp_path / "src"
    _write(src, {"a.txt": "aa", "dir/b.txt": "bbb", "dir/c.tmp": "c"})
    url = f"s3://{bucket}/mirror"
    code, recs, _ = cli("sync", str(src), url)
    assert code == EXIT_OK and _ops(recs) == [("upload", "a.txt"), ("upload", "b.txt"),
                                              ("upload", "c.tmp")]
    assert cli("sync", str(src), url)[1] == []  # unchanged: nothing to do

    (src / "a.txt").write_text("changed size")
    (src / "dir" / "c.tmp").unlink()
    code, recs, _ = cli("sync", str(src), url, "--delete", "--dry-run")
    assert _ops(recs) == [("delete", "c.tmp"), ("upload", "a.txt")]
    assert all(r["dry_run"] for r in recs)
    code, recs, _ = cli("sync", str(src), url, "--delete")
    assert _ops(recs) == [("delete", "c.tmp"), ("upload", "a.txt")]

    down = tmp_path / "down"
    code, recs, _ = cli("sync", url, str(down))
    assert _ops(recs) == [("download", "a.txt"), ("download", "b.txt")]
    assert (down / "a.txt").read_text() == "changed size"
    assert cli("sync", url, str(down))[1] == []  # mtimes were set from Last-Modified
    assert sorted(os.listdir(down)) == ["a.txt", "dir"]  # no staging dir left behind

    (down / "extra.txt").write_text("x")
    code, recs, _ = cli("sync", url, str(down), "--delete", "--exclude", "dir/*")
    assert _ops(recs) == [("delete", "extra.txt")]
    assert not (down / "extra.txt").exists() and (down / "dir" / "b.txt").exists()


def test_sync_checksum_and_size_only(cli, bucket, tmp_path):
    src = tmp_path / "src"
    _write(src, {"same.txt": "0123456789"})
    url = f"s3://{bucket}/ck"
    cli("sync", str(src), url)
    # same size, different bytes, and an old mtime: only --checksum notices
    (src / "same.txt").write_text("abcdefghij")
    old = time.time() - 86400
    os.utime(src / "same.txt", (old, old))
    assert cli("sync", str(src), url)[1] == []
    assert cli("sync", str(src), url, "--size-only")[1] == []
    code, recs, _ = cli("sync", str(src), url, "--checksum")
    assert _ops(recs) == [("upload", "same.txt")]
    assert cli("sync", str(src), url, "--checksum")[1] == []


def test_sync_s3_to_s3_and_usage(cli, bucket, tmp_path):
    src = tmp_path / "src"
    _write(src, {"x/1": "1", "x/2": "22"})
    cli("sync", str(src), f"s3://{bucket}/one")
    code, recs, _ = cli("sync", f"s3://{bucket}/one", f"s3://{bucket}/two")
    assert code == EXIT_OK and _ops(recs) == [("copy", "1"), ("copy", "2")]
    assert cli("sync", f"s3://{bucket}/one", f"s3://{bucket}/two")[1] == []
    assert cli("sync", str(src / "x" / "1"), f"s3://{bucket}/f")[0] == EXIT_USAGE
    assert cli("sync", str(src), str(tmp_path / "other"))[0] == EXIT_USAGE


def test_plan_sync_rules():
    src = {"new": Entry(1, 100), "same": Entry(2, 100), "newer": Entry(2, 200.9),
           "size": Entry(3, 50)}
    dst = {"same": Entry(2, 100.5), "newer": Entry(2, 150), "size": Entry(4, 100),
           "gone": Entry(1, 1)}
    plan = plan_sync(src, dst, delete=True)
    assert plan.transfer == ["new", "newer", "size"]
    assert plan.delete == ["gone"] and plan.unchanged == 1
    assert plan_sync(src, dst, compare="size").transfer == ["new", "size"]
    with pytest.raises(ValueError):
        plan_sync(src, dst, compare="nope")


def test_multipart_etag_of_local_file(tmp_path):
    path = tmp_path / "f"
    data = os.urandom(11 * MiB)
    path.write_bytes(data)
    import hashlib

    assert etag_matches_file(hashlib.md5(data).hexdigest(), str(path), len(data))
    etag = multipart_etag(str(path), len(data), 5 * MiB)
    assert etag.endswith("-3")
    assert etag_matches_file(etag, str(path), len(data), part_sizes=(5 * MiB,))
    assert etag_matches_file(multipart_etag(str(path), len(data), 8 * MiB), str(path),
                             len(data))
    assert not etag_matches_file("0" * 32, str(path), len(data))
    assert not etag_matches_file(None, str(path), len(data))


def test_sync_delete_refuses_an_empty_source(cli, bucket, tmp_path):
    src = tmp_path / "src"
    _write(src, {"keep.txt": "k"})
    cli("sync", str(src), f"s3://{bucket}/kept")
    code, recs, _ = cli("sync", f"s3://{bucket}/typo", str(src), "--delete")
    assert code == 1 and recs[0]["code"] == "EmptySource"
    assert (src / "keep.txt").exists()
