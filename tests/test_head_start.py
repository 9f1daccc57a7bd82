"""The pool's head start (``engine/inproc.py``): while the first worker process starts, the
first tasks of a context run on an in-process worker. Worker processes are made to start
slowly here (they sleep before importing the engine), so what the head start does is what
the test sees; SeaweedFS checks the signatures."""

from __future__ import annotations

import os
import random
import signal
import threading
import time

import pytest
from faultproxy import quick_config

from fasts3 import S3, S3AccessDenied
from fasts3.engine import procs

SLOW_START = 4.0  # seconds a worker process sleeps before it starts
KiB, MiB = 1 << 10, 1 << 20


@pytest.fixture
def slow_start(monkeypatch):
    monkeypatch.setattr(procs, "_WORKER_MAIN",
                        f"import time; time.sleep({SLOW_START}); " + procs._WORKER_MAIN)


@pytest.fixture
def new_head_threads():
    """Head-start threads started during the test and still running (others, e.g. of a
    long-lived fsspec filesystem from another test, are not this test's business)."""
    before = set(threading.enumerate())
    return lambda: [t for t in threading.enumerate()
                    if t.name == "fasts3-head-start" and t not in before]


def _seed(seaweed, bucket: str, prefix: str, n: int, size: int) -> dict[str, bytes]:
    rnd = random.Random(n * size)
    data = {f"k{i:03d}": rnd.randbytes(size + i) for i in range(n)}
    client = seaweed.client()
    for k, v in data.items():
        client.put_object(Bucket=bucket, Key=f"{prefix}/{k}", Body=v)
    return data


def test_first_objects_land_before_the_worker_process_starts(seaweed, bucket, slow_start,
                                                             new_head_threads):
    data = _seed(seaweed, bucket, "h", 12, 32 * KiB)
    with S3(s3root=f"s3://{bucket}/h", endpoint_url=seaweed.endpoint_url,
            session_vars=seaweed.session_vars(), progress=False) as s3:
        t0 = time.monotonic()
        with s3.iter_get(sorted(data)) as it:
            first = next(it)
            head = s3._engine.pool.head()
            assert head is not None and head.proc.poll() is None  # still the first batch
            elapsed = time.monotonic() - t0
            assert elapsed < SLOW_START / 2, elapsed  # not waiting for the process
            got = {first.key: first.blob}
            got.update((o.key, o.blob) for o in it)  # read before the next: files go
        assert got == data
        # The batch is over: the head start is stopped, later batches go to the processes.
        assert s3._engine.pool.head() is None and not new_head_threads()
        assert s3.get("k000").blob == data["k000"]
        assert s3._engine.pool.head() is None


def test_errors_from_the_head_start_are_the_typed_ones(seaweed, bucket, slow_start,
                                                       new_head_threads):
    wrong = dict(seaweed.session_vars(), aws_secret_access_key="not-the-secret")
    with S3(s3root=f"s3://{bucket}/h", endpoint_url=seaweed.endpoint_url, session_vars=wrong,
            progress=False) as s3:
        t0 = time.monotonic()
        with pytest.raises(S3AccessDenied) as ei:
            s3.get("k000")
        assert time.monotonic() - t0 < SLOW_START / 2
    assert ei.value.code == "SignatureDoesNotMatch"
    assert not new_head_threads()


def test_tasks_of_a_head_start_that_dies_are_run_by_the_processes(seaweed, bucket, proxy,
                                                                  slow_start, new_head_threads):
    data = _seed(seaweed, bucket, "d", 6, 64 * KiB)
    proxy.latency = 30.0  # the first request is held: the head start is stuck in it
    proxy.latency_match = lambda r: r.method == "GET" and r.path.endswith("/d/k000") and \
        sum(x.path.endswith("/d/k000") for x in proxy.records) == 1

    with S3(s3root=f"s3://{bucket}/d", endpoint_url=proxy.endpoint_url,
            session_vars=seaweed.session_vars(), progress=False,
            config=quick_config(read_timeout=60)) as s3:
        def kill_head() -> None:
            deadline = time.monotonic() + 20
            while not any(r.path.endswith("/d/k000") for r in proxy.records):
                if time.monotonic() > deadline:
                    return  # the test fails below: the request never came
                time.sleep(0.01)
            s3._engine.pool.head().proc.kill()

        killer = threading.Thread(target=kill_head)
        killer.start()
        objs = s3.get_many(sorted(data))
        killer.join()
        assert {o.key: o.blob for o in objs} == data
        assert sum(r.path.endswith("/d/k000") for r in proxy.records) == 2  # re-run once
    assert not new_head_threads()


