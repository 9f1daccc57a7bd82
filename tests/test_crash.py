"""Crash safety: a worker killed mid-batch is replaced and its tasks re-run (with current
credentials); Ctrl-C in the parent stops the workers, removes temp files and aborts multipart
uploads -- also those whose creation was still unanswered -- without hanging."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time

import psutil
import pytest
from faultproxy import FaultProxy, MiB, open_uploads, partial_files, quick_config

from fasts3 import S3


def _worker_pids(s3: S3) -> list[int]:
    return [w.proc.pid for w in s3._engine.pool.workers()]


def _kill_when(proxy: FaultProxy, s3: S3, requests: int, killed: list,
               before=None) -> threading.Thread:
    """A thread that SIGKILLs the first worker once the proxy has seen ``requests`` (after
    calling ``before()`` if given)."""
    pid = _worker_pids(s3)[0]

    def run():
        deadline = time.monotonic() + 60
        while proxy.stats.requests < requests and time.monotonic() < deadline:
            time.sleep(0.01)
        if before is not None:
            before()
        killed.append((pid, len(proxy.records)))
        os.kill(pid, signal.SIGKILL)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def test_sigkill_worker_mid_get_batch(seaweed, bucket, proxy):
    rnd = random.Random(1)
    data = {f"o{i}": rnd.randbytes(rnd.randrange(100, 50_000)) for i in range(40)}
    data["big"] = rnd.randbytes(11 * MiB)
    via = dict(endpoint_url=proxy.endpoint_url, session_vars=seaweed.session_vars(),
               progress=False)
    with S3(s3root=f"s3://{bucket}/k", config=quick_config(read_timeout=30), **via) as s3:
        s3.put_many(list(data.items()))
        proxy.reset_stats()
        proxy.latency = 0.2  # 41 objects, 8 requests at a time: the batch lasts > 1 s
        before = _worker_pids(s3)
        killed: list = []
        t = _kill_when(proxy, s3, 6, killed)
        objs = s3.get_many(list(data))
        t.join()
        assert killed and killed[0][0] in before
        for o in objs:
            assert o.blob == data[o.key], o.key
        after = _worker_pids(s3)
        assert killed[0][0] not in after and len(after) == len(before)
        assert not psutil.pid_exists(killed[0][0]) or psutil.Process(
            killed[0][0]).status() == psutil.STATUS_ZOMBIE
        assert partial_files(s3.tmpdir) == []


def test_sigkill_worker_mid_multipart_put_leaves_no_upload(seaweed, bucket, proxy):
    """Creations answer slowly; a worker dies while some are unanswered. The re-run tasks
    abort the uploads the dead worker created, so only completed objects remain."""
    items = [(f"m{i}", os.urandom(6 * MiB + i)) for i in range(4)]
    via = dict(endpoint_url=proxy.endpoint_url, session_vars=seaweed.session_vars(),
               progress=False)
    proxy.latency = 1.0
    proxy.latency_match = lambda r: r.method == "POST" and "uploads" in r.query
    with S3(s3root=f"s3://{bucket}/p", config=quick_config(read_timeout=30), **via) as s3:
        s3.info("m0", return_missing=True)  # start the workers
        killed: list = []
        t = _kill_when(proxy, s3, 3, killed)
        s3.put_many(items)
        t.join()
        assert killed
    client = seaweed.client()
    for key, value in items:
        assert client.get_object(Bucket=bucket, Key=f"p/{key}")["Body"].read() == value
    assert open_uploads(client, bucket) == []
    creates = [r for r in proxy.records if r.method == "POST" and "uploads" in r.query]
    assert len(creates) > len(items)  # the killed worker's creations were re-run


def test_replacement_worker_gets_current_credentials(moto_server, moto_bucket):
    """Credentials rotate mid-batch; the worker started to replace a dead one signs with
    the new ones (moto accepts any key, the proxy shows which one signed)."""
    with FaultProxy(moto_server.endpoint_url) as proxy:
        via = dict(endpoint_url=proxy.endpoint_url, session_vars=moto_server.session_vars(),
                   progress=False)
        data = {f"c{i}": os.urandom(1000) for i in range(30)}
        with S3(s3root=f"s3://{moto_bucket}/c", config=quick_config(read_timeout=30),
                **via) as s3:
            s3.put_many(list(data.items()))
            old_key = moto_server.access_key
            proxy.reset_stats()
            proxy.latency = 0.2
            killed: list = []

            def rotate():  # what a refresh of temporary credentials does mid-batch
                conn = s3._engine.connection
                conn._creds = conn.credentials()._replace(access_key="ROTATEDKEY")

            t = _kill_when(proxy, s3, 4, killed, before=rotate)
            objs = s3.get_many(list(data))
            t.join()
            assert all(o.blob == data[o.key] for o in objs)
        keys = [r.headers["authorization"].split("Credential=")[1].split("/")[0]
                for r in proxy.records]
        at_kill = killed[0][1]
        assert set(keys[:at_kill]) == {old_key}
        assert keys[-1] == "ROTATEDKEY"


# -- Ctrl-C ------------------------------------------------------------------------------------
SCRIPT = textwrap.dedent("""
    import json, os, sys
    from fasts3 import S3, TransferConfig
    cfg = TransferConfig(processes=2, requests_per_process=2, part_size=5 << 20,
                         multipart_threshold=5 << 20, read_timeout=120)
    args = json.loads(sys.argv[1])
    with S3(s3root=args["root"], endpoint_url=args["endpoint"], tmproot=args["tmproot"],
            session_vars=args["session_vars"], progress=False, config=cfg) as s3:
        print(json.dumps({"tmpdir": s3.tmpdir}), flush=True)
        s3.put_many([("big1", os.urandom(16 << 20)), ("big2", os.urandom(11 << 20))])
    print("finished", flush=True)
