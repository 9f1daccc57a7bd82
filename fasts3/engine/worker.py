"""A worker process: one event loop drives all its requests, results go back in batches.

Started by ``pool.py`` (``python -c ... main()``, this package first on ``sys.path``) with
pipes on stdin/stdout (see ``tasks.py`` for the frames). It imports only the standard library
and the engine modules, so it starts in a few tens of milliseconds.

Every task becomes a coroutine on the loop (``retry.run_with_retries_async`` around its
handler from ``handlers.py``); at most ``WorkerInit.in_flight`` requests are on the wire at
once (an :class:`~fasts3.engine.retry.AsyncThrottle`: halved on SlowDown, grown back on
success), the others wait their turn. Sockets are non-blocking (``aiotransport.py``); the
only other threads are asyncio's for DNS lookups. Finished tasks are reported together: the
results of ``FLUSH_DELAY`` seconds go out as one frame (one pickle, one wake-up of the
parent), and the bytes moved are reported at most every ``PROGRESS_INTERVAL`` seconds.

It exits when stdin closes (the parent is gone: at once, abandoning everything) or, after
``("stop",)``, once the tasks it holds have finished.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import pickle
import signal
import sys
from collections.abc import Callable
from typing import IO, Any

from .aiotransport import AsyncTransport
from .handlers import HANDLERS
from .inject import Injector
from .retry import AsyncThrottle, RetryPolicy, TaskFailed, run_with_retries_async
from .sigv4 import Signer
from .tasks import Task, WorkerInit, write_frame

log = logging.getLogger("fasts3.worker")
PROGRESS_INTERVAL = 0.1
FLUSH_DELAY = 0.002  # a result waits at most this long for others to share its frame
_LEN = 4


class Worker:
    """Runs tasks on the running event loop; ``emit(records)`` sends a frame of results to
    the parent (through the result pipe; the head start's: into the pool's inbox)."""

    def __init__(self, init: WorkerInit, emit: Callable[[list], None]) -> None:
        self.loop = asyncio.get_running_loop()
        self.transport = AsyncTransport(
            init.endpoint, Signer(init.credentials, init.endpoint.region),
            init.connect_timeout, init.read_timeout)
        self.transport.announce = self.announce
        self.transport.verify_checksums = init.verify_checksums
        self.transport.upload_checksums = init.upload_checksums
        self.policy = RetryPolicy(*init.retry)
        self.injector = Injector.from_init(init.inject)
        self.throttle = AsyncThrottle(init.in_flight)
        self.tick_seconds = min(PROGRESS_INTERVAL, max(0.01, init.read_timeout / 8))
        self._emit = emit  # sends one frame of records to the parent
        self._results: list[tuple] = []
        self._bytes = 0
        self._flush_soon = False
        self._flushed_at = float("-inf")  # loop time of the last frame sent
        self._ticking = False
        self.active = 0
        self._tasks: set[asyncio.Task[None]] = set()  # the loop keeps only weak references
        self.stopping = False
        self.finished = self.loop.create_future()

    def progress(self, n: int) -> None:
        self._bytes += n

    def announce(self, task_id: int, value: Any) -> None:
        """Send an early word on a running task at once (``("e", id, value)``): the parent
        acts on it before the task's result (``handlers.get``: ask for the other parts)."""
        self._results.append(("e", task_id, value))
        self.flush()

    async def execute(self, task: Task) -> tuple:
        """Run one task with retries; return the ``("r", id, value, error)`` record. The
        handler sees ``task.attempt``: 0 on the first try, n on the n-th retry."""
        handler = HANDLERS.get(type(task.args))
        if handler is None:
            return ("r", task.id, None, (0, "BadTask", f"unknown task {task.args!r:.80}",
                                         False, 1))
        injector, max_attempts = self.injector, self.policy.max_attempts
        tr, progress = self.transport, self.progress

        async def attempt_once(attempt: int) -> Any:
            if injector is not None:  # a failure injected here takes the real retry path
                injector.check(task, attempt, max_attempts)
            return await handler(tr, task._replace(attempt=attempt) if attempt else task,
                                 progress)

        try:
            value = await run_with_retries_async(attempt_once, self.policy, self.throttle,
                                                 f"{task.kind} {task.bucket}/{task.key}")
            return ("r", task.id, value, None)
        except TaskFailed as e:
            return ("r", task.id, None, e.info)
        except Exception as e:  # noqa: BLE001 - a bug or a malformed response: report it
            log.exception("task %s failed", task.kind)
            return ("r", task.id, None, (0, "InternalError", repr(e), False, 1))
        finally:
            tr.pinned.pop(task.id, None)

    # -- tasks in, results out -------------------------------------------------------------
    def submit(self, tasks: list[Task]) -> None:
        for task in tasks:
            self.active += 1
            t = self.loop.create_task(self._run(task))
            self._tasks.add(t)
            t.add_done_callback(self._tasks.discard)
        if not self._ticking:
            self._ticking = True
            self.loop.call_later(self.tick_seconds, self._tick)

    async def _run(self, task: Task) -> None:
        record = await self.execute(task)
        self.active -= 1
        self._results.append(record)
        if self._flush_soon:
            return
        if self.loop.time() - self._flushed_at >= FLUSH_DELAY:
            self.flush()  # the first result after a quiet spell goes out at once
        else:  # results of the next FLUSH_DELAY s travel together
            self._flush_soon = True
            self.loop.call_later(FLUSH_DELAY, self.flush)

    def flush(self) -> None:
        """Send the results ready (and the bytes moved) as one frame."""
        self._flush_soon = False
        batch, self._results = self._results, []
        if self._bytes:
            batch.insert(0, ("p", self._bytes))
            self._bytes = 0
        if batch:
            self._emit(batch)
            self._flushed_at = self.loop.time()
        if self.stopping and not self.active and not self.finished.done():
            self.finished.set_result(None)

    def _tick(self) -> None:
        """A few times a second while tasks run: report bytes, time out silent
        connections."""
        self.transport.pool.tick(self.tick_seconds)
        if self._bytes:
            self.flush()
        if self.active:
            self.loop.call_later(self.tick_seconds, self._tick)
        else:
            self._ticking = False

    def on_message(self, msg: Any) -> None:
        kind = msg[0]
        if kind == "tasks":
            self.submit(msg[1])
        elif kind == "creds":
            self.transport.signer = Signer(msg[1], self.transport.endpoint.region)
        elif kind == "stop":
            self.stopping = True
            self.flush()


