"""The bookkeeping of one batch on the pool (:meth:`~fasts3.engine.pool.Pool.run`, or a
stream, ``stream.py``): task ids, per-worker queues, results routed back to their ops, fail-fast
cancellation, abandoning on interrupt, and re-runs of a dead worker's tasks (each at most
``MAX_RERUNS`` times, then ``WorkerCrashed``).

Several batches may share the pool at once in one thread (a stream is open while its consumer
runs another call): ``pool.batch_of`` names the batch of every task in flight, and whichever
batch reads a result hands it to its owner (``deferred``), which handles it on its next step.

It talks to the pool only through ``new_id``, ``workers``, ``worker_of``, ``head``,
``head_room``, ``retire_head``, ``capacity``, ``in_flight``, ``processes``, ``grow``,
``batch_of``, ``_send``, ``receive`` and ``replace``. The pool is sized here
(:meth:`Batch.wanted`): before tasks are sent, more workers are started while the work in
sight needs them. While the first worker process starts, the first light tasks in the queue
go to the pool's in-process head start (``inproc.py``).
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from ..errors import S3Error
from .tasks import GetArgs, MpuPartArgs, PutArgs, Task, TaskSpec

MAX_RERUNS = 3
HEAVY_PER_WORKER = 4  # parts of large objects in flight per worker before another starts
HEAD_PUT_MAX = 1 << 20  # bytes of the largest upload the head start takes
CREDENTIAL_REFRESH_SECONDS = 300.0
CLEANUP_KINDS = frozenset({"mpu_abort", "mpu_abort_key"})


class Op(Protocol):
    """What the pool needs of an op (see ``plan.py``)."""

    done: bool
    error: S3Error | None

    def start(self) -> list[TaskSpec]: ...

    def on_result(self, task: Task, value: Any, error: tuple | None) -> list[TaskSpec]: ...

    def cancel(self) -> list[TaskSpec]: ...


def _heavy(task: Task) -> bool:
    """A part of a large object (download or upload): many bytes, so CPU-bound."""
    a = task.args
    return (isinstance(a, GetArgs) and a.expect is not None) or isinstance(a, MpuPartArgs)


def _for_head_start(task: Task) -> bool:
    """Light enough for the head start (a thread of the calling process): not a part of a
    large object, nor an upload of more than ``HEAD_PUT_MAX`` bytes (its checksum is
    computed on the loop). A first GET of an object of unknown size may still bring up to
    ``part_size`` bytes."""
    a = task.args
    if isinstance(a, PutArgs):
        return (len(a.body) if a.body is not None else a.length) <= HEAD_PUT_MAX
    return not _heavy(task)


def _forget(op: Any, task: Task) -> None:
    forget = getattr(op, "forget", None)
    if forget is not None:
        forget(task)


def _abandon(op: Any) -> list[TaskSpec]:
    abandon = getattr(op, "abandon", None)
    if abandon is not None:
        return abandon()
    return [] if op.done else op.cancel()


class Batch:
    """The state of one ``Pool.run`` call (``pool`` is the :class:`~fasts3.engine.pool.Pool`)."""

    def __init__(self, pool: Any, ops, on_bytes, on_done, fail_fast: bool,
                 on_total=None) -> None:
        self.on_total = on_total
        self.pool = pool
        self.ops: dict[int, Op] = {id(op): op for op in ops}  # cancelled/abandoned together
        self.on_bytes = on_bytes
        self.on_done = on_done
        self.fail_fast = fail_fast
        self.pending: deque[Task] = deque()
        self.owner: dict[int, Op] = {}
        self.deferred: deque[tuple[Task, Any, Any]] = deque()  # ours, read by another batch
        self.failed = False
        self._next_refresh = time.monotonic() + CREDENTIAL_REFRESH_SECONDS

    def begin(self) -> None:
        for op in list(self.ops.values()):
            self.start(op)

    def start(self, op: Op) -> None:
        """Add ``op`` to the batch and submit its first tasks (an op may be done at once)."""
        self.ops[id(op)] = op
        self.submit(op, op.start())
        if op.done and self.on_done is not None:
            self.on_done(op)

    def submit(self, op: Op, specs: list[TaskSpec]) -> None:
        for spec in specs:
            task = Task(self.pool.new_id(), spec.bucket, spec.key, spec.args)
            self.pending.append(task)
            self.owner[task.id] = op
            self.pool.batch_of[task.id] = self

    def loop(self, deadline: float | None = None) -> None:
        """Step until every task of the batch has reported."""
        while self.owner:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError("cleanup deadline passed")
            self.step(1.0)

    def step(self, timeout: float) -> None:
        """One round: send queued tasks, handle results (waiting up to ``timeout`` seconds
        for some when none were handed over by another batch)."""
        if time.monotonic() > self._next_refresh:
            self._next_refresh = time.monotonic() + CREDENTIAL_REFRESH_SECONDS
            self.pool.refresh_credentials()
        self.dispatch()
        if self.deferred:
            while self.deferred:
                self.finish(*self.deferred.popleft())
            timeout = 0.0
        for slot, gen, msgs in self.pool.receive(timeout=timeout):
            w = self.pool.worker_of(slot, gen)
            if w is None:
                continue
            if msgs is None:
                self.worker_died(w)
                continue
            for m in msgs:
                if m[0] == "p":
                    if self.on_bytes is not None:
                        self.on_bytes(m[1])
                elif m[0] == "e":  # an early word on a task still running
                    task = w.inflight.get(m[1])
                    if task is not None:
                        (self.pool.batch_of.get(task.id) or self).early(task, m[2])
                else:
                    task = w.inflight.pop(m[1], None)
                    if task is not None:
                        self.route(task, m[2], m[3])
        self.pool.retire_head()

    def route(self, task: Task, value: Any, error: tuple | None) -> None:
        """Hand a result to the batch that owns its task."""
        owner = self.pool.batch_of.pop(task.id, None)
        if owner is None or owner is self:
            self.finish(task, value, error)
        else:
            owner.deferred.append((task, value, error))

    def dispatch(self) -> None:
        if not self.pending:
            return
        self._head_start()
        workers = [w for w in self.pool.workers() if w.alive]
        if len(self.pool.workers()) < self.pool.processes:
            self.pool.grow(self.wanted(workers))
            workers = [w for w in self.pool.workers() if w.alive]
        share = -(-len(self.pending) // max(1, len(workers)))
        for w in workers:
            room = min(self.pool.capacity - len(w.inflight), share)
            if room <= 0:
                continue
            batch = [self.pending.popleft() for _ in range(min(room, len(self.pending)))]
            for t in batch:
                w.inflight[t.id] = t
            self.pool._send(w, ("tasks", batch))
            if not self.pending:
                return

    def _head_start(self) -> None:
        """Hand the first light tasks of the queue (``_for_head_start``: large bodies belong
        on a worker process) to the head start while it takes any."""
        room, w = self.pool.head_room(), self.pool.head()
        if room <= 0 or w is None:
            return
        batch: list[Task] = []
        while self.pending and len(batch) < room and _for_head_start(self.pending[0]):
            batch.append(self.pending.popleft())
        if batch:
            for t in batch:
                w.inflight[t.id] = t
            self.pool._send(w, ("tasks", batch))

    def wanted(self, workers: list[Any]) -> int:
        """How many workers the work in sight could use: one per ``in_flight`` tasks queued
        or held (a worker's event loop keeps that many requests in flight), and one per
        ``HEAVY_PER_WORKER`` parts of large objects (their bytes cost CPU: spread them)."""
        held = [t for w in workers for t in w.inflight.values()]
        ahead = list(itertools.islice(self.pending, 4 * self.pool.capacity))
        heavy = sum(1 for t in held if _heavy(t)) + sum(1 for t in ahead if _heavy(t))
        by_tasks = -(-(len(held) + len(self.pending)) // max(1, self.pool.in_flight))
        return max(1, by_tasks, -(-heavy // HEAVY_PER_WORKER))

    def early(self, task: Task, value: Any) -> None:
        """An early word on ``task``, still running (``handlers.get``: a large download's
        first answer has arrived; its op asks for the other parts now). Any batch may call
        this on the task's owner: it only queues tasks, they go out at the owner's next
        step."""
        op = self.owner.get(task.id)
        on_early = getattr(op, "on_early", None)
        if op is None or op.done or on_early is None or self.failed:
            return
        self.submit(op, on_early(task, value))
        self._report_learned(op)

    def _report_learned(self, op: Op) -> None:
        learned = getattr(op, "learned_bytes", 0)
        if learned:
            op.learned_bytes = 0  # type: ignore[attr-defined]
            if self.on_total is not None:
                self.on_total(learned)

    def finish(self, task: Task | None, value: Any, error: tuple | None) -> None:
        if task is None:
            return
        op = self.owner.pop(task.id, None)
        if op is None:
            return
        was_done = op.done
        specs = op.on_result(task, value, error)
        self._report_learned(op)
        if self.failed:
            for s in specs:
                if s.kind not in CLEANUP_KINDS:
                    _forget(op, Task(0, s.bucket, s.key, s.args))
            specs = [s for s in specs if s.kind in CLEANUP_KINDS]
        self.submit(op, specs)
        if op.done and not was_done:
            if op.error is not None:  # e.g. parts announced before the first request failed
                self._drop_queued(lambda t: self.owner.get(t.id) is op)
            if self.on_done is not None:
                self.on_done(op)
            if op.error is not None and self.fail_fast and not self.failed:
                self.failed = True
                self.submit_cleanup(self.cancel_all(include_inflight=False))

    def _drop_queued(self, which: Callable[[Task], bool]) -> None:
        """Take the queued tasks ``which`` selects (never cleanup tasks) off the queue: they
        will not be sent, and their ops forget them."""
        dropped = [t for t in self.pending if t.kind not in CLEANUP_KINDS and which(t)]
        if not dropped:
            return
        ids = {t.id for t in dropped}
        self.pending = deque(t for t in self.pending if t.id not in ids)
        for t in dropped:
            self.pool.batch_of.pop(t.id, None)
            op = self.owner.pop(t.id, None)
            if op is not None:
                _forget(op, t)

    def submit_cleanup(self, cleanup: list[tuple[Op, TaskSpec]]) -> None:
        for op, spec in cleanup:
            self.submit(op, [spec])

    def cancel_all(self, include_inflight: bool = False) -> list[tuple[Op, TaskSpec]]:
        """Fail fast: drop queued tasks (except cleanup) and cancel every unfinished op;
        return their cleanup tasks. In-flight tasks still report to their ops."""
        self.failed = True
        self._drop_queued(lambda t: True)
        cleanup: list[tuple[Op, TaskSpec]] = []
        for op in self.ops.values():
            if not op.done:
                cleanup.extend((op, s) for s in op.cancel())
        return cleanup

    def abandon_all(self) -> list[tuple[Op, TaskSpec]]:
        """After the workers were killed: no task will report. Every op of the batch (and
        every op owning a queued or lost task, e.g. of a cleanup batch) is abandoned;
        return the cleanup tasks they ask for."""
        self.failed = True
        ops = list(self.ops.values())
        seen = {id(op) for op in ops}
        for op in self.owner.values():
            if id(op) not in seen:
                seen.add(id(op))
                ops.append(op)
        for task_id in self.owner:
            self.pool.batch_of.pop(task_id, None)
        self.owner.clear()
        self.pending.clear()
        self.deferred.clear()
        cleanup: list[tuple[Op, TaskSpec]] = []
        for op in ops:
            cleanup.extend((op, s) for s in _abandon(op))
        return cleanup

    def worker_died(self, w: Any) -> None:
        w.alive = False
        orphans = list(w.inflight.values())
        w.inflight.clear()
        self.pool.replace(w)
        for t in reversed(orphans):
            owner = self.pool.batch_of.get(t.id)
            if owner is None:
                continue  # its batch is gone (abandoned): nobody waits for it
            n = t.rerun + 1
            if n > MAX_RERUNS:
                self.pool.batch_of.pop(t.id, None)
                owner.deferred.append((t, None, (0, "WorkerCrashed", "a worker died running "
                                                 f"this task {n} times", False, n)))
            else:
                owner.pending.appendleft(t._replace(rerun=n))
