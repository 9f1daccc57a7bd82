"""Processes forked from (or spawned by) a program with an open client: a data loader's workers.
A child cannot use the parent's client or anything opened with it (``S3Error`` code
``ForkedClient``), closing or finalizing those there touches nothing of the parent's, its
copies of the parent's descriptors go to ``/dev/null`` (``fasts3.forksafe``), SIGTERM has its
default action there, and a client cannot be pickled to a spawned process."""

from __future__ import annotations

import gc
import io
import json
import os
import pickle
import signal
import subprocess
import sys
import textwrap

import psutil
import pytest
from test_crash import _gone, _wait_for

from fasts3 import S3

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class _Watched(io.RawIOBase):
    """2 MiB to upload (staged in a temp file first) that notes, while it is read, the
    staged files in ``tmpdir``."""

    seen: list[str] = []

    def __init__(self, tmpdir: str) -> None:
        self.tmpdir, self.left = tmpdir, 2 << 20

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        _Watched.seen = [n for n in os.listdir(self.tmpdir) if n.endswith(".part")]
        n = min(len(b), self.left)
        b[:n] = bytes(n)
        self.left -= n
        return n


def test_a_forked_child_cannot_use_or_close_the_parents_client(s3root, s3_kwargs, tmp_path):
    """A child forked inside ``with S3()`` -- with a stream and an upload open -- gets a clear
    error from each inherited object; closing, aborting or finalizing them there touches
    nothing of the parent's (workers, files, the stream, the upload); SIGTERM has its default
    action in the child."""
    with S3(s3root=s3root, tmproot=str(tmp_path), **s3_kwargs) as s3:
        data = {f"s/{i:02d}": os.urandom(3000) for i in range(20)}
        s3.put_many(list(data.items()))
        it = s3.iter_get(list(data), ordered=True, window=4)
        held = next(it)
        w = s3.open("w", "wb")
        w.write(b"a" * 100_000)
        r = s3.open("s/01")
        assert r.read(10) == data["s/01"][:10]
        tmpdir = s3.tmpdir
        staged = sorted(os.listdir(tmpdir))
        pids = [w_.proc.pid for w_ in s3._engine.pool.workers()]
        read, write = os.pipe()
        child = os.fork()
        if child == 0:  # the child: report, close everything inherited, exit at once
            signal.signal(signal.SIGALRM, signal.SIG_DFL)
            signal.alarm(30)  # a hang ends the child, so the test fails instead of waiting
            try:
                report = {"sigterm_default": signal.getsignal(signal.SIGTERM) is signal.SIG_DFL}
                for name, use in [("get", lambda: s3.get("s/00")), ("next", lambda: next(it)),
                                  ("upload", w.close), ("read", lambda: r.read(5000)),
                                  ("put", lambda: s3.put("p", _Watched(tmpdir)))]:
                    try:
                        use()
                        report[name] = None
                    except Exception as e:  # noqa: BLE001 - reported to the parent
                        report[name] = [type(e).__name__, getattr(e, "code", None)]
                it.close()
                w.abort()
                r.close()
                s3.close()
                del it, w, r, use
                gc.collect()  # finalizers too
                report["staged_in_parents_dir"] = _Watched.seen
                os.write(write, json.dumps(report).encode())
            finally:
                os._exit(0)
        os.close(write)
        with os.fdopen(read) as f:
            report = json.loads(f.read() or "{}")
        assert os.waitpid(child, 0)[1] == 0
        forked = ["S3Error", "ForkedClient"]
        assert report == {"sigterm_default": True, "get": forked, "next": forked,
                          "upload": forked, "read": forked, "put": forked,
                          "staged_in_parents_dir": []}
        assert sorted(os.listdir(s3.tmpdir)) == staged  # the child staged nothing here
        assert r.read() == data["s/01"][10:]
        assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL  # still held here
        assert os.path.isfile(held.path) and held.blob == data[held.key]
        assert [held.key] + [o.key for o in it] == list(data)
        w.write(b"b" * 100_000)
        w.close()
        assert s3.get("w").blob == b"a" * 100_000 + b"b" * 100_000
        assert [w_.proc.pid for w_ in s3._engine.pool.workers()] == pids


def test_a_client_sent_to_a_spawned_process_is_refused_clearly(s3_kwargs, tmp_path):
    """Spawned workers (``spawn``/``forkserver`` data loaders) get the client by pickling."""
    with S3(tmproot=str(tmp_path), **s3_kwargs) as s3:
        with pytest.raises(TypeError, match="open one in each process"):
            pickle.dumps(s3)


KILLED_PARENT = textwrap.dedent("""
    import json, os, signal, sys, time
    from fasts3 import S3
    kw = json.loads(sys.argv[1])
    s3 = S3(**kw)
    s3.put_many([(f"k{i}", b"x") for i in range(50)])  # the worker processes run
    workers = [w.proc.pid for w in s3._engine.pool.workers()]
    child = os.fork()
    if child == 0:  # a data loader's worker that outlives its parent for a while
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1), os.dup2(null, 2)  # so the test's pipes end with the parent
        time.sleep(30)
        os._exit(0)
    print(json.dumps({"workers": workers, "child": child}), flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # the parent dies (OOM killer, kill -9)
""")


def test_workers_of_a_killed_parent_exit_while_a_forked_child_lives(s3root, s3_kwargs,
                                                                   tmp_path):
    """Worker processes exit when their input pipe closes; a forked child's copies of the
    pipes point at /dev/null, so they do not keep the workers of a dead parent running."""
    kw = dict(s3_kwargs, s3root=s3root, tmproot=str(tmp_path))
    proc = subprocess.Popen([sys.executable, "-c", KILLED_PARENT, json.dumps(kw)],
                            stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=REPO))
    pids = json.loads(proc.stdout.readline() or "{}")
    assert proc.wait(60) == -signal.SIGKILL
    proc.stdout.close()  # the workers hold it too: not read to its end
    child = psutil.Process(pids["child"])
    try:
        assert pids["workers"]
        _wait_for(lambda: not any(_running(p) for p in pids["workers"]), "the workers to exit",
                  15)
        assert _running(child.pid)
    finally:
        child.kill()


def _running(pid: int) -> bool:
    try:
        return not _gone(psutil.Process(pid))
    except psutil.NoSuchProcess:
        return False
