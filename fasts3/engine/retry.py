"""Which failures are retried, how long to wait, and how many requests may be in flight.

* :class:`RetryPolicy`: bounded attempts, exponential backoff with full jitter
  (``uniform(0, min(cap, base * 2**attempt))`` seconds).
* :class:`Throttle`: an adaptive limit on concurrent requests in one worker (AIMD). A
  throttling answer (503 SlowDown, 429) halves the limit, at most once per "generation": only
  an answer to a request admitted since the last cut can cut again, so a burst of SlowDowns
  to requests that were all in flight together counts once. Every ``limit`` successes raise
  the limit by one, back up to the configured maximum.
"""

from __future__ import annotations

import random
import threading
from typing import NamedTuple


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