""")


def _start_script(tmp_path, seaweed, proxy, bucket):
    script = tmp_path / "put_big.py"
    script.write_text(SCRIPT)
    args = json.dumps(dict(root=f"s3://{bucket}/int", endpoint=proxy.endpoint_url,
                           tmproot=str(tmp_path / "tmp"), session_vars=seaweed.session_vars()))
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(__file__)))
    proc = subprocess.Popen([sys.executable, str(script), args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    line = proc.stdout.readline()
    assert line, proc.stderr.read()
    return proc, json.loads(line)["tmpdir"]


def _wait_for(cond, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _signal_and_wait(proc: subprocess.Popen, sig: int) -> tuple[list[psutil.Process], str, str]:
    """Send ``sig`` to ``proc`` (a script or command with worker processes) and wait for it
    to end (60 s). Returns ``(its worker processes, stdout, stderr)``."""
    workers = _descendants(proc.pid)
    assert workers
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    return workers, out, err


def _assert_terminated(proc: subprocess.Popen, out: str, err: str,
                       workers: list[psutil.Process], tmpdir: str) -> None:
    """``proc`` (a script with ``with S3()``) ended by SIGTERM cleaned up like Ctrl-C: exit
    143 before its last line, its workers gone, its temp dir removed."""
    assert proc.returncode == 143, err
    assert "finished" not in out
    assert all(_gone(p) for p in workers)
    assert not os.path.exists(tmpdir)


def _gone(p: psutil.Process) -> bool:
    try:
        return p.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.parametrize("stalled", ["parts", "creation"])
def test_ctrl_c_stops_workers_removes_temp_and_aborts_uploads(seaweed, bucket, proxy,
                                                               tmp_path, stalled):
    """SIGINT while parts upload (upload ids known) or while the creations are answered
    slowly (the server made the uploads; the parent never learns their ids)."""
    if stalled == "parts":
        proxy.latency_match = lambda r: "partNumber" in r.query
    else:
        proxy.latency_match = lambda r: r.method == "POST" and "uploads" in r.query
    proxy.latency = 60.0
    proc, tmpdir = _start_script(tmp_path, seaweed, proxy, bucket)
    try:
        if stalled == "parts":
            _wait_for(lambda: sum("partNumber" in r.query for r in proxy.records) >= 2, "parts")
        else:
            client = seaweed.client()
            _wait_for(lambda: len(open_uploads(client, bucket)) == 2, "creations")
        assert os.path.isdir(tmpdir)
        workers, out, err = _signal_and_wait(proc, signal.SIGINT)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0 and "finished" not in out
    assert "KeyboardInterrupt" in err
    assert all(_gone(p) for p in workers)
    assert not os.path.exists(tmpdir)
    assert open_uploads(seaweed.client(), bucket) == []


def test_second_ctrl_c_during_cleanup_does_not_hang(seaweed, bucket, proxy, tmp_path):
    """Everything stalls, the aborts too: a second SIGINT ends the cleanup at once."""
    proxy.latency = 120.0
    proxy.latency_match = lambda r: "partNumber" in r.query or r.method == "DELETE"
    proc, tmpdir = _start_script(tmp_path, seaweed, proxy, bucket)
    try:
        _wait_for(lambda: sum("partNumber" in r.query for r in proxy.records) >= 2, "parts")
        workers = _descendants(proc.pid)
        proc.send_signal(signal.SIGINT)
        _wait_for(lambda: any(r.method == "DELETE" for r in proxy.records), "aborts")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proxy.latency = 0.0
        client = seaweed.client()
        for key, uid in open_uploads(client, bucket):
            client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=uid)
    assert proc.returncode != 0 and "KeyboardInterrupt" in err
    assert all(_gone(p) for p in _descendants(proc.pid) + workers)
    assert not os.path.exists(tmpdir)


def test_fail_fast_leaves_no_half_written_file(seaweed, bucket, proxy):
    """One download fails for good while big ones are mid-way: no temp file stays, and no
    file of a failed or cancelled download sits under its final name."""
    rnd = random.Random(3)
    data = {f"b{i}": rnd.randbytes(11 * MiB) for i in range(3)}
    via = dict(endpoint_url=proxy.endpoint_url, session_vars=seaweed.session_vars(),
               progress=False)
    with S3(s3root=f"s3://{bucket}/ff", config=quick_config(), **via) as s3:
        s3.put_many(list(data.items()))
        proxy.latency = 0.3
        proxy.latency_match = lambda r: r.method == "GET"
        from fasts3.errors import S3NotFound
        with pytest.raises(S3NotFound):
            s3.get_many(list(data) + ["missing"])
        assert partial_files(s3.tmpdir) == []
        for name in os.listdir(s3.tmpdir):  # only whole downloads may remain
            with open(os.path.join(s3.tmpdir, name), "rb") as f:
                assert f.read() in data.values()
