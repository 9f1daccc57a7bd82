"""Requests in flight (issue 13): one worker's event loop keeps many requests on the wire,
SlowDown cuts that number and successes bring it back, the total in flight is a config value
sized for real-S3 latency on any host, and the pool starts workers only as the work needs them.

The fault proxy counts the requests it holds at once (``stats.max_inflight``, and
``Record.inflight`` per request); ``latency`` keeps every answer waiting, so requests overlap
exactly as far as the client lets them."""

from __future__ import annotations

import os
import resource
import time

import pytest
from faultproxy import MiB, quick_config

from fasts3 import S3, TransferConfig


@pytest.fixture
def small_objects(seaweed, bucket, s3_kwargs):
    keys = [f"s/{i:04d}" for i in range(300)]
    with S3(s3root=f"s3://{bucket}", config=quick_config(), **s3_kwargs) as s3:
        s3.put_many([(k, k.encode()) for k in keys])
    return keys


def _workers(s3: S3) -> int:
    pool = s3._engine.pool
    return len(pool.workers()) if pool is not None else 0


def test_one_worker_holds_many_requests_in_flight(small_objects, proxy, via, bucket):
    """One worker process, the default in-flight budget (256 with one process), 50 ms before
    every answer: the requests overlap by the hundred (16 threads held 16)."""
    cfg = TransferConfig(processes=1, read_timeout=30)
    assert cfg.requests_per_process == 256
    proxy.latency = 0.05
    with S3(s3root=f"s3://{bucket}", config=cfg, **via) as s3:
        t0 = time.monotonic()
        objs = s3.get_many(small_objects)
        elapsed = time.monotonic() - t0
        assert [o.blob for o in objs] == [k.encode() for k in small_objects]
        assert _workers(s3) == 1
    assert proxy.stats.max_inflight >= 64, proxy.stats.max_inflight
    # 300 answers of >= 50 ms each, one after another, would take 15 s
    assert elapsed < 10, elapsed


def test_slowdown_cuts_the_event_loop_in_flight_and_it_recovers(small_objects, proxy, via,
                                                                  bucket):
    """64 in flight; a SlowDown storm (every answer, for a while) halves the limit once per
    round of requests down to 1; the first requests after the storm go out (nearly) one by
    one; successes grow the limit again."""
    keys = small_objects
    proxy.latency = 0.2
    cfg = quick_config(processes=1, requests_per_process=64, max_attempts=40,
                       backoff_max=0.05, read_timeout=30)
    with S3(s3root=f"s3://{bucket}", config=cfg, **via) as s3:
        s3.info_many(keys[:128])
        before = proxy.stats.max_inflight
        proxy.reset_stats()
        proxy.set_faults(slowdown=1.0, budget=130)  # 64 + 32 + 16 + 8 + 4 + 2 + 1 + more
        s3.info_many(keys + keys)
    after = [r.inflight for r in proxy.records if r.fault is None]
    assert before >= 48, before
    assert proxy.stats.faults["slowdown"] == 130
    assert max(after[:6]) <= 4, after[:20]
    assert max(after[-30:]) >= 8, after[-30:]  # additive increase, one per `limit` successes


def test_in_flight_defaults_are_sized_for_latency_on_any_host(monkeypatch):
    for processes, per_process in ((1, 256), (2, 128), (3, 86), (64, 4)):
        cfg = TransferConfig(processes=processes)
        assert cfg.max_in_flight >= 256 and cfg.requests_per_process == per_process
    assert TransferConfig(processes=4, max_in_flight=1000).requests_per_process == 250
    explicit = TransferConfig(processes=2, requests_per_process=8)
    assert explicit.requests_per_process == 8 and explicit.max_in_flight == 16
    monkeypatch.setenv("FASTS3_MAX_IN_FLIGHT", "512")
    assert TransferConfig.from_env(processes=2).requests_per_process == 256
    for bad in (dict(max_in_flight=0), dict(max_in_flight=10_000),
                dict(requests_per_process=2000)):
        with pytest.raises(ValueError):
            TransferConfig(processes=2, **bad)


def test_a_single_get_starts_one_worker_and_the_pool_grows_with_the_work(
        small_objects, seaweed, bucket, s3_kwargs):
    cfg = quick_config(processes=4, requests_per_process=8)
    with S3(s3root=f"s3://{bucket}", config=cfg, **s3_kwargs) as s3:
        assert s3.get(small_objects[0]).blob == small_objects[0].encode()
        assert _workers(s3) == 1
        assert len(s3.get_many(small_objects[:6])) == 6
        assert _workers(s3) == 1  # six requests fit one worker's eight
        assert len(s3.get_many(small_objects)) == 300
        assert _workers(s3) == 4  # 300 tasks: more than the running workers hold


