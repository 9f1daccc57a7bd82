"""S3.get_files([(key, local_path)]): downloads straight to chosen paths (atomic rename into
place, parents made, files kept after the client closes), ranges, missing keys, failures that
leave the old file alone. Against SeaweedFS (through the fault proxy where a fault is
needed)."""

from __future__ import annotations

import os
import stat

import pytest
from faultproxy import MiB, quick_config

from fasts3 import S3, S3GetObject
from fasts3.errors import S3AccessDenied, S3InvalidObject, S3NotFound, S3URLError


@pytest.fixture
def client(seaweed):
    return seaweed.client()


def _listing(root) -> list[str]:
    return sorted(os.path.relpath(os.path.join(d, n), root)
                  for d, _, names in os.walk(root) for n in names)


def test_downloads_to_the_given_paths(client, bucket, s3_kwargs, tmp_path, monkeypatch):
    big = os.urandom(13 * MiB + 5)  # fetched in ranged parts
    client.put_object(Bucket=bucket, Key="d/a.txt", Body=b"alpha")
    client.put_object(Bucket=bucket, Key="d/big.bin", Body=big)
    monkeypatch.chdir(tmp_path)
    old = os.umask(0o027)
    try:
        with S3(s3root=f"s3://{bucket}/d", config=quick_config(), **s3_kwargs) as s3:
            objs = s3.get_files([("a.txt", "out/x/y/a.txt"), ("big.bin", tmp_path / "big"),
                                 ("a.txt", "out/copy.txt")])
            tmpdir = s3.tmpdir
    finally:
        os.umask(old)
    assert [o.url for o in objs] == [f"s3://{bucket}/d/{k}" for k in ("a.txt", "big.bin",
                                                                      "a.txt")]
    assert [o.path for o in objs] == [str(tmp_path / "out/x/y/a.txt"), str(tmp_path / "big"),
                                      str(tmp_path / "out/copy.txt")]
    assert objs[0].key == "a.txt" and objs[0].size == 5 and objs[1].size == len(big)
    assert objs[0].content_type and objs[0].has_info
    assert not os.path.exists(tmpdir)  # the client is closed; the user's files stay
    assert (tmp_path / "out/x/y/a.txt").read_bytes() == b"alpha"
    assert (tmp_path / "big").read_bytes() == big
    assert (tmp_path / "out/copy.txt").read_bytes() == b"alpha"
    assert stat.S_IMODE(os.stat(tmp_path / "big").st_mode) == 0o640  # from the umask
    assert _listing(tmp_path) == ["big", "out/copy.txt", "out/x/y/a.txt"]  # nothing else


def test_ranges_and_missing_keys(client, bucket, s3_kwargs, tmp_path):
    client.put_object(Bucket=bucket, Key="r.bin", Body=bytes(range(100)))
    with S3(s3root=f"s3://{bucket}", **s3_kwargs) as s3:
        objs = s3.get_files([(S3GetObject("r.bin", 10, 5), tmp_path / "mid"),
                             (S3GetObject("r.bin", length=-3), tmp_path / "tail"),
                             ("nope.bin", tmp_path / "nope")], return_missing=True)
        assert (tmp_path / "mid").read_bytes() == bytes(range(10, 15))
        assert objs[0].range_info == (100, 10, 5)
        assert (tmp_path / "tail").read_bytes() == bytes([97, 98, 99])
        assert not objs[2].exists and objs[2].path is None
        assert not (tmp_path / "nope").exists()
        with pytest.raises(S3NotFound) as info:
            s3.get_files([("r.bin", tmp_path / "again"), ("nope.bin", tmp_path / "nope")])
        assert info.value.url == f"s3://{bucket}/nope.bin"
        assert not (tmp_path / "nope").exists()


def test_failed_download_leaves_the_old_file(via, proxy, client, bucket, tmp_path):
    client.put_object(Bucket=bucket, Key="new.bin", Body=os.urandom(MiB))
    dest = tmp_path / "data.bin"
    dest.write_bytes(b"old content")
    proxy.custom_error = (403, "AccessDenied", "Access Denied")
    proxy.set_faults(match=lambda r: r.method == "GET" and "new.bin" in r.path, error=1.0)
    with S3(s3root=f"s3://{bucket}", config=quick_config(), **via) as s3:
        with pytest.raises(S3AccessDenied):
            s3.get_files([("new.bin", dest)])
    assert dest.read_bytes() == b"old content"
    assert _listing(tmp_path) == ["data.bin"]  # no partial file beside it


def test_completed_downloads_are_placed_when_another_fails(via, proxy, client, bucket,
                                                           tmp_path):
    client.put_object(Bucket=bucket, Key="ok.txt", Body=b"fine")
    proxy.latency_match = lambda r: "gone" in r.path  # its 404 comes after ok.txt is in
    proxy.latency = 1.0
    with S3(s3root=f"s3://{bucket}", **via) as s3:
        with pytest.raises(S3NotFound):
            s3.get_files([("ok.txt", tmp_path / "ok.txt"), ("gone.txt", tmp_path / "gone")])
    assert (tmp_path / "ok.txt").read_bytes() == b"fine"  # whole, under its name
    assert _listing(tmp_path) == ["ok.txt"]


@pytest.mark.parametrize("pairs, exc", [
    (["a.txt"], S3InvalidObject),
    ([("a.txt", None)], S3InvalidObject),
    ([("a.txt", 3)], S3InvalidObject),
    ([("a.txt", "x", "y")], S3InvalidObject),
    ([("s3://other/a.txt", "x")], S3URLError),
])
def test_bad_pairs_send_nothing(via, proxy, bucket, tmp_path, pairs, exc):
    with S3(s3root=f"s3://{bucket}", **via) as s3:
        with pytest.raises(exc):
            s3.get_files(pairs)
        with pytest.raises(S3InvalidObject):
            s3.get_files([("a.txt", tmp_path / "x"), ("a.txt", tmp_path)])  # a directory
    assert proxy.stats.requests == 0
    assert os.listdir(tmp_path) == []
