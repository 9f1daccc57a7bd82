"""Consuming objects as they land (``iter_get``, ``iter_recursive``) and listings that stream
into transfers (``get_recursive``): order, the window bound on disk, errors at their item,
early stop, shared consumers, and large listed objects fetched as parts at once."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import random
import threading

import pytest
from faultproxy import MiB, quick_config

from fasts3 import S3, S3GetObject
from fasts3.errors import S3NotFound


def _seed(s3: S3, n: int, prefix: str = "d/", seed: int = 5, big: int = 0) -> dict[str, bytes]:
    rnd = random.Random(seed)
    data = {f"{prefix}{i:05d}": rnd.randbytes(rnd.randrange(0, 9000)) for i in range(n)}
    if big:
        data[f"{prefix}zz-big"] = rnd.randbytes(big)
    s3.put_many(list(data.items()))
    return data


def _files(tmpdir: str) -> list[str]:
    return [n for n in os.listdir(tmpdir)]


def test_iter_get_yields_everything_and_leaves_nothing(s3root, s3_kwargs, tmp_path):
    with S3(s3root=s3root, tmproot=str(tmp_path), **s3_kwargs) as s3:
        data = _seed(s3, 120, big=12 * MiB)
        got = {}
        with s3.iter_get(list(data)) as it:
            for obj in it:
                got[obj.key] = obj.blob
                assert obj.exists and obj.downloaded and os.path.isabs(obj.path)
        assert got == data
        assert _files(s3.tmpdir) == []


def test_iter_get_ordered_keeps_input_order_with_ranges(s3root, s3_kwargs, tmp_path):
    with S3(s3root=s3root, tmproot=str(tmp_path), **s3_kwargs) as s3:
        data = _seed(s3, 60)
        keys = list(data)
        random.Random(1).shuffle(keys)
        reqs = [S3GetObject(k, 1, 5) if i % 3 == 0 else k for i, k in enumerate(keys)]
        out = list(s3.iter_get(reqs, ordered=True, window=7))
        assert [o.key for o in out] == keys
        for i, (o, k) in enumerate(zip(out, keys, strict=True)):
            want = data[k][1:6] if i % 3 == 0 else data[k]
            assert o.range_info is None or o.range_info.total_size == len(data[k])
            assert o.size == len(want)


def test_window_bounds_the_files_on_disk(s3root, s3_kwargs, tmp_path):
    """At most ``window`` objects are downloaded ahead; the consumer holds one more."""
    with S3(s3root=s3root, tmproot=str(tmp_path), config=quick_config(), **s3_kwargs) as s3:
        data = _seed(s3, 80)
        peak = 0
        for obj in s3.iter_get(list(data), window=5):
            peak = max(peak, len([n for n in _files(s3.tmpdir) if not n.startswith(".")]))
            assert obj.blob == data[obj.key]
        assert 1 <= peak <= 5 + 1


def test_missing_object_raises_at_its_item_and_the_rest_continue(s3root, s3_kwargs, tmp_path):
    with S3(s3root=s3root, tmproot=str(tmp_path), **s3_kwargs) as s3:
        data = _seed(s3, 10)
        keys = list(data)[:5] + ["d/nope"] + list(data)[5:]
        it = s3.iter_get(keys, ordered=True)
        seen, errors = [], []
        while True:
            try:
                seen.append(next(it).key)
            except StopIteration:
                break
            except S3NotFound as e:
                errors.append(e.url)
        assert seen == list(data)
        assert errors == [f"{s3root}/d/nope"]
        missing = list(s3.iter_get(["d/nope"], return_missing=True))
        assert len(missing) == 1 and not missing[0].exists


def test_break_cancels_queued_work_and_leaves_no_files(seaweed, bucket, proxy, via, tmp_path):
    with S3(s3root=f"s3://{bucket}/r", tmproot=str(tmp_path), config=quick_config(),
            **via) as s3:
        data = _seed(s3, 200)
        proxy.reset_stats()
        with s3.iter_get(list(data), window=6) as it:
            for n, obj in enumerate(it):
                assert obj.blob == data[obj.key]
                if n == 3:
                    break
        gets = sum(r.method == "GET" for r in proxy.records)
        assert gets < 60, gets  # the rest was never asked for
        assert _files(s3.tmpdir) == []  # nothing half done, nothing unclaimed left
        assert s3.get("d/00000").blob == data["d/00000"]  # the client still works


def test_calls_inside_the_consumer_loop(s3root, s3_kwargs, tmp_path):
    """The consumer may use the same client while the stream is open (results are routed to
    the batch that asked)."""
    with S3(s3root=s3root, tmproot=str(tmp_path), **s3_kwargs) as s3:
        data = _seed(s3, 40)
        for obj in s3.iter_get(list(data), window=4):
            s3.put("copy/" + obj.key, obj.blob)
            assert s3.get("copy/" + obj.key).blob == data[obj.key]
        assert len(s3.list_recursive(["copy"])) == len(data)


def test_consumers_in_several_threads_share_one_stream(s3root, s3_kwargs, tmp_path):
    with S3(s3root=s3root, tmproot=str(tmp_path), **s3_kwargs) as s3:
        data = _seed(s3, 150)
        got: dict[str, bytes] = {}
        lock = threading.Lock()
        it = s3.iter_get(list(data), window=8)

        def consume() -> None:
            for obj in it:
                blob = obj.blob
                with lock:
                    assert obj.key not in got
                    got[obj.key] = blob

        threads = [threading.Thread(target=consume) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not any(t.is_alive() for t in threads)
        it.close()
        assert got == data
        assert _files(s3.tmpdir) == []


def test_keep_leaves_the_files(s3root, s3_kwargs, tmp_path):
    with S3(s3root=s3root, tmproot=str(tmp_path), **s3_kwargs) as s3:
        data = _seed(s3, 12)
        objs = list(s3.iter_get(list(data), keep=True))
        assert all(os.path.isfile(o.path) for o in objs)
        assert {o.key: o.blob for o in objs} == data


def test_iter_recursive_starts_before_the_listing_ends(seaweed, bucket, proxy, via, tmp_path):
    """2,100 keys: three listing pages. The second page is held at the proxy until the test
    has received objects, so they must have come from the first page alone."""
    gate = threading.Event()

    def hold_second_page(rec) -> bool:
        if rec.method == "GET" and "continuation-token" in rec.query:
            gate.wait(60)
        return False

    with S3(s3root=f"s3://{bucket}/r", tmproot=str(tmp_path), config=quick_config(),
            **via) as s3:
        data = _seed(s3, 2100, seed=9)
        proxy.latency = 0.001
        proxy.latency_match = hold_second_page
        got = {}
        with s3.iter_recursive(["d"], window=16) as it:
            for obj in it:
                got["d/" + obj.key] = obj.blob
                if len(got) == 50:
                    assert not gate.is_set()
                    gate.set()  # objects arrived while page 2 was held: the listing streams
        assert got == data


def test_get_recursive_pages_and_plans_large_objects_as_parts(seaweed, bucket, proxy, via,
                                                              tmp_path):
    with S3(s3root=f"s3://{bucket}/r", tmproot=str(tmp_path), config=quick_config(),
            **via) as s3:
        data = _seed(s3, 1100, seed=4, big=13 * MiB)
        proxy.reset_stats()
        objs = s3.get_recursive(["d"])
        assert [o.key for o in objs] == [k[len("d/"):] for k in sorted(data)]
        assert {"d/" + o.key: o.blob for o in objs} == data
        big = [r for r in proxy.records if r.method == "GET" and r.path.endswith("zz-big")]
        assert len(big) >= 3 and all(r.headers.get("range") for r in big)
        assert all(r.headers.get("if-match") for r in big)


def test_stream_listing_error_is_typed(s3_kwargs, tmp_path):
    """The failed listing's typed error; the stream cleans up after itself and the worker
    processes carry on (the failure is not an interrupt: they are not killed)."""
    with S3(s3root="s3://no-such-bucket-for-streams/x", tmproot=str(tmp_path),
            **s3_kwargs) as s3:
        s3.info("k", return_missing=True)  # the worker processes run
        pids = [w.proc.pid for w in s3._engine.pool.workers()]
        with pytest.raises(S3NotFound):
            list(s3.iter_recursive())
        assert [w.proc.pid for w in s3._engine.pool.workers()] == pids
        assert all(w.proc.poll() is None for w in s3._engine.pool.workers())


def _shard_digests(args: tuple) -> dict[str, str]:
    """One data loader worker: its own client over its shard of the keys."""
    s3root, kwargs, tmproot, keys, worker, workers = args
    with S3(s3root=s3root, tmproot=tmproot, **kwargs) as s3:
        return {obj.key: hashlib.sha256(obj.blob).hexdigest()
                for obj in s3.iter_get(keys[worker::workers], window=8)}


def test_forked_loader_workers_each_stream_their_shard(s3root, s3_kwargs, tmp_path):
    """The pattern for a data loader's worker processes (forked, as PyTorch's DataLoader does
    on Linux) while the parent's client is open: each worker opens its own client and
    streams ``keys[worker::workers]``; the parent's client carries on unharmed."""
    with S3(s3root=s3root, tmproot=str(tmp_path), **s3_kwargs) as s3:
        data = _seed(s3, 90)
        keys = list(data)
        assert s3.get(keys[0]).blob == data[keys[0]]  # the parent's workers are running
        pids = [w.proc.pid for w in s3._engine.pool.workers()]
        ctx = multiprocessing.get_context("fork")
        with ctx.Pool(3) as loaders:
            shards = loaders.map(_shard_digests, [(s3root, s3_kwargs, str(tmp_path), keys, i, 3)
                                                  for i in range(3)])
        assert sorted(k for shard in shards for k in shard) == sorted(keys)
        assert all(hashlib.sha256(data[k]).hexdigest() == d for shard in shards
                   for k, d in shard.items())
        assert [w.proc.pid for w in s3._engine.pool.workers()] == pids
        assert [o.blob for o in s3.iter_get(keys[:5], ordered=True)] == [data[k]
                                                                          for k in keys[:5]]
