"""Per-worker reuse of :class:`~fasts3.S3` contexts across the shards of one job.

Opening a context costs a boto3 client and starting engine processes, and closing it waits
for them (together ~0.5-1 s here); a job has several shards per worker thread, so each Dask
worker keeps the contexts of a job and hands them to that job's next shards. A context is
used by one task at a time. They are closed when the job ends (:func:`close_job`, run on
every worker by the client) or, if the client never says so (it died), after
``IDLE_SECONDS`` without use. A lost worker takes its contexts (and engine processes, which
exit when their stdin closes) with it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

log = logging.getLogger("fasts3.distributed")
IDLE_SECONDS = 60.0

_lock = threading.Lock()
_idle: dict[str, list[Any]] = {}
_timers: dict[str, threading.Timer] = {}


@contextmanager
def borrowed(job: str, make: Callable[[], Any]) -> Iterator[Any]:
    """An S3 context for ``job``: an idle one of this process, else ``make()``. Returned
    for reuse when the block ends normally; closed (not reused) when it raises."""
    with _lock:
        idle = _idle.get(job)
        s3 = idle.pop() if idle else None
    if s3 is None:
        s3 = make()
    try:
        yield s3
    except BaseException:
        s3.close()
        raise
    _release(job, s3)


def _release(job: str, s3: Any) -> None:
    with _lock:
        _idle.setdefault(job, []).append(s3)
        old = _timers.pop(job, None)
        timer = _timers[job] = threading.Timer(IDLE_SECONDS, close_job, (job,))
        timer.daemon = True
        timer.start()
    if old is not None:
        old.cancel()


def close_job(job: str) -> int:
    """Close every idle context of ``job`` in this process; return how many."""
    with _lock:
        contexts = _idle.pop(job, [])
        timer = _timers.pop(job, None)
    if timer is not None:
        timer.cancel()
    for s3 in contexts:
        try:
            s3.close()
        except Exception as e:  # noqa: BLE001 - closing is best effort
            log.debug("closing a context of job %s: %r", job, e)
    return len(contexts)
