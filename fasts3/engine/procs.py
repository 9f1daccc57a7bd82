"""Starting and ending one worker interpreter (``worker.py``), for the pool (``pool.py``) and
the engine, which launches the first one before it has resolved the connection."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .inproc import InProcessWorker

_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_WORKER_MAIN = ("import sys; sys.path[0] = {root!r}; "
                "from fasts3.engine.worker import main; main()")


def launch_worker() -> subprocess.Popen[bytes]:
    """Start a worker interpreter. It imports the engine (~60 ms of its own CPU) and then
    waits for its ``init`` frame, so it can be launched before the parent has resolved the
    endpoint and credentials (:class:`~fasts3.engine.pool.Pool` takes it as ``launched``).

    A plain ``python -c``: the worker keeps the parent's environment (``PYTHONHOME``,
    ``PYTHONUTF8``, ``site`` hooks such as a CA store injected by ``sitecustomize``). Not
    ``-m``: it would put the current directory first on ``sys.path``, and a ``fasts3`` there
    (another checkout) would run instead of this one."""
    env = dict(os.environ)
    env["PYTHONPATH"] = _PACKAGE_ROOT + (os.pathsep + env["PYTHONPATH"]
                                         if env.get("PYTHONPATH") else "")
    return subprocess.Popen(
        [sys.executable, "-c", _WORKER_MAIN.format(root=_PACKAGE_ROOT)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, close_fds=True,
    )


def discard_worker(proc: subprocess.Popen[bytes]) -> None:
    """End a launched worker that never got its ``init`` (it exits when stdin closes)."""
    reap(proc)


def reap(proc: subprocess.Popen[bytes] | InProcessWorker) -> None:
    """Close a worker's pipes (it exits, or ends its loop, when its input closes) and wait
    for it: 5 s, then kill it and wait again (a head-start thread: at most 5 s more)."""
    for stream in (proc.stdin, proc.stdout):
        try:
            if stream:
                stream.close()
        except OSError:
            pass
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
