"""Full disks, for real: the temp root on a 2 MiB tmpfs (needs root to mount; skipped
otherwise). A download or staged upload that cannot fit fails with a clear S3Error
``NoSpaceLeft`` -- checked up front where the size is known, or when ENOSPC strikes mid-way --
and leaves no partial file behind."""

from __future__ import annotations

import io
import os
import subprocess
import threading
import time

import pytest
from faultproxy import FaultProxy, MiB, partial_files, quick_config

from fasts3 import S3
from fasts3.errors import S3Error


@pytest.fixture
def tiny_disk(request, tmp_path):
    """A directory on a small tmpfs: 2 MiB, or ``size`` given by indirect parametrization."""
    size = getattr(request, "param", "2m")
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs",
                        str(mnt)], check=True, capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as e:
        pytest.skip(f"cannot mount a tmpfs here: {e}")
    try:
        yield str(mnt)
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True, timeout=30)


def _no_space(e: S3Error) -> None:
    assert e.code == "NoSpaceLeft", e
    assert "space" in str(e).lower()


@pytest.mark.parametrize("size", [4 * MiB, 11 * MiB])
def test_download_larger_than_free_space_fails_up_front(seaweed, bucket, s3_kwargs, tiny_disk,
                                                        size):
    """The first response reveals the size; the download stops there (single- and
    multi-part objects alike)."""
    with S3(s3root=f"s3://{bucket}/d", config=quick_config(), **s3_kwargs) as up:
        up.put("big", os.urandom(size))
        up.put("small", b"fits")
    with S3(s3root=f"s3://{bucket}/d", tmproot=tiny_disk, config=quick_config(),
            **s3_kwargs) as s3:
        with pytest.raises(S3Error) as ei:
            s3.get("big")
        _no_space(ei.value)
        assert "Not enough free space" in str(ei.value)  # caught before writing
        assert ei.value.url == f"s3://{bucket}/d/big"
        assert os.listdir(s3.tmpdir) == []
        assert s3.get("small").blob == b"fits"  # the client is still fine


@pytest.mark.parametrize("tiny_disk", ["4m"], indirect=True)
def test_enospc_mid_download_leaves_nothing(seaweed, bucket, s3_kwargs, tiny_disk):
    """The space check passes, the first MiB is written, then the disk fills up (another
    program writes): the download fails with NoSpaceLeft and its file is removed."""
    blob = os.urandom(3584 * 1024)  # one request; the proxy sends half, then stalls
    with S3(s3root=f"s3://{bucket}/m", config=quick_config(), **s3_kwargs) as up:
        up.put("x", blob)
    with FaultProxy(s3_kwargs["endpoint_url"]) as proxy:
        proxy.set_faults(match=lambda r: r.method == "GET", stall_body=1.0, budget=1,
                         stall_seconds=3.0)
        via = dict(s3_kwargs, endpoint_url=proxy.endpoint_url)
        with S3(s3root=f"s3://{bucket}/m", tmproot=tiny_disk,
                config=quick_config(read_timeout=30), **via) as s3:
            filled, done = threading.Event(), threading.Event()

            def fill_disk_when_half_written():
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline and not done.is_set():
                    parts = [os.path.join(s3.tmpdir, n) for n in partial_files(s3.tmpdir)]
                    if parts and os.stat(parts[0]).st_blocks * 512 >= MiB:
                        break
                    time.sleep(0.01)
                if done.is_set():
                    return
                with open(os.path.join(tiny_disk, "filler"), "wb") as f:
                    try:
                        while True:
                            f.write(b"\0" * 65536)
                            f.flush()
                    except OSError:
                        pass
                filled.set()

            t = threading.Thread(target=fill_disk_when_half_written, daemon=True)
            t.start()
            try:
                with pytest.raises(S3Error) as ei:
                    s3.get("x")
            finally:
                done.set()
                t.join()
            assert filled.is_set()
            _no_space(ei.value)
            assert "No space left on device" in str(ei.value)  # ENOSPC, not the check
            assert os.listdir(s3.tmpdir) == []


def test_many_downloads_overflowing_the_disk(seaweed, bucket, s3_kwargs, tiny_disk):
    """Each object fits, together they do not: a clear error, and whatever stays in the temp
    dir is a complete download."""
    blobs = {f"o{i}": os.urandom(700 * 1024) for i in range(4)}
    with S3(s3root=f"s3://{bucket}/o", config=quick_config(), **s3_kwargs) as up:
        up.put_many(list(blobs.items()))
    with S3(s3root=f"s3://{bucket}/o", tmproot=tiny_disk, config=quick_config(),
            **s3_kwargs) as s3:
        with pytest.raises(S3Error) as ei:
            s3.get_many(list(blobs))
        _no_space(ei.value)
        assert partial_files(s3.tmpdir) == []
        for name in os.listdir(s3.tmpdir):
            with open(os.path.join(s3.tmpdir, name), "rb") as f:
                assert f.read() in blobs.values()


def test_staging_bytes_larger_than_free_space(seaweed, bucket, s3_kwargs, tiny_disk):
    with S3(s3root=f"s3://{bucket}/p", tmproot=tiny_disk,
            config=quick_config(inline_put_limit=MiB), **s3_kwargs) as s3:
        with pytest.raises(S3Error) as ei:
            s3.put_many([("a", b"fine"), ("b", os.urandom(3 * MiB))])
        _no_space(ei.value)
        assert ei.value.url == f"s3://{bucket}/p/b"
        assert os.listdir(s3.tmpdir) == []
    listed = seaweed.client().list_objects_v2(Bucket=bucket, Prefix="p/")
    assert listed.get("KeyCount", 0) == 0  # checked before anything was sent


def test_staging_a_file_object_hits_enospc(seaweed, bucket, s3_kwargs, tiny_disk):
    """A file object's size is unknown until it is copied: ENOSPC while staging it."""
    with S3(s3root=f"s3://{bucket}/f", tmproot=tiny_disk, config=quick_config(),
            **s3_kwargs) as s3:
        with pytest.raises(S3Error) as ei:
            s3.put("big", io.BytesIO(os.urandom(3 * MiB)))
        _no_space(ei.value)
        assert os.listdir(s3.tmpdir) == []
        assert s3.put("small", io.BytesIO(b"ok")).endswith("/f/small")
