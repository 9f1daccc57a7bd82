"""``iter_get`` off the happy path: transient faults are retried inside the stream, a failure
that persists raises its typed error at its own item while the rest arrive, an exception in
the consumer's loop or SIGTERM leaves nothing behind, keys from a generator are read only a
window ahead, and large objects (fetched as parts) keep disk use within the window."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from faultproxy import MiB, quick_config
from test_crash import _assert_terminated, _signal_and_wait, _wait_for

from fasts3 import S3
from fasts3.errors import S3AccessDenied, S3RetriesExhausted

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Small objects arrive whole, with the server's MD5 ETag to check, so corruption is caught too.
TRANSIENT = ("slowdown", "error500", "reset_before", "reset_after", "truncate", "stall",
             "stall_body", "corrupt")


def _seed(s3: S3, n: int, size: int = 5000, big: int = 0) -> dict[str, bytes]:
    data = {f"d/{i:05d}": os.urandom(size) for i in range(n)}
    s3.put_many(list(data.items()))
    for i in range(big):
        data[f"big/{i}"] = os.urandom(12 * MiB)
        s3.put(f"big/{i}", data[f"big/{i}"])
    return data


def _object_gets(r) -> bool:
    return r.method == "GET" and "/d/" in r.path


def test_transient_faults_are_retried_inside_the_stream(seaweed, bucket, proxy, via, tmp_path):
    with S3(s3root=f"s3://{bucket}/r", tmproot=str(tmp_path), config=quick_config(),
            **via) as s3:
        data = _seed(s3, 150)
        proxy.stall_seconds = 3.0  # > quick_config's read timeout: a stall is a timeout
        proxy.spread(0.3, TRANSIENT, match=_object_gets, budget=40)
        got = {obj.key: obj.blob for obj in s3.iter_get(list(data), window=12)}
        assert got == data
        assert sum(proxy.stats.faults.values()) > 10, proxy.stats.faults
        assert os.listdir(s3.tmpdir) == []


@pytest.mark.parametrize("fault,error", [("error", S3AccessDenied),
                                         ("error500", S3RetriesExhausted)])
def test_a_failure_that_persists_raises_at_its_item_and_the_rest_arrive(
        seaweed, bucket, proxy, via, tmp_path, fault, error):
    """403 AccessDenied is not retried; a 500 on every attempt is, until attempts run out.
    Either way the error comes at the failed key's position and the stream goes on."""
    with S3(s3root=f"s3://{bucket}/r", tmproot=str(tmp_path),
            config=quick_config(max_attempts=4), **via) as s3:
        data = _seed(s3, 30)
        keys = list(data)
        proxy.custom_error = (403, "AccessDenied", "Access Denied")
        proxy.set_faults(match=lambda r: r.method == "GET" and r.path.endswith("/d/00007"),
                         **{fault: 1.0})
        it = s3.iter_get(keys, ordered=True, window=5)
        seen: list[str | None] = []
        while True:
            try:
                obj = next(it)
            except StopIteration:
                break
            except error as e:
                assert e.url.endswith("/d/00007")
                seen.append(None)
                continue
            assert obj.blob == data[obj.key]
            seen.append(obj.key)
        assert seen == keys[:7] + [None] + keys[8:]
        assert os.listdir(s3.tmpdir) == []


def test_an_exception_in_the_consumers_loop_cancels_the_rest(seaweed, bucket, proxy, via,
                                                             tmp_path):
    """Without ``with``: the stream closes when the failed loop's frame goes (CPython frees
    it when the exception is handled), and what was queued is never asked for."""
    with S3(s3root=f"s3://{bucket}/r", tmproot=str(tmp_path), config=quick_config(),
            **via) as s3:
        data = _seed(s3, 200)
        proxy.reset_stats()

        def consume() -> None:
            for n, obj in enumerate(s3.iter_get(list(data), window=6)):
                assert obj.blob == data[obj.key]
                if n == 3:
                    raise RuntimeError("the consumer failed")

        with pytest.raises(RuntimeError, match="the consumer failed"):
            consume()
        _wait_for(lambda: os.listdir(s3.tmpdir) == [], "the stream's files to go", 10)
        gets = sum(_object_gets(r) for r in proxy.records)
        assert gets < 60, gets
        assert s3.get("d/00000").blob == data["d/00000"]  # the client still works


