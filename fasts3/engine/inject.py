"""Client-side fault injection (Metaflow's ``inject_failure_rate``), run inside the workers.

Before a request attempt is sent, :meth:`Injector.check` may raise a transient
:class:`~fasts3.engine.transport.NetworkFailure` with code ``InjectedFailure``; the worker
handles it exactly like a real connection failure (backoff, retry, ``S3RetriesExhausted``
when the attempts run out). So a pipeline under test meets the same code paths as on a bad
day, without a fault proxy.

Rules:

* ``rate`` is a percentage, 0..100, of attempts that fail.
* Listings are never injected (as in Metaflow, whose listings are not retried), nor are
  cleanup tasks (aborting multipart uploads): injection tests transfers.
* Below 100 the last allowed attempt is never injected, so injection alone never fails a
  transfer; at 100 every attempt fails (to test what exhaustion does to a pipeline).
* With a ``seed`` the outcome of an attempt is a pure function of (seed, request, attempt):
  runs are reproducible whatever the scheduling. Without one, it is random.
"""

from __future__ import annotations

import hashlib
import random
from typing import Any

from .tasks import Task
from .transport import NetworkFailure

#: Task kinds that are transfers (see ``handlers.HANDLERS``).
INJECTED_KINDS = frozenset({"get", "head", "put", "mpu_create", "mpu_part", "mpu_complete",
                            "copy", "mpu_part_copy"})


_DRAWS = random.Random()  # not the program's ``random`` (the head start runs in it)


class Injector:
    """Decides which attempts fail. ``rate``: 0..100 (percent); ``seed``: int or ``None``."""

    def __init__(self, rate: float, seed: int | None = None) -> None:
        self.rate = float(rate)
        self.seed = seed

    @classmethod
    def from_init(cls, spec: Any) -> Injector | None:
        """The injector described by ``WorkerInit.inject`` (``(rate, seed)`` or ``None``);
        ``None`` when injection is off."""
        if not spec or not spec[0]:
            return None
        return cls(spec[0], spec[1])

    def _draw(self, task: Task, attempt: int) -> float:
        """A number in [0, 100): deterministic per request and attempt with a seed."""
        if self.seed is None:
            return _DRAWS.uniform(0.0, 100.0)
        a = task.args
        ident = "\0".join(str(x) for x in (
            self.seed, task.kind, task.bucket, task.key, getattr(a, "range", None),
            getattr(a, "part", None), getattr(a, "offset", None), attempt))
        digest = hashlib.blake2b(ident.encode("utf-8", "surrogatepass"), digest_size=8).digest()
        return int.from_bytes(digest, "big") / 2**64 * 100.0

    def check(self, task: Task, attempt: int, max_attempts: int) -> None:
        """Raise ``NetworkFailure("InjectedFailure")`` if attempt ``attempt`` (0-based) of
        ``task`` is to fail."""
        if task.kind not in INJECTED_KINDS:
            return
        if self.rate < 100 and attempt >= max_attempts - 1:
            return
        if self._draw(task, attempt) < self.rate:
            raise NetworkFailure("InjectedFailure",
                                 f"injected failure (inject_failure_rate={self.rate:g})")
