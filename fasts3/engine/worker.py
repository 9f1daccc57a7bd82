"""A worker process: its own connections and threads, runs tasks, reports results and bytes.

Started by ``pool.py`` as ``python -m fasts3.engine.worker`` with pipes on stdin/stdout (see
``tasks.py`` for the frames). It imports only the standard library and the engine modules, so
it starts in a few tens of milliseconds. It exits when stdin closes or ``("stop",)`` arrives.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import sys
import threading
from typing import IO

from . import fastheaders
from .handlers import HANDLERS
from .inject import Injector
from .retry import RetryPolicy, TaskFailed, Throttle, run_with_retries
from .sigv4 import Signer
from .tasks import Task, WorkerInit, read_frame, write_frame
from .transport import Transport

log = logging.getLogger("fasts3.worker")
_PROGRESS_INTERVAL = 0.1


class Worker:
    """Runs tasks on ``threads`` threads and streams results back to the parent."""

    def __init__(self, init: WorkerInit, out: IO[bytes]) -> None:
        self.transport = Transport(
            init.endpoint,
            Signer(init.credentials, init.endpoint.region),
            init.connect_timeout,
            init.read_timeout,
        )
        self.transport.verify_checksums = init.verify_checksums
        self.transport.upload_checksums = init.upload_checksums
        self.policy = RetryPolicy(*init.retry)
        self.injector = Injector.from_init(init.inject)
        self.throttle = Throttle(init.threads)
        self.tasks: queue.SimpleQueue[Task | None] = queue.SimpleQueue()
        self.results: queue.SimpleQueue[tuple] = queue.SimpleQueue()
        self._out = out
        self._bytes = 0
        self._bytes_lock = threading.Lock()
        self._stopping = threading.Event()
        self.threads = [
            threading.Thread(target=self._run_tasks, name=f"fasts3-io-{i}", daemon=True)
            for i in range(init.threads)
        ]
        self.writer = threading.Thread(target=self._write_results, name="fasts3-out", daemon=True)

    def progress(self, n: int) -> None:
        with self._bytes_lock:
            self._bytes += n

    def execute(self, task: Task) -> tuple:
        """Run one task with retries (``retry.run_with_retries``); return the
        ``("r", id, value, error)`` record. The handler sees ``task.attempt``: 0 on the first
        try, n on the n-th retry."""
        handler = HANDLERS.get(type(task.args))
        if handler is None:
            return ("r", task.id, None, (0, "BadTask", f"unknown task {task.args!r:.80}",
                                         False, 1))
        injector, max_attempts = self.injector, self.policy.max_attempts

        def attempt_once(attempt: int) -> dict:
            if injector is not None:  # a failure injected here takes the real retry path
                injector.check(task, attempt, max_attempts)
            return handler(self.transport, task._replace(attempt=attempt), self.progress)

        try:
            value = run_with_retries(attempt_once, self.policy, self.throttle,
                                     f"{task.kind} {task.bucket}/{task.key}")
            return ("r", task.id, value, None)
        except TaskFailed as e:
            return ("r", task.id, None, e.info)
        except Exception as e:  # a bug or a malformed response: report, never hang
            log.exception("task %s failed", task.kind)
            return ("r", task.id, None, (0, "InternalError", repr(e), False, 1))

    def _run_tasks(self) -> None:
        while True:
            task = self.tasks.get()
            if task is None:
                break
            self.results.put(self.execute(task))
        self.transport.close()

    def _write_results(self) -> None:
        while True:
            batch = []
            try:
                batch.append(self.results.get(timeout=_PROGRESS_INTERVAL))
                while len(batch) < 512:
                    batch.append(self.results.get_nowait())
            except queue.Empty:
                pass
            with self._bytes_lock:
                n, self._bytes = self._bytes, 0
            if n:
                batch.insert(0, ("p", n))
            if batch:
                try:
                    write_frame(self._out, batch)
                except (BrokenPipeError, ValueError):
                    os._exit(0)  # the parent is gone
            elif self._stopping.is_set():
                return

    def serve(self, inp) -> None:
        """Read frames from the parent until ``stop`` or end of input."""
        for t in self.threads:
            t.start()
        self.writer.start()
        while True:
            msg = read_frame(inp)
            if msg is None:
                os._exit(0)  # the parent is gone: abandon everything at once
            if msg[0] == "stop":
                break
            if msg[0] == "tasks":
                for task in msg[1]:
                    self.tasks.put(task)
            elif msg[0] == "creds":
                self.transport.signer = Signer(msg[1], self.transport.endpoint.region)
        for _ in self.threads:
            self.tasks.put(None)
        for t in self.threads:
            t.join()
        self._stopping.set()
        self.writer.join()


def main() -> None:
    inp = sys.stdin.buffer
    out = sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing but frames may reach the parent's pipe
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    logging.basicConfig(level=os.environ.get("FASTS3_WORKER_LOG", "WARNING"),
                        format="fasts3-worker[%(process)d] %(levelname)s %(message)s")
    fastheaders.install()  # this process runs nothing but our transport
    init = read_frame(inp)
    if init is None:
        return
    Worker(init[1], out).serve(inp)


if __name__ == "__main__":
    main()