def test_keys_from_a_generator_are_read_only_a_window_ahead(s3root, s3_kwargs, tmp_path):
    with S3(s3root=s3root, tmproot=str(tmp_path), **s3_kwargs) as s3:
        data = _seed(s3, 300, size=100)
        pulled = 0

        def keys():
            nonlocal pulled
            for k in data:
                pulled += 1
                yield k

        got = {}
        for obj in s3.iter_get(keys(), window=8):
            assert pulled - len(got) <= 8, (pulled, len(got))
            got[obj.key] = obj.blob
        assert got == data


def test_large_objects_keep_disk_use_within_the_window(s3root, s3_kwargs, tmp_path):
    """6 x 12 MiB, fetched as 5 MiB parts, window 2: files on disk (temp files included) never
    hold more than the window plus the object the consumer holds."""
    with S3(s3root=s3root, tmproot=str(tmp_path), config=quick_config(), **s3_kwargs) as s3:
        data = _seed(s3, 0, big=6)
        peak, stop = [0], threading.Event()

        def sample() -> None:
            while not stop.is_set():
                used = 0
                for name in os.listdir(s3.tmpdir):
                    try:
                        used += os.stat(os.path.join(s3.tmpdir, name)).st_size
                    except FileNotFoundError:
                        pass
                peak[0] = max(peak[0], used)
                time.sleep(0.002)

        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            got = {}
            for obj in s3.iter_get(list(data), window=2):
                got[obj.key] = obj.blob
                time.sleep(0.05)
        finally:
            stop.set()
            sampler.join()
        assert got == data
        assert 12 * MiB <= peak[0] <= 3 * 12 * MiB, peak[0] / MiB


CONSUMER = textwrap.dedent("""
    import json, sys
    from fasts3 import S3, TransferConfig
    args = json.loads(sys.argv[1])
    cfg = TransferConfig(processes=2, requests_per_process=4, read_timeout=120)
    with S3(s3root=args["root"], endpoint_url=args["endpoint"], tmproot=args["tmproot"],
            session_vars=args["session_vars"], progress=False, config=cfg) as s3:
        print(json.dumps({"tmpdir": s3.tmpdir}), flush=True)
        for obj in s3.iter_get(args["keys"], window=6):
            print(obj.key, flush=True)
    print("finished", flush=True)
""")


def test_sigterm_while_consuming_cleans_up(seaweed, bucket, proxy, via, tmp_path):
    """SIGTERM while the stream waits on held GETs: exit 143, the workers and the temp dir
    (downloaded and partial files) are gone."""
    with S3(s3root=f"s3://{bucket}/r", tmproot=str(tmp_path), **via) as s3:
        data = _seed(s3, 40, size=300_000)
    keys = list(data)
    held = set(keys[3:])
    proxy.latency = 60.0
    proxy.latency_match = lambda r: r.method == "GET" and r.path.split("/r/", 1)[-1] in held
    script = tmp_path / "consume.py"
    script.write_text(CONSUMER)
    args = json.dumps(dict(root=f"s3://{bucket}/r", endpoint=proxy.endpoint_url,
                           tmproot=str(tmp_path / "tmp"), session_vars=seaweed.session_vars(),
                           keys=keys))
    proc = subprocess.Popen([sys.executable, str(script), args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ,
                                                                        PYTHONPATH=REPO))
    try:
        tmpdir = json.loads(proc.stdout.readline() or "{}").get("tmpdir")
        assert tmpdir, proc.stderr.read()
        got = [proc.stdout.readline().strip() for _ in range(3)]
        assert sorted(got) == keys[:3]
        _wait_for(lambda: sum(r.method == "GET" for r in proxy.records) >= 8, "held GETs")
        workers, out, err = _signal_and_wait(proc, signal.SIGTERM)
    finally:
        if proc.poll() is None:
            proc.kill()
    _assert_terminated(proc, out, err, workers, tmpdir)