class _Frames(asyncio.Protocol):
    """Reads length-prefixed pickled frames from the parent's pipe."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.buf = bytearray()

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        pos = 0
        while len(buf) - pos >= _LEN:
            size = int.from_bytes(buf[pos:pos + _LEN], "big")
            if len(buf) - pos - _LEN < size:
                break
            msg = pickle.loads(buf[pos + _LEN:pos + _LEN + size])
            pos += _LEN + size
            self.worker.on_message(msg)
        del buf[:pos]

    def eof_received(self) -> bool:
        if not self.worker.stopping:
            os._exit(0)  # the parent is gone: abandon everything at once
        return False

    def connection_lost(self, exc: BaseException | None) -> None:
        self.eof_received()


class _Out:
    """The result pipe as a blocking-write file for :func:`tasks.write_frame`, written
    through the loop's pipe transport (never blocks the loop; a gone parent ends us)."""

    def __init__(self, transport: asyncio.WriteTransport) -> None:
        self.transport = transport

    def write(self, data: bytes) -> None:
        self.transport.write(data)

    def flush(self) -> None:
        pass


class _Gone(asyncio.Protocol):
    def connection_lost(self, exc: BaseException | None) -> None:
        os._exit(0)  # the parent closed its end of our results: nobody is listening


async def serve(init: WorkerInit, inp: IO[bytes], out: IO[bytes],
                backlog: bytes = b"") -> None:
    """Run tasks from ``inp`` until ``stop`` and every task held has finished."""
    loop = asyncio.get_running_loop()
    wt, _ = await loop.connect_write_pipe(_Gone, out)
    worker = Worker(init, functools.partial(write_frame, _Out(wt)))  # type: ignore[arg-type]
    frames = _Frames(worker)
    if backlog:
        frames.data_received(backlog)
    await loop.connect_read_pipe(lambda: frames, inp)
    if not worker.stopping or worker.active:
        await worker.finished
    worker.flush()
    while wt.get_write_buffer_size():
        await asyncio.sleep(0.01)
    worker.transport.close()
    await asyncio.sleep(0)  # let the aborted connections' callbacks run before the loop ends


def _read_init(inp: IO[bytes]) -> tuple[WorkerInit | None, bytes]:
    """The init frame, read before the loop starts; plus any bytes read past it."""
    data = b""
    while len(data) < _LEN or len(data) < _LEN + int.from_bytes(data[:_LEN], "big"):
        chunk = os.read(inp.fileno(), 1 << 16)
        if not chunk:
            return None, b""
        data += chunk
    size = int.from_bytes(data[:_LEN], "big")
    msg = pickle.loads(data[_LEN:_LEN + size])
    return msg[1], data[_LEN + size:]


def main() -> None:
    inp = sys.stdin.buffer
    out = sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing but frames may reach the parent's pipe
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    logging.basicConfig(level=os.environ.get("FASTS3_WORKER_LOG", "WARNING"),
                        format="fasts3-worker[%(process)d] %(levelname)s %(message)s")
    init, backlog = _read_init(inp)
    if init is None:
        return
    asyncio.run(serve(init, inp, out, backlog))


if __name__ == "__main__":
    main()