def test_parts_of_a_large_object_spread_over_workers(seaweed, bucket, s3_kwargs):
    """A large object's ranged parts cost CPU per byte: they start more workers than the
    task count alone would (eight 5 MiB parts: two workers)."""
    data = os.urandom(45 * MiB)
    cfg = quick_config(processes=4, requests_per_process=64)
    with S3(s3root=f"s3://{bucket}", config=cfg, **s3_kwargs) as s3:
        s3.put("big", data)
    with S3(s3root=f"s3://{bucket}", config=cfg, **s3_kwargs) as s3:
        assert s3.get("big").blob == data
        assert _workers(s3) == 2


def test_starting_a_context_costs_the_parent_little_cpu(small_objects, seaweed, bucket,
                                                        s3_kwargs):
    """``S3(...)`` and a first small ``get``: under 50 ms of this process's CPU (botocore,
    imported once per process, excluded: it is already loaded here). The worker's own start
    is its CPU, not ours."""
    with S3(s3root=f"s3://{bucket}", **s3_kwargs) as s3:  # warm: imports, botocore data
        s3.get(small_objects[0])
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    with S3(s3root=f"s3://{bucket}", **s3_kwargs) as s3:
        s3.get(small_objects[1])
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        assert _workers(s3) == 1
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    assert cpu < 0.05, cpu


def test_async_throttle_paces_a_burst_and_replaces_finished_requests_at_once():
    """A burst of 60 acquires: each turn of the loop admits at most ``pace`` more than
    finished (so answers are read between admissions), all are admitted within a few turns
    per request, and a release lets a waiter in at once."""
    import asyncio

    from fasts3.engine.retry import AsyncThrottle

    async def main() -> None:
        throttle = AsyncThrottle(50, pace=4)
        hold = asyncio.get_running_loop().create_future()

        async def request() -> None:
            await throttle.acquire()
            await hold

        tasks = [asyncio.create_task(request()) for _ in range(60)]
        seen = []
        for _ in range(40):
            await asyncio.sleep(0)
            seen.append(throttle.active)
        steps = [b - a for a, b in zip([0, *seen[:-1]], seen, strict=True)]
        assert max(steps) <= 4, seen
        assert throttle.active == 50, seen  # the limit, reached within the 40 turns
        throttle.release()  # one finished: its replacement needs no new turn's budget
        for _ in range(3):
            await asyncio.sleep(0)
        assert throttle.active == 50 and len(throttle._waiters) == 9
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(main())


def test_parts_are_asked_for_as_soon_as_the_first_answer_arrives(seaweed, bucket, s3_kwargs,
                                                                 proxy, via):
    """A large object of unknown size: its first GET keeps one part; the other parts are
    asked for as soon as that answer's head arrives (the worker announces it), not after its
    body. Each answer's body comes at 8 MiB/s, as over one connection of a real network: the
    first part's body takes 0.6 s, and every other part must be asked for well before."""
    data = os.urandom(25 * MiB)
    with S3(s3root=f"s3://{bucket}", config=quick_config(), **s3_kwargs) as s3:
        s3.put("big", data)
    proxy.body_rate = 8 * MiB
    cfg = quick_config(read_timeout=30)  # parts of 5 MiB
    with S3(s3root=f"s3://{bucket}", config=cfg, **via) as s3:
        assert s3.get("big").blob == data
    gets = [r for r in proxy.records if r.method == "GET" and r.path.endswith("/big")]
    first = [r for r in gets if "range" not in r.headers]
    parts = [r for r in gets if "range" in r.headers]
    assert len(first) == 1 and len(parts) == 4, [(r.headers.get("range"), r.at) for r in gets]
    late = [round(r.at - first[0].at, 3) for r in parts if r.at - first[0].at > 0.3]
    assert not late, late


def test_async_throttle_credit_of_finished_requests_lasts_one_turn():
    """Requests that finished earlier leave no credit for a later burst: it is paced too."""
    import asyncio

    from fasts3.engine.retry import AsyncThrottle

    async def main() -> None:
        throttle = AsyncThrottle(100, pace=4)
        for _ in range(40):  # one by one, a turn apart: no burst
            await throttle.acquire()
            await asyncio.sleep(0)
        for _ in range(40):
            throttle.release()
        for _ in range(3):
            await asyncio.sleep(0)
        hold = asyncio.get_running_loop().create_future()

        async def request() -> None:
            await throttle.acquire()
            await hold

        tasks = [asyncio.create_task(request()) for _ in range(40)]
        seen = []
        for _ in range(20):
            await asyncio.sleep(0)
            seen.append(throttle.active)
        assert max(b - a for a, b in zip([0, *seen[:-1]], seen, strict=True)) <= 4, seen
        assert throttle.active == 40, seen
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(main())
