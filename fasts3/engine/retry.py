"""Which failures are retried, how long to wait, how a failure becomes a typed error, and how
many requests may be in flight. The one retry loop and the one error mapping of the engine:

* :func:`after_failure` is the rule book: given a failed attempt, it returns the backoff
  before the next one or raises :class:`TaskFailed` with an :data:`ErrorInfo` (worker
  processes send that tuple to the parent). Transient failures (the ``transient`` flag of the
  transport's exceptions) are retried; anything else, or the last attempt, is final.
* :func:`run_with_retries` (threads, ``ranged.py``) and :func:`run_with_retries_async` (the
  worker's event loop) are the two loops around it, identical but for how they wait.
* :func:`make_error` turns an :data:`ErrorInfo` into the typed :class:`~fasts3.errors.S3Error`
  the user sees (used by the ops and by ``ranged.py``).
* :class:`RetryPolicy`: bounded attempts, exponential backoff with full jitter
  (``uniform(0, min(cap, base * 2**attempt))`` seconds).
* :class:`Throttle` / :class:`AsyncThrottle` (threads / one event loop): an adaptive limit
  on concurrent requests in one worker (AIMD). A
  throttling answer (503 SlowDown, 429) halves the limit, at most once per "generation": only
  an answer to a request admitted since the last cut can cut again, so a burst of SlowDowns
  to requests that were all in flight together counts once. Every ``limit`` successes raise
  the limit by one, back up to the configured maximum.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import NamedTuple, TypeVar
from xml.etree.ElementTree import ParseError

from ..errors import S3Error, S3NotFound, error_from_response, retries_exhausted
from .tasks import ErrorInfo
from .transport import HTTPFailure, NetworkFailure

log = logging.getLogger("fasts3.retry")
T = TypeVar("T")
#: our own generator: backoff in the calling process (the head start, open()'s reads)
#: leaves the program's ``random`` sequence alone
_JITTER = random.Random()
LOCAL_CODES = frozenset({"NoSpaceLeft", "LocalIOError", "WorkerCrashed", "InternalError"})


class RetryPolicy(NamedTuple):
    """``max_attempts`` (>= 1) tries per task; waits between them in seconds."""

    max_attempts: int = 5
    base: float = 0.1
    cap: float = 5.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait before attempt ``attempt + 1`` (``attempt`` counts from 0)."""
        return _JITTER.uniform(0.0, min(self.cap, self.base * (2**attempt)))