class _Interrupted(Exception):
    pass


def test_an_interrupt_while_the_head_start_reads_a_body_leaves_no_file(
        seaweed, bucket, proxy, slow_start, new_head_threads):
    """The head start holds a download whose body is arriving (512 KiB: an unnamed temp
    file, named only when complete) when the caller is interrupted: the head start is
    stopped before the ops are abandoned, and even after the rest of the body would have
    arrived nothing appears under a final name."""
    _seed(seaweed, bucket, "i", 1, 512 * KiB)
    proxy.body_rate = 128 * KiB  # the body takes ~4 s
    main = threading.get_ident()

    def interrupt(signum, frame):
        raise _Interrupted

    old = signal.signal(signal.SIGUSR1, interrupt)
    try:
        with S3(s3root=f"s3://{bucket}/i", endpoint_url=proxy.endpoint_url,
                session_vars=seaweed.session_vars(), progress=False,
                config=quick_config(read_timeout=60)) as s3:
            tmpdir = s3.tmpdir
            held: list = []

            def files() -> list[str]:
                return [os.path.join(d, f) for d, _, fs in os.walk(tmpdir) for f in fs]

            def mid_body() -> None:
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    gets = [r for r in proxy.records if r.method == "GET"]
                    pool = s3._engine.pool  # made by the first batch
                    head = pool.head() if pool is not None else None
                    if gets and time.monotonic() - gets[0].at > 1.0 and head is not None:
                        held.append((bool(head.inflight), gets[0].at))
                        break
                    time.sleep(0.01)
                signal.pthread_kill(main, signal.SIGUSR1)

            threading.Thread(target=mid_body, daemon=True).start()
            with pytest.raises(_Interrupted):
                s3.get_many(["k000"])
            assert held and held[0][0]  # the head start held the download
            assert not new_head_threads()
            time.sleep(max(0.0, held[0][1] + 5.0 - time.monotonic()))  # body would be in
            assert files() == []
    finally:
        signal.signal(signal.SIGUSR1, old)


def test_a_head_start_that_cannot_start_leaves_the_work_to_the_processes(
        seaweed, bucket, monkeypatch, caplog, new_head_threads):
    """The head start's thread fails before its loop runs (here: no event loop can be
    made): it is dropped, the tasks it was handed are run by the worker processes, and
    the constructor does not wait for a loop that never comes."""
    from types import SimpleNamespace

    from fasts3.engine import inproc

    def no_loop():
        raise RuntimeError("no event loop here")

    monkeypatch.setattr(inproc, "asyncio", SimpleNamespace(new_event_loop=no_loop))
    data = _seed(seaweed, bucket, "n", 6, 16 * KiB)
    with S3(s3root=f"s3://{bucket}/n", endpoint_url=seaweed.endpoint_url,
            session_vars=seaweed.session_vars(), progress=False) as s3:
        objs = s3.get_many(sorted(data))
        assert {o.key: o.blob for o in objs} == data
        assert s3._engine.pool.head() is None
    assert "head-start worker could not start" in caplog.text
    assert not new_head_threads()


def test_a_process_forked_during_the_first_batch_does_not_hold_the_pool(
        seaweed, bucket, new_head_threads):
    """A child forked while the head start runs (multiprocessing's default on Linux, a data
    loader's workers) inherits no descriptor of it: the batch ends, the head start stops
    and the context closes while the child still lives."""
    data = _seed(seaweed, bucket, "f", 8, 16 * KiB)
    child = 0
    try:
        t0 = time.monotonic()
        with S3(s3root=f"s3://{bucket}/f", endpoint_url=seaweed.endpoint_url,
                session_vars=seaweed.session_vars(), progress=False) as s3:
            with s3.iter_get(sorted(data)) as it:
                got = {}
                for obj in it:
                    if not child:
                        assert s3._engine.pool.head() is not None  # the head start runs
                        child = os.fork()
                        if child == 0:  # the child only waits, then leaves quietly
                            time.sleep(30)
                            os._exit(0)
                    got[obj.key] = obj.blob
            assert got == data
            assert not new_head_threads()
        assert time.monotonic() - t0 < 20  # not waiting for the child's 30 s
    finally:
        if child:
            os.kill(child, signal.SIGKILL)
            os.waitpid(child, 0)
