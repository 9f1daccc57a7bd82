"""Which failures are retried, how long to wait, how a failure becomes a typed error, and how
many requests may be in flight. The one retry loop and the one error mapping of the engine:

* :func:`run_with_retries` runs a request function until it succeeds, retrying transient
  failures (the ``transient`` flag of the transport's exceptions) after a backoff; anything
  else, or the last attempt, raises :class:`TaskFailed` with an :data:`ErrorInfo` (worker
  processes send that tuple to the parent).
* :func:`make_error` turns an :data:`ErrorInfo` into the typed :class:`~fasts3.errors.S3Error`
  the user sees (used by the ops and by ``ranged.py``).
* :class:`RetryPolicy`: bounded attempts, exponential backoff with full jitter
  (``uniform(0, min(cap, base * 2**attempt))`` seconds).
* :class:`Throttle`: an adaptive limit on concurrent requests in one worker (AIMD). A
  throttling answer (503 SlowDown, 429) halves the limit, at most once per "generation": only
  an answer to a request admitted since the last cut can cut again, so a burst of SlowDowns
  to requests that were all in flight together counts once. Every ``limit`` successes raise
  the limit by one, back up to the configured maximum.
"""

from __future__ import annotations

import errno
import logging
import random
import threading
import time
from collections.abc import Callable
from typing import NamedTuple, TypeVar
from xml.etree.ElementTree import ParseError

from ..errors import S3Error, S3NotFound, error_from_response, retries_exhausted
from .tasks import ErrorInfo
from .transport import HTTPFailure, NetworkFailure

log = logging.getLogger("fasts3.retry")
T = TypeVar("T")
LOCAL_CODES = frozenset({"NoSpaceLeft", "LocalIOError", "WorkerCrashed", "InternalError"})


class RetryPolicy(NamedTuple):
    """``max_attempts`` (>= 1) tries per task; waits between them in seconds."""

    max_attempts: int = 5
    base: float = 0.1
    cap: float = 5.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait before attempt ``attempt + 1`` (``attempt`` counts from 0)."""
        return random.uniform(0.0, min(self.cap, self.base * (2**attempt)))


class Throttle:
    """Adaptive concurrency limit shared by the threads of one worker.

    Use :meth:`acquire` / :meth:`release` around each request; report the outcome with
    :meth:`succeeded` or :meth:`throttled` (passing the generation :meth:`acquire` returned).
    """

    def __init__(self, maximum: int) -> None:
        self.maximum = max(1, maximum)
        self.limit = self.maximum
        self.active = 0
        self.generation = 0
        self._successes = 0
        self._cond = threading.Condition()

    def acquire(self) -> int:
        """Wait until fewer than ``limit`` requests are active; return the generation."""
        with self._cond:
            while self.active >= self.limit:
                self._cond.wait()
            self.active += 1
            return self.generation

    def release(self) -> None:
        with self._cond:
            self.active -= 1
            self._cond.notify()

    def __enter__(self) -> int:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    def throttled(self, generation: int | None = None) -> None:
        """The server asked us to slow down: halve the limit (at least 1), unless this
        request was admitted before the last cut (``generation`` older than the current)."""
        with self._cond:
            if generation is not None and generation != self.generation:
                return
            self.limit = max(1, self.limit // 2)
            self.generation += 1
            self._successes = 0

    def succeeded(self) -> None:
        """A request went through: creep the limit back up towards the maximum."""
        if self.limit >= self.maximum:
            return
        with self._cond:
            self._successes += 1
            if self._successes >= self.limit:
                self._successes = 0
                self.limit = min(self.maximum, self.limit + 1)
                self._cond.notify()


class TaskFailed(Exception):
    """A request failed for good; ``info`` is its :data:`ErrorInfo`."""

    def __init__(self, info: ErrorInfo) -> None:
        super().__init__(info[2])
        self.info = info


def local_error(e: OSError, attempts: int) -> ErrorInfo:
    """The :data:`ErrorInfo` of a local file failure (never transient)."""
    code = "NoSpaceLeft" if e.errno == errno.ENOSPC else "LocalIOError"
    if e.errno == errno.ENOENT:
        code = "LocalFileNotFound"
    where = f": {e.filename}" if e.filename else ""
    return (0, code, f"{e.strerror or e}{where}", False, attempts)


def run_with_retries(call: Callable[[int], T], policy: RetryPolicy,
                     throttle: Throttle | None = None, what: str = "") -> T:
    """``call(attempt)`` (``attempt`` counts from 0) until it returns.

    Transient failures (``HTTPFailure``/``NetworkFailure`` with ``transient``; an unparseable
    XML answer is a permanent ``MalformedResponse``) are retried after a full-jitter backoff,
    up to ``policy.max_attempts`` tries; throttling answers also cut ``throttle``. A
    permanent failure, the last transient one, or a local file error raise
    :class:`TaskFailed`. :class:`~fasts3.errors.S3Error`\\ s raised by ``call`` pass through.
    """
    attempt = 0
    while True:
        generation = throttle.acquire() if throttle is not None else 0
        try:
            try:
                value = call(attempt)
            except ParseError as e:  # complete but unreadable: retrying will not help
                raise HTTPFailure(200, "MalformedResponse", f"unreadable XML: {e}",
                                  {}) from None
            finally:
                if throttle is not None:
                    throttle.release()
            if throttle is not None:
                throttle.succeeded()
            return value
        except (HTTPFailure, NetworkFailure) as e:
            attempt += 1
            if e.throttled and throttle is not None:
                throttle.throttled(generation)
            if not e.transient or attempt >= policy.max_attempts:
                raise TaskFailed((e.status, e.code, e.message, e.transient, attempt)) from None
            log.debug("retrying %s after %s", what, e)
            time.sleep(policy.delay(attempt - 1))
        except S3Error:
            raise
        except OSError as e:
            raise TaskFailed(local_error(e, attempt + 1)) from None


def make_error(error: ErrorInfo | tuple, url: str) -> S3Error:
    """Turn an :data:`ErrorInfo` into the typed :class:`~fasts3.errors.S3Error` for ``url``."""
    status, code, message, transient, attempts = error
    if code == "LocalFileNotFound":
        return S3NotFound(message, url, code, status)
    if transient:
        return retries_exhausted(message, url, code, status, attempts)
    if code in LOCAL_CODES:
        return S3Error(message, url, code, status)
    return error_from_response(status, code, message, url)