class _Limit:
    """The AIMD state shared by both throttles: ``limit`` (1..``maximum``), requests
    ``active``, the ``generation`` of the last cut and the successes since it."""

    def __init__(self, maximum: int) -> None:
        self.maximum = max(1, maximum)
        self.limit = self.maximum
        self.active = 0
        self.generation = 0
        self._successes = 0

    def _cut(self, generation: int | None) -> None:
        if generation is not None and generation != self.generation:
            return
        self.limit = max(1, self.limit // 2)
        self.generation += 1
        self._successes = 0

    def _grow(self) -> bool:
        self._successes += 1
        if self._successes >= self.limit:
            self._successes = 0
            self.limit = min(self.maximum, self.limit + 1)
            return True
        return False


class Throttle(_Limit):
    """Adaptive concurrency limit shared by threads (blocking :meth:`acquire`).

    Use :meth:`acquire` / :meth:`release` around each request; report the outcome with
    :meth:`succeeded` or :meth:`throttled` (passing the generation :meth:`acquire` returned).
    """

    def __init__(self, maximum: int) -> None:
        super().__init__(maximum)
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
            self._cut(generation)

    def succeeded(self) -> None:
        """A request went through: creep the limit back up towards the maximum."""
        if self.limit >= self.maximum:
            return
        with self._cond:
            if self._grow():
                self._cond.notify()


class AsyncThrottle(_Limit):
    """The same limit for the coroutines of one event loop: :meth:`acquire` is awaited
    (first come, first served) and costs no await while there is room.

    It also paces bursts: one turn of the loop admits at most ``pace`` requests more than
    it saw finish. A worker handed hundreds of tasks at once would otherwise open every
    connection before reading the first answer (~40 ms for 256 on a slow core); paced, the
    answers are read between the admissions. The ramp takes a few milliseconds, far less
    than one round trip to a real server, so it costs no throughput."""

    def __init__(self, maximum: int, pace: int = 2) -> None:
        super().__init__(maximum)
        self._waiters: deque[asyncio.Future[None]] = deque()
        self.pace = max(1, pace)
        self._budget = self.pace  # admissions left in this turn of the loop
        self._turn_pending = False

    async def acquire(self) -> int:
        """Wait until fewer than ``limit`` requests are active (and the pace allows);
        return the generation."""
        if self.active >= self.limit or self._waiters or self._budget <= 0:
            fut = asyncio.get_running_loop().create_future()
            self._waiters.append(fut)
            self._next_turn()
            await fut  # _wake() counted us in
        else:
            self.active += 1
            self._budget -= 1
            if self._budget <= 0:
                self._next_turn()  # refilled next turn; until then the rest wait
        return self.generation

    def release(self) -> None:
        self.active -= 1
        self._budget += 1  # replacing a finished request is no burst...
        self._wake()
        if self._budget > self.pace:
            self._next_turn()  # ...but the credit lasts only for this turn of the loop

    def _next_turn(self) -> None:
        """Refill the budget in the loop's next turn (after it has polled for I/O)."""
        if not self._turn_pending:
            self._turn_pending = True
            asyncio.get_running_loop().call_soon(self._turn)

    def _turn(self) -> None:
        self._turn_pending = False
        self._budget = self.pace
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self.active < self.limit and self._budget > 0:
            fut = self._waiters.popleft()
            if not fut.done():
                self.active += 1
                self._budget -= 1
                fut.set_result(None)
        if self._waiters and self.active < self.limit:
            self._next_turn()

    def throttled(self, generation: int | None = None) -> None:
        """Halve the limit, as :meth:`Throttle.throttled`."""
        self._cut(generation)

    def succeeded(self) -> None:
        """Creep the limit back up, as :meth:`Throttle.succeeded`."""
        if self.limit < self.maximum and self._grow():
            self._wake()


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


def after_failure(exc: BaseException, attempt: int, policy: RetryPolicy,
                  throttle: Throttle | AsyncThrottle | None = None,
                  generation: int = 0) -> float:
    """The one rule book for a failed attempt ``attempt`` (0-based): return the seconds to
    wait before the next one, or raise.

    Transient failures (``HTTPFailure``/``NetworkFailure`` with ``transient``) are retried
    up to ``policy.max_attempts`` tries; throttling answers also cut ``throttle`` (unless the
    request was admitted before its last cut, see :class:`Throttle`). An unparseable XML
    answer is a permanent ``MalformedResponse``. A permanent failure, the last transient
    one, or a local file error (``OSError``) raise :class:`TaskFailed`; anything else
    (:class:`~fasts3.errors.S3Error`, bugs) is re-raised as it is.
    """
    if isinstance(exc, ParseError):  # complete but unreadable: retrying will not help
        exc = HTTPFailure(200, "MalformedResponse", f"unreadable XML: {exc}", {})
    if isinstance(exc, (HTTPFailure, NetworkFailure)):
        tries = attempt + 1
        if exc.throttled and throttle is not None:
            throttle.throttled(generation)
        if not exc.transient or tries >= policy.max_attempts:
            raise TaskFailed((exc.status, exc.code, exc.message, exc.transient, tries)) from None
        return policy.delay(attempt)
    if isinstance(exc, OSError) and not isinstance(exc, S3Error):
        raise TaskFailed(local_error(exc, attempt + 1)) from None
    raise exc


def run_with_retries(call: Callable[[int], T], policy: RetryPolicy,
                     throttle: Throttle | None = None, what: str = "") -> T:
    """``call(attempt)`` (``attempt`` counts from 0) until it returns, retrying as
    :func:`after_failure` decides (sleeping between tries). Raises :class:`TaskFailed`;
    :class:`~fasts3.errors.S3Error`\\ s raised by ``call`` pass through."""
    attempt = 0
    while True:
        generation = throttle.acquire() if throttle is not None else 0
        try:
            value = call(attempt)
        except Exception as e:  # noqa: BLE001 - after_failure re-raises what is not ours
            failure: Exception | None = e
        else:
            failure = None
        finally:
            if throttle is not None:
                throttle.release()
        if failure is None:
            if throttle is not None:
                throttle.succeeded()
            return value
        delay = after_failure(failure, attempt, policy, throttle, generation)
        log.debug("retrying %s after %s", what, failure)
        attempt += 1
        time.sleep(delay)


async def run_with_retries_async(call: Callable[[int], Awaitable[T]], policy: RetryPolicy,
                                 throttle: AsyncThrottle | None = None, what: str = "") -> T:
    """:func:`run_with_retries` for a coroutine function, waiting with ``asyncio.sleep``;
    ``throttle`` admits each try (the same rules, :func:`after_failure`)."""
    attempt = 0
    while True:
        generation = await throttle.acquire() if throttle is not None else 0
        try:
            value = await call(attempt)
        except Exception as e:  # noqa: BLE001 - after_failure re-raises what is not ours
            failure: Exception | None = e
        else:
            failure = None
        finally:
            if throttle is not None:
                throttle.release()
        if failure is None:
            if throttle is not None:
                throttle.succeeded()
            return value
        delay = after_failure(failure, attempt, policy, throttle, generation)
        log.debug("retrying %s after %s", what, failure)
        attempt += 1
        await asyncio.sleep(delay)


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
