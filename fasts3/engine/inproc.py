"""A worker run on a thread of the calling process: the pool's *head start*.

A worker process needs ~65 ms to start an interpreter and import the engine before it sends
its first request. While it starts, the pool hands the first few tasks of the context to an
:class:`InProcessWorker`: the same :class:`~fasts3.engine.worker.Worker` (handlers, retries,
checksums, fault injection, result records) on its own event loop in a thread. Tasks arrive
as the frames a process would read (``stdin.write``: unpickled, so the head never shares an
object with the caller) and results go to the pool's inbox exactly as a reader thread would
put them (``report``). No file descriptor is involved, so a process forked meanwhile holds
nothing of it. The pool stops feeding the head start once a worker process has reported or
the first batch ends (see ``pool.py``).

The object has the part of :class:`subprocess.Popen`'s interface the pool uses (``stdin``,
``stdout`` = ``None``, ``poll``, ``wait``, ``kill``; ``pid`` is ``None``).

Nothing commits after :meth:`kill`: a download is renamed to its final name only inside the
transport's ``commit_gate``, which :meth:`kill` closes (under its lock) before it stops the
loop; then the loop's tasks are cancelled and the thread joined, at most ``JOIN_SECONDS``
(a thread stuck in a system call is left behind, unable to commit). ``wait()`` never blocks
longer than that either.
"""

from __future__ import annotations

import asyncio
import io
import logging
import subprocess
import threading
from collections.abc import Callable
from typing import Any

from .tasks import WorkerInit, read_frame

log = logging.getLogger("fasts3.pool")
JOIN_SECONDS = 5.0
_EOF = ("eof",)  # the pool closed the head's input (see _Input.close)


class CommitGate:
    """Lets the head start's downloads take their final names until :meth:`revoke`.
    ``with gate():`` raises :class:`asyncio.CancelledError` once revoked."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.revoked = False

    def __call__(self) -> CommitGate:
        return self

    def __enter__(self) -> None:
        self._lock.acquire()
        if self.revoked:
            self._lock.release()
            raise asyncio.CancelledError("the head start was stopped")

    def __exit__(self, *exc: object) -> None:
        self._lock.release()

    def revoke(self) -> None:
        """From now on nothing commits (waits for a commit in progress)."""
        with self._lock:
            self.revoked = True


class _Input:
    """The pool's end of the head's task feed: whole frames from ``tasks.write_frame``."""

    def __init__(self, head: InProcessWorker) -> None:
        self._head = head

    def write(self, data: bytes) -> None:
        frames = io.BytesIO(data)
        while (msg := read_frame(frames)) is not None:
            self._head.deliver(msg)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self._head.deliver(_EOF)


class InProcessWorker:
    """Runs a :class:`~fasts3.engine.worker.Worker` for ``init`` on a daemon thread.
    ``report(msgs)`` receives each result frame (a list of records), then ``None`` when the
    thread ends."""

    pid = None
    stdout = None

    def __init__(self, init: WorkerInit, report: Callable[[list | None], None]) -> None:
        self._report = report
        self.gate = CommitGate()
        self.stdin = _Input(self)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._worker: Any = None
        self._backlog: list[Any] = []  # messages that came before the worker (loop thread)
        self._stop_asked = False
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, args=(init,), daemon=True,
                                        name="fasts3-head-start")
        try:
            self._thread.start()
            self._ready.wait()
        except BaseException:  # e.g. Ctrl-C while it starts: it must not live on
            self.kill(join=False)
            raise

    # -- the thread ----------------------------------------------------------------------
    def _main(self, init: WorkerInit) -> None:
        loop = None
        try:
            from .worker import Worker  # imported here, in the thread

            loop = asyncio.new_event_loop()
            self._loop = loop
        except BaseException:  # noqa: BLE001 - the pool hears of it and re-runs elsewhere
            log.exception("the head-start worker could not start")
        finally:
            self._ready.set()
        try:
            if loop is not None and not self._stop_asked:
                loop.run_until_complete(self._serve(Worker, init))
        except RuntimeError:
            if not self._stop_asked:
                log.exception("the head-start worker stopped")
        except Exception:  # noqa: BLE001 - a bug: the pool hears of it and re-runs
            log.exception("the head-start worker failed")
        finally:
            if loop is not None:
                self._abandon(loop)
            self._report(None)

    async def _serve(self, worker_class: Any, init: WorkerInit) -> None:
        worker = worker_class(init, self._report)
        worker.transport.commit_gate = self.gate
        self._worker = worker
        backlog, self._backlog = self._backlog, []
        for msg in backlog:
            self._on_message(msg)
        await worker.finished  # after "stop", once the tasks it holds have finished
        worker.flush()

    def _abandon(self, loop: asyncio.AbstractEventLoop) -> None:
        """Cancel the tasks still on ``loop``, let them unwind (nothing commits: the gate),
        close its connections and the loop."""
        try:
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for t in pending:
                t.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            if self._worker is not None:
                self._worker.transport.close()
                loop.run_until_complete(asyncio.sleep(0))  # let the aborts' callbacks run
        except BaseException:  # noqa: BLE001 - best effort: the loop is going away
            log.debug("head-start worker: unwinding its tasks failed", exc_info=True)
        finally:
            loop.close()

    def _on_message(self, msg: Any) -> None:
        worker = self._worker
        if worker is None:  # sent before the worker exists: it replays them
            self._backlog.append(msg)
        elif msg is _EOF:
            if not worker.stopping:
                self._stop_loop()  # the pool let go without "stop": abandon at once
        else:
            worker.on_message(msg)

    def _stop_loop(self) -> None:
        self._stop_asked = True
        if self._loop is not None:
            self._loop.stop()

    # -- the pool's side -----------------------------------------------------------------
    def deliver(self, msg: Any) -> None:
        """Hand ``msg`` (a task frame, ``("stop",)``, credentials) to the head's loop."""
        loop = self._loop
        if loop is None or not self._thread.is_alive():
            return
        try:
            loop.call_soon_threadsafe(self._on_message, msg)
        except RuntimeError:
            pass  # the loop closed meanwhile

    def poll(self) -> int | None:
        """``None`` while the thread runs, else 0."""
        return None if self._thread.is_alive() else 0

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the thread to end: ``subprocess.TimeoutExpired`` after ``timeout`` s;
        with ``None``, at most ``JOIN_SECONDS`` (then it is left behind, unable to
        commit)."""
        self._thread.join(JOIN_SECONDS if timeout is None else timeout)
        if self._thread.is_alive():
            if timeout is not None:
                raise subprocess.TimeoutExpired("fasts3-head-start", timeout)
            log.warning("the head-start thread did not stop within %.0f s; left behind",
                        JOIN_SECONDS)
        return 0

    def kill(self, join: bool = True) -> None:
        """Stop at once: nothing commits from now on, the loop ends after its current
        callback, its tasks are cancelled; joined for at most ``JOIN_SECONDS``."""
        self.gate.revoke()
        self._stop_asked = True
        loop = self._loop
        if loop is not None:
            try:
                loop.call_soon_threadsafe(loop.stop)
            except RuntimeError:
                pass  # the loop closed meanwhile
        if join:
            self._thread.join(JOIN_SECONDS)
