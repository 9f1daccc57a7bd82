"""The worker processes: started once per S3 context, fed tasks, results back.

:meth:`Pool.run` drives a batch of *ops* (``plan.py``): each op yields task specs, the pool
gives every task an id, keeps at most ``capacity`` tasks queued at each worker, and hands each
result back to its op, which may ask for follow-up tasks (the parts of a large object, the next
listing page, the completion of a multipart upload).

Failure handling:

* A worker that dies (crash, SIGKILL) is replaced (with fresh credentials from
  ``credentials_source``); the tasks it held are re-run (``Task.rerun`` counts how often),
  each at most ``MAX_RERUNS`` times before it fails as ``WorkerCrashed``. More than
  ``MAX_RESPAWNS`` deaths within one batch end it with ``WorkerCrashed``.
* With ``fail_fast``, the first op that fails cancels the batch: queued tasks are dropped (the
  ops :meth:`forget` them), ops are told to :meth:`cancel` (returning cleanup tasks such as
  aborting a multipart upload), in-flight tasks finish, then :meth:`run` returns.
* ``KeyboardInterrupt`` (or any exception) in the parent kills the workers at once, asks every
  op to :meth:`abandon` (nothing in flight will ever report; ops return cleanup tasks), runs
  those on fresh workers within ``CLEANUP_SECONDS`` and re-raises. A second interrupt during
  the cleanup ends it early; it never blocks longer than that bound.
* During long batches, credentials are re-read from ``credentials_source`` every
  ``CREDENTIAL_REFRESH_SECONDS`` and sent to the workers if they changed.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import queue
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from typing import IO, Any

from ..errors import S3Error
from .inproc import InProcessWorker
from .procs import discard_worker, launch_worker, reap
from .scheduler import Batch, Op
from .tasks import Task, TaskSpec, WorkerInit, read_frame, write_frame

log = logging.getLogger("fasts3.pool")
MAX_RESPAWNS = 20  # worker deaths one batch survives (the budget starts anew each batch)
HEAD_SLOT = -1  # the slot of the head-start worker (``inproc.py``)
HEAD_TASKS = 4  # tasks the head start holds at once
CLEANUP_SECONDS = 15.0
class _Worker:
    def __init__(self, slot: int, gen: int,
                 proc: subprocess.Popen[bytes] | InProcessWorker) -> None:
        assert proc.stdin is not None
        self.slot = slot
        self.gen = gen
        self.proc = proc
        self.stdin: IO[bytes] = proc.stdin  # type: ignore[assignment]  # inproc._Input
        self.stdout: IO[bytes] | None = proc.stdout  # None: the head start (no pipe)
        self.inflight: dict[int, Task] = {}
        self.alive = True


class Pool:
    """Up to ``processes`` worker processes, each keeping ``init.in_flight`` requests in
    flight. One starts with the first batch; :meth:`grow` adds more as the work needs them
    (``scheduler.Batch.dispatch`` decides).

    With ``head_start``, the first batch also starts an in-process worker (``inproc.py``,
    slot ``HEAD_SLOT``) that takes up to ``HEAD_TASKS`` tasks at a time until a worker
    process has reported or the batch ends (:meth:`head_room`), so the first results do not
    wait for an interpreter to start; it is stopped once it is idle after that
    (:meth:`retire_head`)."""

    def __init__(self, init: WorkerInit, processes: int,
                 credentials_source: Callable[[], Any] | None = None,
                 launched: subprocess.Popen[bytes] | None = None,
                 head_start: bool = True) -> None:
        self._init = init
        #: a worker process started early (:func:`launch_worker`), used by the first spawn
        self._launched = launched
        self.processes = processes
        self.in_flight = init.in_flight
        self.capacity = init.in_flight * 2  # tasks queued at one worker at most
        self._workers: list[_Worker] = []
        self._head: _Worker | None = None
        self._head_start = head_start
        self._head_open = False  # the head start takes tasks (see head_room)
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()
        self._ids = itertools.count(1)
        self._gen = itertools.count(1)
        self._respawns = 0
        self._closed = False
        #: the batch of every task not yet reported (see ``scheduler.py``)
        self.batch_of: dict[int, Batch] = {}
        #: called (in the parent) for current credentials when a worker is replaced and
        #: periodically during long batches; ``None`` keeps the last ones sent.
        self.credentials_source = credentials_source

    @property
    def init(self) -> WorkerInit:
        """What workers are (or will be) started with."""
        return self._init

    # -- lifecycle ---------------------------------------------------------------------
    @property
    def started(self) -> bool:
        return bool(self._workers)

    def start(self) -> None:
        """Start the first worker (idempotent; called as every batch begins)."""
        if self._closed:
            raise S3Error("This S3 client is closed")
        if not self._workers:
            self._workers = [self._spawn(0)]
            if self._head_start:
                self._head_start = False  # once per pool: for the first batch
                self._head = self._start_head()
                self._head_open = self._head is not None
                return
        self.end_head_start()  # a later batch: the worker processes take it

    def grow(self, wanted: int) -> None:
        """Start workers until ``wanted`` (at most ``processes``) run. A new worker takes
        tasks at once: they wait in its pipe while it starts (~40 ms of its own CPU; the
        parent only pays for the fork/exec)."""
        while len(self._workers) < min(wanted, self.processes):
            self._workers.append(self._spawn(len(self._workers)))

    def _spawn(self, slot: int) -> _Worker:
        proc, self._launched = self._launched, None
        if proc is None or proc.poll() is not None:
            if proc is not None:
                discard_worker(proc)
            proc = launch_worker()
        w = _Worker(slot, next(self._gen), proc)
        with contextlib.suppress(ImportError, AttributeError, OSError):  # Linux only
            import fcntl  # room for large task frames: the parent never waits for a worker

            fcntl.fcntl(w.stdin.fileno(), fcntl.F_SETPIPE_SZ, 1 << 20)
        write_frame(w.stdin, ("init", self._init))
        threading.Thread(target=self._read, args=(w,), daemon=True,
                         name=f"fasts3-pool-reader-{slot}").start()
        return w

    # -- the head start ----------------------------------------------------------------
    def _start_head(self) -> _Worker | None:
        """The head-start worker (``inproc.py``), reporting into the inbox like a process's
        reader thread; ``None`` (logged) if it cannot start."""
        gen = next(self._gen)

        def report(msgs: list | None) -> None:
            self._inbox.put((HEAD_SLOT, gen, msgs))

        try:
            return _Worker(HEAD_SLOT, gen, InProcessWorker(self._init, report))
        except Exception as e:  # noqa: BLE001 - e.g. no thread: the processes do it all
            log.warning("no head start: %r", e)
            return None

    def worker_of(self, slot: int, gen: int) -> _Worker | None:
        """The worker a message from ``(slot, gen)`` came from, ``None`` if it is gone."""
        if slot == HEAD_SLOT:
            w = self._head
        else:
            w = self._workers[slot] if 0 <= slot < len(self._workers) else None
        return w if w is not None and w.gen == gen else None

    def head(self) -> _Worker | None:
        """The head-start worker while it runs, else ``None``."""
        return self._head

    def head_room(self) -> int:
        """Tasks the head start may take now: 0 once a worker process has reported or the
        first batch has ended."""
        w = self._head
        if w is None or not self._head_open or not w.alive:
            return 0
        return max(0, HEAD_TASKS - len(w.inflight))

    def end_head_start(self) -> None:
        """The head start takes no more tasks (a batch ended or another began); it is
        stopped now if idle, else once its last task reports."""
        self._head_open = False
        self.retire_head()

    def retire_head(self) -> None:
        """Stop the head start once it takes no more tasks and holds none (the thread ends
        after the ``stop``; its last report, ``None``, finds no head and is ignored)."""
        w = self._head
        if w is None or self._head_open or w.inflight:
            return
        self._head = None
        self._send(w, ("stop",))
        reap(w.proc)

    def _read(self, w: _Worker) -> None:
        assert w.stdout is not None  # a process's result pipe
        while True:
            try:
                msg = read_frame(w.stdout)
            except (OSError, ValueError, EOFError):
                msg = None
            self._inbox.put((w.slot, w.gen, msg))
            if msg is None:
                return

    def update_credentials(self, credentials: Any) -> None:
        """Send ``credentials`` to every worker (and to workers started later) if they
        differ from the last ones sent."""
        if credentials == self._init.credentials:
            return
        self._init = self._init._replace(credentials=credentials)
        for w in self._running():
            self._send(w, ("creds", credentials))

    def refresh_credentials(self) -> None:
        """Re-read ``credentials_source`` and send the credentials on if they changed."""
        if self.credentials_source is None:
            return
        try:
            creds = self.credentials_source()
        except Exception as e:  # noqa: BLE001 - keep the old ones; the requests will tell
            log.warning("could not refresh credentials: %s", type(e).__name__)
            return
        self.update_credentials(creds)

    def _send(self, w: _Worker, msg: object) -> bool:
        try:
            write_frame(w.stdin, msg)
            return True
        except (BrokenPipeError, OSError, ValueError):
            return False  # the reader thread reports the death

    def _running(self) -> list[_Worker]:
        """The worker processes and the head start, if it runs."""
        return self._workers + ([self._head] if self._head is not None else [])

    def kill(self) -> None:
        """Kill every worker now (used on interrupt); :meth:`start` makes new ones. Tasks they
        held go back to the queue of their batch (a batch that abandons its ops drops them).
        The head start is stopped and joined, so nothing it held touches a file after this."""
        running, self._head = self._running(), None
        for w in running:
            w.alive = False
            if w.proc.poll() is None:
                w.proc.kill()
        for w in running:
            reap(w.proc)
            for t in w.inflight.values():
                owner = self.batch_of.get(t.id)
                if owner is not None:
                    owner.pending.appendleft(t._replace(rerun=t.rerun + 1))
            w.inflight.clear()
        self._workers = []
        self._inbox = queue.SimpleQueue()

    def close(self) -> None:
        """Stop the workers gracefully (kill after 5 s). Idempotent."""
        self._closed = True
        launched, self._launched = self._launched, None
        if launched is not None:
            discard_worker(launched)
        running, self._head = self._running(), None
        for w in running:
            self._send(w, ("stop",))
            try:
                w.stdin.close()
            except OSError:
                pass
        deadline = time.monotonic() + 5.0
        for w in running:
            try:
                w.proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                w.proc.kill()
            reap(w.proc)
        self._workers = []

    # -- running a batch ---------------------------------------------------------------
    def run(
        self,
        ops: Sequence[Op],
        on_bytes: Callable[[int], None] | None = None,
        on_done: Callable[[Op], None] | None = None,
        fail_fast: bool = True,
        on_total: Callable[[int], None] | None = None,
    ) -> None:
        """Run ``ops`` to completion (or, with ``fail_fast``, until the first failure has been
        cleaned up). ``on_bytes(n)`` gets byte counts as workers report them, ``on_done(op)``
        each finished op, ``on_total(n)`` bytes an op just learned it will move (a download's
        size, from its first answer). Errors stay on the ops; the caller decides what to
        raise."""
        self.start()
        self._respawns = 0  # a long-lived context survives occasional deaths: budget per batch
        batch = Batch(self, ops, on_bytes, on_done, fail_fast, on_total)
        try:
            batch.begin()
            batch.loop()
        except BaseException:
            self.interrupted(batch)
            raise
        self.end_head_start()

    def interrupted(self, batch: Batch) -> None:
        """An exception (Ctrl-C, SIGTERM, a bug) stopped ``batch``: kill the workers at once
        (none may touch files or uploads any more), abandon its ops and run their cleanup
        tasks (aborts) on fresh workers, bounded in time."""
        try:
            self.kill()
            cleanup = batch.abandon_all()
            if cleanup:
                self._run_cleanup(cleanup)
        except BaseException as e:  # noqa: BLE001 - e.g. a second Ctrl-C
            log.warning("cleanup after an interrupted batch stopped early: %r", e)
            self.kill()

    def _run_cleanup(self, specs: list[tuple[Op, TaskSpec]]) -> None:
        """Best effort: run cleanup tasks (aborts) on fresh workers, bounded in time."""
        try:
            self.start()
            batch = Batch(self, [], None, None, False)
            for op, spec in specs:
                batch.submit(op, [spec])
            batch.loop(deadline=time.monotonic() + CLEANUP_SECONDS)
        except BaseException as e:  # noqa: BLE001 - cleanup must not mask the original error
            log.warning("cleanup after an interrupted batch did not finish: %r", e)
            self.kill()
            return
        self.kill()  # the cleanup workers may hold connections to a misbehaving server

    def new_id(self) -> int:
        return next(self._ids)

    def workers(self) -> list[_Worker]:
        return self._workers

    def replace(self, w: _Worker) -> _Worker | None:
        """Replace a dead worker; return the new one (``None`` for the head start, which
        is not replaced: worker processes take its tasks)."""
        if w.slot == HEAD_SLOT:
            if self._head is w:
                self._head = None
            reap(w.proc)
            return None
        self._respawns += 1
        if self._respawns > MAX_RESPAWNS:
            raise S3Error("Worker processes keep dying; see the log above", code="WorkerCrashed")
        log.warning("worker process %d died (exit %s); starting a new one", w.proc.pid,
                    w.proc.poll())
        reap(w.proc)
        self.refresh_credentials()
        nw = self._spawn(w.slot)
        self._workers[w.slot] = nw
        return nw

    def receive(self, timeout: float) -> list:
        """The ``(slot, gen, records or None)`` the workers sent, waiting up to ``timeout``
        seconds for the first; a worker process's word ends the head start's intake."""
        try:
            items = [self._inbox.get(timeout=timeout)]
        except queue.Empty:
            return []
        try:
            while True:
                items.append(self._inbox.get_nowait())
        except queue.Empty:
            pass
        if self._head_open and any(slot != HEAD_SLOT for slot, _, _ in items):
            self._head_open = False  # a worker process is up: the head start is done
        return items
