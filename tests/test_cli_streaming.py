"""``fasts3 cp -r`` and ``fasts3 sync`` from S3 start downloading while the listing is still
running: the second listing page is held at the proxy until files have landed."""

from __future__ import annotations

import io
import json
import os
import random
import sys
import time
from collections.abc import Callable

import pytest

from fasts3 import S3
from fasts3.cli import main


def _seed(s3root: str, s3_kwargs: dict, n: int) -> dict[str, bytes]:
    rnd = random.Random(21)
    data = {f"d/{i:05d}": rnd.randbytes(rnd.randrange(1, 3000)) for i in range(n)}
    with S3(s3root=s3root, **s3_kwargs) as s3:
        s3.put_many(list(data.items()))
    return data


@pytest.fixture
def cli_env(seaweed, monkeypatch) -> None:
    """The command's credentials, from the environment."""
    v = seaweed.session_vars()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", v["aws_access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", v["aws_secret_access_key"])
    monkeypatch.setenv("AWS_DEFAULT_REGION", v["region_name"])


def _hold_second_page(proxy, progress: Callable[[], int], enough: int) -> list[int]:
    """Hold the request for the second listing page at ``proxy`` until ``progress()`` (read
    on the proxy's thread) reaches ``enough``, 60 s at most. Returns the list that then gets
    ``progress()`` at the release."""
    released: list[int] = []

    def hold(rec) -> bool:
        if rec.method == "GET" and "continuation-token" in rec.query and not released:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and progress() < enough:
                time.sleep(0.01)
            released.append(progress())
        return False

    proxy.latency = 0.001
    proxy.latency_match = hold
    return released


@pytest.mark.parametrize("command", ["cp", "sync"])
def test_downloads_start_before_the_listing_ends(seaweed, bucket, proxy, tmp_path, cli_env,
                                                 command):
    data = _seed(f"s3://{bucket}/r", dict(endpoint_url=seaweed.endpoint_url,
                                           session_vars=seaweed.session_vars(), progress=False),
                 2100)
    dest = tmp_path / "out"
    landed = _hold_second_page(
        proxy, lambda: len(os.listdir(dest)) if dest.is_dir() else 0, 50)
    args = ["-r"] if command == "cp" else []
    code = main([command, *args, f"s3://{bucket}/r/d", str(dest) + "/", "--endpoint-url",
                 proxy.endpoint_url, "-q"])
    assert code == 0
    assert landed and landed[0] >= 50, "no file landed before the second page was answered"
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
def test_ls_prints_pages_as_they_arrive(seaweed, bucket, proxy, monkeypatch, cli_env,
                                        recursive):
    """2,100 keys, three pages; the second is held until the first page's lines are out, so
    ``ls`` holds one page in memory, not the listing (one level: the same, with a prefix)."""
    root = f"s3://{bucket}/r"
    data = _seed(root, dict(endpoint_url=seaweed.endpoint_url,
                            session_vars=seaweed.session_vars(), progress=False), 2100)
    with S3(s3root=root, endpoint_url=seaweed.endpoint_url,
            session_vars=seaweed.session_vars(), progress=False) as s3:
        s3.put("d/sub/x", b"x")  # a prefix among the objects of a one-level listing
    out = _Lines()
    monkeypatch.setattr(sys, "stdout", out)
    printed_while_held = _hold_second_page(proxy, lambda: out.count, 1000)
    flags = ["-r"] if recursive else []
    code = main(["ls", *flags, f"{root}/d", "--endpoint-url", proxy.endpoint_url, "--json"])
    assert code == 0
    assert printed_while_held and printed_while_held[0] >= 1000, printed_while_held
    names = [json.loads(line)["name"] for line in out.getvalue().splitlines()]
    want = sorted([k[len("d/"):] for k in data] + ["sub/x" if recursive else "sub/"])
    assert names == want


def test_rm_deletes_pages_as_they_arrive(seaweed, bucket, proxy, cli_env):
    """``rm -r`` of 2,100 keys: the second listing page is held until the first page's keys
    were deleted (one DeleteObjects request), so ``rm`` holds one page, not the listing."""
    root = f"s3://{bucket}/r"
    _seed(root, dict(endpoint_url=seaweed.endpoint_url, session_vars=seaweed.session_vars(),
                     progress=False), 2100)
    deletes_while_held = _hold_second_page(
        proxy, lambda: sum(r.method == "POST" and "delete" in r.query
                           for r in list(proxy.records)), 1)
    code = main(["rm", "-r", f"{root}/d", "--endpoint-url", proxy.endpoint_url, "-q"])
    assert code == 0
    assert deletes_while_held and deletes_while_held[0] >= 1, deletes_while_held
    with S3(s3root=root, endpoint_url=seaweed.endpoint_url,
            session_vars=seaweed.session_vars(), progress=False) as s3:
        assert s3.list_recursive(["d"]) == []
