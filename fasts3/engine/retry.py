"""Which failures are retried, how long to wait, and how many requests may be in flight.

* :class:`RetryPolicy`: bounded attempts, exponential backoff with full jitter
  (``uniform(0, min(cap, base * 2**attempt))`` seconds).
* :class:`Throttle`: an adaptive limit on concurrent requests in one worker. A throttling
  answer (503 SlowDown, 429) halves the limit; every ``limit`` successes raise it by one, back
  up to the configured maximum.
"""

from __future__ import annotations

import random
import threading
from typing import NamedTuple


class RetryPolicy(NamedTuple):
    max_attempts: int = 5
    base: float = 0.1
    cap: float = 5.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait before attempt ``attempt + 1`` (``attempt`` counts from 0)."""
        return random.uniform(0.0, min(self.cap, self.base * (2**attempt)))


class Throttle:
    """Adaptive concurrency limit shared by the threads of one worker."""

    def __init__(self, maximum: int) -> None:
        self.maximum = max(1, maximum)
        self.limit = self.maximum
        self.active = 0
        self._successes = 0
        self._cond = threading.Condition()

    def __enter__(self) -> Throttle:
        with self._cond:
            while self.active >= self.limit:
                self._cond.wait()
            self.active += 1
        return self

    def __exit__(self, *exc: object) -> None:
        with self._cond:
            self.active -= 1
            self._cond.notify()

    def throttled(self) -> None:
        """The server asked us to slow down: halve the limit (at least 1)."""
        with self._cond:
            self.limit = max(1, self.limit // 2)
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
