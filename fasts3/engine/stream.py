"""Streaming batches: ops are started as a *feed* produces them and handed back as they finish,
with at most ``window`` of them between "started" and "handed back".

A feed is an iterator of:

* an op -- a *foreground* op: started when the window has room, yielded back when done (in
  completion order, or in feed order with ``ordered``);
* :class:`Background` ``(op)`` -- started at once, never yielded and not counted in the window
  (e.g. one page of a listing whose objects the feed turns into foreground ops); if it fails,
  the stream raises its error (after cancelling the rest);
* ``None`` -- nothing to start right now (the feed waits for a background op): the stream
  steps the pool and asks again;
* :class:`Fail` ``(error)`` -- stop: cancel the rest and raise ``error`` (e.g. a listing's
  probe failed).

The feed is pulled only while the window has room, so a feed that yields an op per listed
object holds at most ``window`` ops, whatever the listing's size. Foreground failures stay on
their ops (``op.error``) for the consumer; with ``fail_fast`` the first one cancels the rest.

When the consumer stops early (``close()``, ``break``, an exception in its loop), queued tasks
are dropped and unfinished ops cancelled (a cancelled download removes its files, a multipart
upload is aborted); tasks in flight finish first, so nothing is left half done. An interrupt
(Ctrl-C, SIGTERM) kills the workers and cleans up as :meth:`Pool.run` does.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Generator, Iterable
from typing import Any, NamedTuple

from ..forksafe import Owner
from .scheduler import Batch, Op

FeedItem = Any  # Op | Background | None


class Background(NamedTuple):
    """A feed item: run ``op`` without yielding it (see the module doc)."""

    op: Op


class Fail(NamedTuple):
    """A feed item: stop the stream and raise ``error``."""

    error: BaseException


def stream(pool: Any, feed: Iterable[FeedItem], window: int, *,
           ordered: bool = False, fail_fast: bool = False,
           on_bytes: Callable[[int], None] | None = None,
           on_total: Callable[[int], None] | None = None,
           on_done: Callable[[Op], None] | None = None,
           on_unclaimed: Callable[[Any], None] | None = None) -> Generator[Op, None, None]:
    """Run the ops of ``feed`` on ``pool`` and yield each foreground op once done (see the
    module doc). ``window`` >= 1 bounds the foreground ops started and not yet yielded.
    ``on_unclaimed(op)`` is called, when the stream stops early, for every op that was
    started but never yielded (e.g. to remove a finished download nobody will read)."""
    if window < 1:
        raise ValueError("window must be >= 1")
    owner = Owner()  # a forked child that finalizes this generator cleans up nothing
    background: set[int] = set()
    finished: deque[Op] = deque()
    failure: list[Any] = []  # the failed background op, or a Fail item

    def done(op: Op) -> None:
        if id(op) in background:
            background.discard(id(op))
            batch.ops.pop(id(op), None)
            if op.error is not None and not failure:
                failure.append(op)
            return
        if on_done is not None:
            on_done(op)
        if not ordered:
            finished.append(op)

    pool.start()
    batch = Batch(pool, [], on_bytes, done, fail_fast, on_total)
    items = iter(feed)
    started: deque[Op] = deque()  # foreground ops started, not yet yielded (feed order)
    exhausted = False
    stopped: BaseException | None = None  # the failure the stream raises
    try:
        while True:
            while not exhausted and len(started) < window:
                try:
                    item = next(items)
                except StopIteration:
                    exhausted = True
                    break
                if item is None:
                    break
                if isinstance(item, Fail):
                    failure.append(item)
                    break
                if isinstance(item, Background):
                    background.add(id(item.op))
                    batch.start(item.op)
                    continue
                started.append(item)
                batch.start(item)
            if failure:
                batch.submit_cleanup(batch.cancel_all())
                batch.loop()
                stopped = failure[0].error
                raise stopped
            batch.step(0.0)  # keep the workers fed while the consumer works
            ready = _next_ready(started, finished, ordered, idle=not batch.owner)
            if ready is not None:
                batch.ops.pop(id(ready), None)  # a long stream holds only its window
                yield ready
                continue
            if exhausted and not started:
                return
            batch.step(1.0)
    except GeneratorExit:
        if not owner.here:  # the ops, files and workers are the parent's
            raise
        # The consumer stopped: cancel what is queued, let what is in flight finish.
        batch.submit_cleanup(batch.cancel_all())
        batch.loop()
        if on_unclaimed is not None:
            for op in started:
                on_unclaimed(op)
        raise
    except BaseException as e:
        if e is not stopped and owner.here:  # not already cleaned up
            pool.interrupted(batch)
        raise
    finally:
        if owner.here:
            pool.end_head_start()  # the first batch is over: no more head start


def _next_ready(started: deque[Op], finished: deque[Op], ordered: bool,
                idle: bool) -> Op | None:
    """The next op to hand back, taken off ``started``; ``None`` if none is ready. ``idle``:
    no task is outstanding, so every started op is done (e.g. cancelled by fail-fast)."""
    if ordered or (idle and not finished):
        if started and started[0].done:
            return started.popleft()
        return None
    if finished:
        op = finished.popleft()
        if op in started:
            started.remove(op)  # O(window): windows are small
            return op
    return None


class OpStream:
    """An iterator over the ops of :meth:`Engine.stream`, safe to share between threads:
    each step runs under the engine's lock, so other calls on the same engine (from the
    consumer's own loop, or other threads) interleave with it between items."""

    def __init__(self, gen: Generator[Op, None, None], lock: Any,
                 progress: Any = None) -> None:
        self._gen = gen
        self._lock = lock
        self._progress = progress
        self._closed = False
        self._owner = Owner()

    def __iter__(self) -> OpStream:
        return self

    def __next__(self) -> Op:
        self._owner.check()  # before the lock: a forked child may inherit it held
        with self._lock:
            if self._closed:
                raise StopIteration
            try:
                return next(self._gen)
            except BaseException:
                self._finish()
                raise

    def close(self) -> None:
        """Stop early: queued work is cancelled, work in flight finishes (idempotent). In a
        forked child it only marks the stream closed (the work is the parent's)."""
        if not self._owner.here:
            self._closed = True
            return
        with self._lock:
            if not self._closed:
                try:
                    self._gen.close()
                finally:
                    self._finish()

    def _finish(self) -> None:
        self._closed = True
        if self._progress is not None:
            self._progress.close()
            self._progress = None

    def __enter__(self) -> OpStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
