"""Process life cycle outside the happy path: SIGTERM to a program inside ``with S3()`` and to
``fasts3 cp``/``sync`` cleans up like Ctrl-C (exit 143); an interrupted download keeps its
completed files; stale temp dirs are never uploaded; one S3 shared by threads; a relative
tmproot survives ``chdir``; a long-lived context survives occasional worker deaths."""

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
from faultproxy import MiB, open_uploads, quick_config
from test_crash import SCRIPT, _assert_terminated, _gone, _signal_and_wait, _start_script, _wait_for

from fasts3 import S3
from fasts3.engine import pool as pool_module

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _cli(args: list[str], env_extra: dict[str, str]) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["PYTHONPATH"] = REPO
    env.update(env_extra)
    return subprocess.Popen([sys.executable, "-m", "fasts3", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def _aws_env(seaweed, endpoint: str) -> dict[str, str]:
    v = seaweed.session_vars()
    return {"AWS_ACCESS_KEY_ID": v["aws_access_key_id"],
            "AWS_SECRET_ACCESS_KEY": v["aws_secret_access_key"],
            "AWS_DEFAULT_REGION": v["region_name"], "AWS_ENDPOINT_URL_S3": endpoint,
            "FASTS3_PROCESSES": "2", "FASTS3_REQUESTS_PER_PROCESS": "4",
            "FASTS3_PART_SIZE": "5MiB", "FASTS3_MULTIPART_THRESHOLD": "5MiB",
            "FASTS3_READ_TIMEOUT": "120"}


def _staging_dirs(path: str) -> list[str]:
    return [n for n in os.listdir(path) if n.startswith("fasts3.")]


# -- SIGTERM to a Python program inside `with S3()` -------------------------------------------
def test_sigterm_in_program_cleans_up_like_ctrl_c(seaweed, bucket, proxy, tmp_path):
    assert "with S3(" in SCRIPT  # the same multipart-upload script as the Ctrl-C tests
    proxy.latency_match = lambda r: "partNumber" in r.query
    proxy.latency = 60.0
    proc, tmpdir = _start_script(tmp_path, seaweed, proxy, bucket)
    try:
        _wait_for(lambda: sum("partNumber" in r.query for r in proxy.records) >= 2, "parts")
        assert os.path.isdir(tmpdir)
        workers, out, err = _signal_and_wait(proc, signal.SIGTERM)
    finally:
        if proc.poll() is None:
            proc.kill()
    _assert_terminated(proc, out, err, workers, tmpdir)
    assert open_uploads(seaweed.client(), bucket) == []


def test_program_handler_for_sigterm_is_left_alone(seaweed, s3_kwargs, tmp_path):
    """A program that installed its own SIGTERM handler keeps it while S3 is open."""
    seen = []
    previous = signal.signal(signal.SIGTERM, lambda *a: seen.append(a[0]))
    try:
        with S3(tmproot=str(tmp_path), **s3_kwargs) as s3:
            assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
            os.kill(os.getpid(), signal.SIGTERM)
            _wait_for(lambda: seen, "the program's handler")
            assert os.path.isdir(s3.tmpdir)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert seen == [signal.SIGTERM]


def test_sigterm_default_restored_after_close(s3_kwargs, tmp_path):
    """Nested contexts hold SIGTERM until the last one closes (in a fresh interpreter: other
    tests may leave long-lived contexts, e.g. fsspec's, open in this one)."""
    script = textwrap.dedent("""
        import json, signal, sys
        from fasts3 import S3
        kw = json.loads(sys.argv[1])
        dfl = lambda: signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
        states = [dfl()]
        with S3(tmproot=kw.pop("tmproot"), **kw):
            with S3(tmproot=sys.argv[2], **kw):
                states.append(dfl())
            states.append(dfl())  # the outer one is still open
        states.append(dfl())
        print(json.dumps(states))
    """)
    kw = dict(s3_kwargs, tmproot=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", script, json.dumps(kw), str(tmp_path)],
                         capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, PYTHONPATH=REPO))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == [True, False, False, True]


# -- SIGTERM / Ctrl-C to the fasts3 command -------------------------------------------------
def test_sigterm_to_cp_upload_aborts_and_exits_143(seaweed, bucket, proxy, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "big.bin").write_bytes(os.urandom(16 * MiB))
    proxy.latency_match = lambda r: "partNumber" in r.query
    proxy.latency = 60.0
    proc = _cli(["cp", "-r", str(src), f"s3://{bucket}/up/"],
                _aws_env(seaweed, proxy.endpoint_url))
    try:
        _wait_for(lambda: sum("partNumber" in r.query for r in proxy.records) >= 2, "parts")
        workers, out, err = _signal_and_wait(proc, signal.SIGTERM)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err
    assert "terminated" in err and "Traceback" not in err
    assert all(_gone(p) for p in workers)
    assert open_uploads(seaweed.client(), bucket) == []


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_interrupted_download_keeps_completed_files(seaweed, bucket, proxy, tmp_path, sig,
                                                    code):
    """``cp -r s3://... DIR`` interrupted: completed files stay (as aws s3 cp and s5cmd
    leave them), unfinished ones and the staging dir go."""
    client = seaweed.client()
    rnd = random.Random(7)
    small = {f"data/s{i:02d}": rnd.randbytes(rnd.randrange(1, 20_000)) for i in range(20)}
    for key, value in small.items():
        client.put_object(Bucket=bucket, Key=key, Body=value)
    client.put_object(Bucket=bucket, Key="data/zbig", Body=rnd.randbytes(12 * MiB))
    proxy.latency_match = lambda r: r.method == "GET" and "zbig" in r.path
    proxy.latency = 60.0
    dest = tmp_path / "dest"
    proc = _cli(["cp", "-r", f"s3://{bucket}/data", str(dest)],
                _aws_env(seaweed, proxy.endpoint_url))
    try:
        _wait_for(lambda: dest.is_dir() and len([n for n in os.listdir(dest)
                                                 if n.startswith("s")]) == len(small),
                  "the small files in place")
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == code, err
    assert sorted(os.listdir(dest)) == sorted(k.split("/")[1] for k in small)
    for key, value in small.items():
        assert (dest / key.split("/")[1]).read_bytes() == value


def test_stale_staging_dir_is_never_uploaded(seaweed, bucket, s3_kwargs, tmp_path):
    """A killed run (SIGKILL cannot be cleaned up) left its temp dir in the source: a later
    sync or cp -r uploads only the user's files."""
    src = tmp_path / "src"
    (src / "fasts3.ab12_x9z").mkdir(parents=True)
    (src / "fasts3.ab12_x9z" / ".00000001-a.part").write_bytes(b"half")
    (src / "a.txt").write_bytes(b"data")
    env = _aws_env(seaweed, s3_kwargs["endpoint_url"])
    for cmd in (["sync", str(src), f"s3://{bucket}/s"], ["cp", "-r", str(src),
                                                         f"s3://{bucket}/c/"]):
        proc = _cli(cmd, env)
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    keys = sorted(o["Key"] for o in seaweed.client().list_objects_v2(
        Bucket=bucket).get("Contents", []))
    assert keys == ["c/a.txt", "s/a.txt"]


# -- threads, cwd, worker deaths ---------------------------------------------------------------
def test_one_s3_shared_by_threads(s3root, s3_kwargs, tmp_path):
    rnd = random.Random(11)
    data = {f"t/{i:03d}": rnd.randbytes(rnd.randrange(1, 70_000)) for i in range(60)}
    with S3(s3root=s3root, tmproot=str(tmp_path), **s3_kwargs) as s3:
        s3.put_many(list(data.items()))
        results: dict[int, dict[str, bytes]] = {}
        errors: list[BaseException] = []

        def work(n: int) -> None:
            try:
                keys = list(data)[n::4]
                for _ in range(3):
                    got = {o.key: o.blob for o in s3.get_many(keys)}
                    s3.put(f"w/{n}", got[keys[0]])
                results[n] = got
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(e)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not any(t.is_alive() for t in threads), "a thread hung"
        assert not errors
        for n, got in results.items():
            assert got == {k: data[k] for k in list(data)[n::4]}


def test_relative_tmproot_then_chdir(s3root, s3_kwargs, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    s3 = S3(s3root=s3root, tmproot=".", **s3_kwargs)
    s3.put("k", b"value")
    obj = s3.get("k")
    tmpdir = s3.tmpdir
    assert os.path.isabs(obj.path) and os.path.isabs(tmpdir)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert obj.blob == b"value"
    s3.close()
    assert not os.path.exists(tmpdir)
    assert _staging_dirs(str(tmp_path)) == []


def test_long_lived_context_survives_occasional_worker_deaths(s3root, s3_kwargs, tmp_path,
                                                              monkeypatch):
    """The respawn budget is per batch: deaths spread over many batches never add up."""
    monkeypatch.setattr(pool_module, "MAX_RESPAWNS", 2)
    with S3(s3root=s3root, tmproot=str(tmp_path), config=quick_config(), **s3_kwargs) as s3:
        s3.put("k", b"v")
        for _ in range(5):
            w = s3._engine.pool.workers()[0]
            w.proc.kill()
            w.proc.wait(10)
            time.sleep(0.2)  # let the reader thread see the end of the pipe
            assert s3.get("k").blob == b"v"


def test_a_client_left_open_is_closed_at_exit(s3root, s3_kwargs, tmp_path):
    """A module-level ``S3()`` never closed: the interpreter exits normally (it aborted when
    the finalizer closed the worker pipes under their frozen reader threads), the workers end
    and the temp dir goes."""
    script = textwrap.dedent("""
        import json, sys
        from fasts3 import S3
        s3 = S3(**json.loads(sys.argv[1]))
        s3.put_many([(f"k{i}", b"x") for i in range(20)])
        objs = s3.get_many([f"k{i}" for i in range(20)])
        workers = [w.proc.pid for w in s3._engine.pool.workers()]
        print(json.dumps({"tmpdir": s3.tmpdir, "workers": workers}), flush=True)
    """)
    kw = dict(s3_kwargs, s3root=s3root, tmproot=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", script, json.dumps(kw)], capture_output=True,
                         text=True, timeout=120, env=dict(os.environ, PYTHONPATH=REPO))
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout)
    assert not os.path.exists(seen["tmpdir"])
    _wait_for(lambda: all(_gone_pid(p) for p in seen["workers"]), "the workers to end", 10)


def _gone_pid(pid: int) -> bool:
    try:
        return _gone(psutil.Process(pid))
    except psutil.NoSuchProcess:
        return True
