"""fasts3.distributed: staging across a real Dask LocalCluster (2 worker processes) from the
embedded SeaweedFS server; a worker killed mid-run must not lose or corrupt anything."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import signal
import threading
import time

import pytest

distributed = pytest.importorskip("distributed")

from fasts3 import S3, TransferConfig  # noqa: E402
from fasts3.distributed import (  # noqa: E402
    Manifest,
    SourceObject,
    StagingError,
    plan_shards,
    stage,
)
from fasts3.distributed import _Tracker as Tracker  # noqa: E402
from fasts3.distributed.plan import STAGING_DIR, check_destinations  # noqa: E402
from fasts3.errors import S3URLError  # noqa: E402

MiB = 1 << 20
SMALL = TransferConfig(processes=1, requests_per_process=4, part_size=5 * MiB,
                       multipart_threshold=5 * MiB)


@pytest.fixture(scope="module")
def dask_client(seaweed):
    # The workers get the server's credentials in their environment (their own credential
    # chain, as on a real cluster); the tests below mostly pass them explicitly anyway.
    cluster = distributed.LocalCluster(processes=True, n_workers=2, threads_per_worker=1,
                                       dashboard_address=":0", silence_logs=50,
                                       env=seaweed.env())
    client = distributed.Client(cluster)
    client.wait_for_workers(2)
    yield client
    client.close()
    cluster.close()


def _payload(i: int, size: int) -> bytes:
    return hashlib.sha256(str(i).encode()).digest() * (size // 32) + b"x" * (size % 32)


def _upload(s3root: str, s3_kwargs: dict, objects: dict[str, bytes]) -> None:
    with S3(s3root=s3root, config=SMALL, **s3_kwargs) as s3:
        s3.put_many(list(objects.items()))


def _assert_staged(manifest: Manifest, dest: str, objects: dict[str, bytes],
                   base: str = "/root/") -> None:
    assert len(manifest) == len(objects)
    assert [e.status for e in manifest] == ["ok"] * len(objects)
    for e in manifest:
        rel = e.url.split(base, 1)[1]
        assert e.dest == os.path.join(dest, *rel.split("/"))
        with open(e.dest, "rb") as f:
            assert f.read() == objects[rel], rel
        assert e.size == len(objects[rel])
    assert not os.path.exists(os.path.join(dest, STAGING_DIR))
    leftovers = [n for _, _, files in os.walk(dest) for n in files if n.endswith(".part")]
    assert leftovers == []


# -- planning (no cluster) -----------------------------------------------------------------
def test_plan_shards_balances_bytes_and_keeps_every_object():
    sizes = [100 * MiB, 60 * MiB, 50 * MiB, 40 * MiB] + [MiB] * 40 + [0] * 10
    objs = [SourceObject(f"s3://b/k{i:03d}", f"k{i:03d}", s) for i, s in enumerate(sizes)]
    shards = plan_shards(objs, 4)
    assert len(shards) == 4
    got = sorted(o.url for s in shards for o in s.objects)
    assert got == sorted(o.url for o in objs)
    loads = [s.nbytes for s in shards]
    assert max(loads) <= sum(sizes) / 4 + 100 * MiB  # LPT bound: average + largest object
    assert min(loads) >= 40 * MiB
    assert len(plan_shards(objs[:3], 10)) == 3  # never an empty shard
    with pytest.raises(ValueError):
        plan_shards(objs, 0)


def test_destinations_are_checked_before_anything_runs(tmp_path):
    ok = [SourceObject("s3://b/p/a/b.txt", "a/b.txt", 1)]
    check_destinations(str(tmp_path), ok)
    with pytest.raises(S3URLError, match="both a file and a directory"):
        check_destinations(str(tmp_path), ok + [SourceObject("s3://b/p/a", "a", 1)])
    with pytest.raises(S3URLError):
        check_destinations(str(tmp_path), [SourceObject("s3://b/p/../x", "../x", 1)])
    with pytest.raises(S3URLError, match="reserved"):
        check_destinations(str(tmp_path), [SourceObject("s3://b/x", f"{STAGING_DIR}/x", 1)])
    check_destinations("s3://other/prefix", ok + [SourceObject("s3://b/p/a", "a", 1)])


def test_progress_counts_each_shard_once_across_attempts():
    t = Tracker(False, files=10, total_bytes=1000)
    t.on_event((0.0, [0, "first", 300, 3]))
    t.on_event((0.0, [0, "rerun", 100, 1]))  # a re-run of shard 0 on another worker
    t.on_event((0.0, [1, "a", 200, 2]))
    t.on_event((0.0, "garbage"))
    assert t.totals() == (500, 5)
    t.shard_done(0, [])
    assert t.totals() == (200, 2)


# -- staging on a LocalCluster ---------------------------------------------------------------
def test_stage_prefix_is_complete_and_byte_exact(dask_client, s3root, s3_kwargs, tmp_path,
                                                 caplog):
    objects = {f"a/{i:02d}.bin": _payload(i, 1000 + 4099 * i) for i in range(12)}
    objects.update({"top.txt": b"hello", "empty.txt": b"", "b/c/deep.json": b"{}",
                    "big/large.bin": _payload(99, 11 * MiB + 3)})
    _upload(s3root, s3_kwargs, objects)
    dest = str(tmp_path / "out")
    caplog.set_level("INFO", logger="fasts3.progress")
    kwargs = dict(s3_kwargs, progress="log")
    manifest = stage(s3root + "/", dest, dask_client, config=SMALL, shards=5, **kwargs)
    _assert_staged(manifest, dest, objects)
    assert [e.url for e in manifest] == sorted(e.url for e in manifest)  # listing order
    with S3(s3root=s3root, **s3_kwargs) as s3:
        etags = {o.url: o.etag for o in s3.list_recursive()}
    assert {e.url: e.checksum for e in manifest} == {u: f"etag:{t}" for u, t in etags.items()}
    workers = set(dask_client.scheduler_info()["workers"])
    assert {e.worker for e in manifest} <= workers
    assert {e.shard for e in manifest} == set(range(5))
    assert f"{len(objects)}/{len(objects)} files" in caplog.text


def test_stage_url_list_with_md5_and_missing(dask_client, s3root, s3_kwargs, tmp_path):
    objects = {f"d/{i}.bin": _payload(i, 7000 + i) for i in range(6)}
    _upload(s3root, s3_kwargs, objects)
    urls = [f"{s3root}/d/{i}.bin" for i in (3, 1, 5)] + [f"{s3root}/d/nope.bin"]
    dest = str(tmp_path / "urls")
    manifest = stage(urls, dest, dask_client, config=SMALL, checksum="md5", base=s3root,
                     strict=False, **s3_kwargs)
    assert [e.url for e in manifest] == urls  # input order
    assert [e.status for e in manifest] == ["ok", "ok", "ok", "missing"]
    for e in manifest.ok:
        data = objects[e.url.split("/root/", 1)[1]]
        assert e.checksum == "md5:" + hashlib.md5(data).hexdigest()
        with open(e.dest, "rb") as f:
            assert f.read() == data
    assert not os.path.exists(os.path.join(dest, "d", "nope.bin"))
    with pytest.raises(StagingError) as info:
        stage(urls, dest, dask_client, config=SMALL, base=s3root, **s3_kwargs)
    assert len(info.value.manifest.failed) == 1
    assert info.value.url == urls[-1]


def test_s3_destination_is_a_server_side_copy(dask_client, s3root, s3_kwargs, bucket):
    objects = {f"c/{i}.txt": f"copy {i}".encode() for i in range(4)}
    objects["c/big.bin"] = _payload(7, 6 * MiB)
    _upload(s3root, s3_kwargs, objects)
    dest = f"s3://{bucket}/copied"
    with pytest.raises(ValueError, match="md5"):
        stage(s3root + "/c", dest, dask_client, checksum="md5", **s3_kwargs)
    manifest = stage(s3root + "/c", dest, dask_client, config=SMALL, shards=2, **s3_kwargs)
    assert [e.status for e in manifest] == ["ok"] * len(objects)
    assert [e.dest for e in manifest] == [dest + "/" + e.url.split("/c/", 1)[1]
                                          for e in manifest]
    with S3(s3root=dest, **s3_kwargs) as s3:
        got = {o.key: o.blob for o in s3.get_all()}
        etags = {o.url: o.etag for o in s3.list_recursive()}
    assert got == {k[2:]: v for k, v in objects.items()}
    assert {e.dest: e.checksum for e in manifest} == {u: f"etag:{t}" for u, t in etags.items()}


def test_failed_shard_is_retried_by_dask(dask_client, seaweed, s3root, s3_kwargs, tmp_path):
    from faultproxy import FaultProxy

    objects = {f"r/{i}.bin": _payload(i, 3000 + i) for i in range(8)}
    _upload(s3root, s3_kwargs, objects)
    once = dataclasses.replace(SMALL, max_attempts=1)  # the engine gives up at once

    def object_get(rec) -> bool:
        return rec.method == "GET" and "list-type" not in rec.query and "/r/" in rec.path

    with FaultProxy(seaweed.endpoint_url) as proxy:
        kwargs = dict(s3_kwargs, endpoint_url=proxy.endpoint_url)
        proxy.set_faults(match=object_get, budget=2, error500=1.0)
        manifest = stage(s3root + "/r", str(tmp_path / "retried"), dask_client, config=once,
                         shards=4, retries=3, **kwargs)
        assert proxy.stats.faults["error500"] == 2
        _assert_staged(manifest, str(tmp_path / "retried"),
                       {k[2:]: v for k, v in objects.items()}, "/r/")
        proxy.set_faults(match=object_get, budget=1, error500=1.0)
        manifest = stage(s3root + "/r", str(tmp_path / "not"), dask_client, config=once,
                         shards=4, retries=0, strict=False, **kwargs)
    failed = manifest.failed
    assert 1 <= len(failed) <= 2  # the whole shard of the failed object
    assert all(e.status == "failed" and "ShardFailed" in (e.error or "") for e in failed)
    assert len(manifest.ok) == len(objects) - len(failed)


def test_cli_cp_dask_scheduler(dask_client, seaweed, s3root, s3_kwargs, tmp_path,
                               monkeypatch, capsys):
    from fasts3.cli import main

    objects = {f"x/{i}.txt": f"line {i}\n".encode() for i in range(5)}
    objects["x/sub/debug.log"] = b"not wanted"
    _upload(s3root, s3_kwargs, objects)
    for name, value in seaweed.env().items():
        monkeypatch.setenv(name, value)
    dest = str(tmp_path / "cli")
    addr = dask_client.scheduler.address
    assert main(["cp", s3root + "/x", dest, "--dask-scheduler", addr]) == 2  # needs -r
    code = main(["cp", "-r", s3root + "/x/", dest, "--dask-scheduler", addr, "--json",
                 "--exclude", "*.log"])
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 0
    assert sorted(r["dest"] for r in records) == [os.path.join(dest, f"{i}.txt")
                                                  for i in range(5)]
    assert all(r["ok"] and r["op"] == "download" and r["worker"] for r in records)
    for i in range(5):
        with open(os.path.join(dest, f"{i}.txt"), "rb") as f:
            assert f.read() == objects[f"x/{i}.txt"]
    assert not os.path.exists(os.path.join(dest, "sub"))


def test_worker_killed_mid_run_loses_nothing(dask_client, s3root, s3_kwargs, tmp_path):
    n = 60
    objects = {f"k/{i:03d}.bin": _payload(i, 64 * 1024 + i) for i in range(n)}
    _upload(s3root, s3_kwargs, objects)
    dest = str(tmp_path / "killed")
    result: dict = {}

    def run() -> None:
        try:
            result["manifest"] = stage(s3root, dest, dask_client, config=SMALL, shards=30,
                                       retries=1, **s3_kwargs)
        except BaseException as e:  # noqa: BLE001 - reported by the assertion below
            result["error"] = e

    thread = threading.Thread(target=run)
    thread.start()
    # Wait until shards are running and some have finished, then kill a worker that is
    # processing a shard (30 shards each start an engine process: the job is far from done).
    victim = None
    deadline = time.monotonic() + 30
    while victim is None and time.monotonic() < deadline and thread.is_alive():
        done = sum(len(f) for _, _, f in os.walk(os.path.join(dest, "k"))) \
            if os.path.isdir(os.path.join(dest, "k")) else 0
        busy = {w: ks for w, ks in dask_client.processing().items()
                if any("fasts3-shard" in str(k) for k in ks)}
        if done >= 2 and busy:
            victim = sorted(busy)[0]
            staged_before = done
        else:
            time.sleep(0.05)
    assert victim is not None, "no shard was running to kill"
    pid = dask_client.run(os.getpid, workers=[victim])[victim]
    os.kill(pid, signal.SIGKILL)  # the worker dies mid-shard; its nanny starts a new one
    thread.join(timeout=120)
    assert not thread.is_alive()
    assert "error" not in result, result.get("error")
    assert staged_before < n
    _assert_staged(result["manifest"], dest, objects)
    dask_client.wait_for_workers(2, timeout=60)  # the nanny restarts the killed worker
