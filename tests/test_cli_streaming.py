"""``fasts3 cp -r`` and ``fasts3 sync`` from S3 start downloading while the listing is still
running: the second listing page is held at the proxy until files have landed."""

from __future__ import annotations

import io
import json
import os
import random
import sys
import time

import pytest

from fasts3 import S3
from fasts3.cli import main


def _seed(s3root: str, s3_kwargs: dict, n: int) -> dict[str, bytes]:
    rnd = random.Random(21)
    data = {f"d/{i:05d}": rnd.randbytes(rnd.randrange(1, 3000)) for i in range(n)}
    with S3(s3root=s3root, **s3_kwargs) as s3:
        s3.put_many(list(data.items()))
    return data


@pytest.mark.parametrize("command", ["cp", "sync"])
def test_downloads_start_before_the_listing_ends(seaweed, bucket, proxy, tmp_path, monkeypatch,
                                                 command):
    data = _seed(f"s3://{bucket}/r", dict(endpoint_url=seaweed.endpoint_url,
                                           session_vars=seaweed.session_vars(), progress=False),
                 2100)
    v = seaweed.session_vars()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", v["aws_access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", v["aws_secret_access_key"])
    monkeypatch.setenv("AWS_DEFAULT_REGION", v["region_name"])
    dest = tmp_path / "out"
    landed_while_held: list[int] = []

    def hold_second_page(rec) -> bool:
        if rec.method == "GET" and "continuation-token" in rec.query:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:  # until files land (or give up)
                n = len(os.listdir(dest)) if dest.is_dir() else 0
                if n >= 50:
                    landed_while_held.append(n)
                    break
                time.sleep(0.01)
        return False

    proxy.latency = 0.001
    proxy.latency_match = hold_second_page
    args = ["-r"] if command == "cp" else []
    code = main([command, *args, f"s3://{bucket}/r/d", str(dest) + "/", "--endpoint-url",
                 proxy.endpoint_url, "-q"])
    assert code == 0
    assert landed_while_held, "no file landed before the second listing page was answered"
    got = {f"d/{n}": (dest / n).read_bytes() for n in os.listdir(dest)}
    assert got == {k: v for k, v in data.items()}


class _Lines(io.StringIO):
    """A stdout that counts the lines written so far (read from the proxy's thread)."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def write(self, s: str) -> int:
        self.count += s.count("\n")
        return super().write(s)


@pytest.mark.parametrize("recursive", [True, False])
def test_ls_prints_pages_as_they_arrive(seaweed, bucket, proxy, monkeypatch, recursive):
    """2,100 keys, three pages; the second is held until the first page's lines are out, so
    ``ls`` holds one page in memory, not the listing (one level: the same, with a prefix)."""
    root = f"s3://{bucket}/r"
    data = _seed(root, dict(endpoint_url=seaweed.endpoint_url,
                            session_vars=seaweed.session_vars(), progress=False), 2100)
    with S3(s3root=root, endpoint_url=seaweed.endpoint_url,
            session_vars=seaweed.session_vars(), progress=False) as s3:
        s3.put("d/sub/x", b"x")  # a prefix among the objects of a one-level listing
    v = seaweed.session_vars()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", v["aws_access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", v["aws_secret_access_key"])
    monkeypatch.setenv("AWS_DEFAULT_REGION", v["region_name"])
    out = _Lines()
    monkeypatch.setattr(sys, "stdout", out)
    printed_while_held: list[int] = []

    def hold_second_page(rec) -> bool:
        if rec.method == "GET" and "continuation-token" in rec.query and \
                not printed_while_held:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and out.count < 1000:
                time.sleep(0.01)
            printed_while_held.append(out.count)
        return False

    proxy.latency = 0.001
    proxy.latency_match = hold_second_page
    flags = ["-r"] if recursive else []
    code = main(["ls", *flags, f"{root}/d", "--endpoint-url", proxy.endpoint_url, "--json"])
    assert code == 0
    assert printed_while_held and printed_while_held[0] >= 1000, printed_while_held
    names = [json.loads(line)["name"] for line in out.getvalue().splitlines()]
    want = sorted([k[len("d/"):] for k in data] + ["sub/x" if recursive else "sub/"])
    assert names == want


def test_rm_deletes_pages_as_they_arrive(seaweed, bucket, proxy, monkeypatch):
    """``rm -r`` of 2,100 keys: the second listing page is held until the first page's keys
    were deleted (one DeleteObjects request), so ``rm`` holds one page, not the listing."""
    root = f"s3://{bucket}/r"
    _seed(root, dict(endpoint_url=seaweed.endpoint_url, session_vars=seaweed.session_vars(),
                     progress=False), 2100)
    v = seaweed.session_vars()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", v["aws_access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", v["aws_secret_access_key"])
    monkeypatch.setenv("AWS_DEFAULT_REGION", v["region_name"])
    deletes_while_held: list[int] = []

    def deletes() -> int:
        return sum(r.method == "POST" and "delete" in r.query for r in list(proxy.records))

    def hold_second_page(rec) -> bool:
        if rec.method == "GET" and "continuation-token" in rec.query and \
                not deletes_while_held:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not deletes():
                time.sleep(0.01)
            deletes_while_held.append(deletes())
        return False

    proxy.latency = 0.001
    proxy.latency_match = hold_second_page
    code = main(["rm", "-r", f"{root}/d", "--endpoint-url", proxy.endpoint_url, "-q"])
    assert code == 0
    assert deletes_while_held and deletes_while_held[0] >= 1, deletes_while_held
    with S3(s3root=root, endpoint_url=seaweed.endpoint_url,
            session_vars=seaweed.session_vars(), progress=False) as s3:
        assert s3.list_recursive(["d"]) == []
