"""A worker run on a thread of the calling process: the pool's *head start*.

A worker process needs ~65 ms to start an interpreter and import the engine before it sends
its first request. While it starts, the pool hands the first few tasks of the context to an
:class:`InProcessWorker`: the same :func:`~fasts3.engine.worker.serve` loop (handlers,
retries, checksums, fault injection, result frames) on its own event loop in a thread, fed
and read through a pair of pipes exactly as a process is. So the first object of a batch
lands after one request, not after an interpreter start; the pool stops feeding the head
start once a worker process has reported (see ``pool.py``).

The object has the part of :class:`subprocess.Popen`'s interface the pool uses (``stdin``,
``stdout``, ``poll``, ``wait``, ``kill``; ``pid`` is ``None``). :meth:`kill` stops the event
loop after the callback it is running, cancels every task (a cancelled download never
commits its file) and joins the thread, so nothing it held touches a file once it returns.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import threading
from typing import IO

from .tasks import WorkerInit

log = logging.getLogger("fasts3.pool")
JOIN_SECONDS = 5.0


class InProcessWorker:
    """Runs ``worker.serve(init)`` on a daemon thread; ``stdin``/``stdout`` are the parent's
    ends of its task and result pipes."""

    pid = None

    def __init__(self, init: WorkerInit) -> None:
        task_r, task_w = os.pipe()
        result_r, result_w = os.pipe()
        self.stdin: IO[bytes] = open(task_w, "wb")  # noqa: SIM115 - closed by the pool
        self.stdout: IO[bytes] = open(result_r, "rb")  # noqa: SIM115 - closed by the pool
        self._inp = open(task_r, "rb")  # noqa: SIM115 - closed by the thread
        self._out = open(result_w, "wb")  # noqa: SIM115 - closed by the thread
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, args=(init,), daemon=True,
                                        name="fasts3-head-start")
        self._thread.start()
        self._ready.wait()

    def _main(self, init: WorkerInit) -> None:
        try:
            from .worker import serve  # the engine's loop; imported here, in the thread

            loop = self._loop = asyncio.new_event_loop()
        except BaseException:  # noqa: BLE001 - the pool sees the pipes close and re-runs
            log.exception("the head-start worker could not start")
            self._close_pipes()
            return
        finally:
            self._ready.set()
        try:
            loop.run_until_complete(serve(init, self._inp, self._out, on_gone=loop.stop))
        except RuntimeError:
            pass  # stopped by kill() or a closed pipe: abandon what it held (below)
        except Exception:  # noqa: BLE001 - a bug: the pool sees the pipe close and re-runs
            log.exception("the head-start worker failed")
        finally:
            self._abandon(loop)
            self._close_pipes()

    def _close_pipes(self) -> None:
        for f in (self._inp, self._out):
            try:
                f.close()
            except OSError:
                pass

    @staticmethod
    def _abandon(loop: asyncio.AbstractEventLoop) -> None:
        """Cancel the tasks still on ``loop`` and let them unwind (close files and sockets;
        none reaches a commit), then close it."""
        try:
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for t in pending:
                t.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        except Exception:  # noqa: BLE001 - best effort: the loop is going away
            log.debug("head-start worker: unwinding its tasks failed", exc_info=True)
        finally:
            loop.close()

    def poll(self) -> int | None:
        """``None`` while the thread runs, else 0."""
        return None if self._thread.is_alive() else 0

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the thread to end; ``subprocess.TimeoutExpired`` after ``timeout`` s."""
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise subprocess.TimeoutExpired("fasts3-head-start", timeout or 0.0)
        return 0

    def kill(self) -> None:
        """Stop at once: the loop ends after its current callback, its tasks are cancelled,
        and the thread is joined (bounded by ``JOIN_SECONDS``)."""
        loop = self._loop
        if loop is not None and self._thread.is_alive():
            try:
                loop.call_soon_threadsafe(loop.stop)
            except RuntimeError:
                pass  # the loop closed meanwhile
        self._thread.join(JOIN_SECONDS)
