"""SIGTERM (a scheduler's eviction, ``timeout``, ``kill``) cleans up like Ctrl-C.

Python's default action for SIGTERM kills the process at once: no ``finally`` block runs, so
``.part`` files, the temp directory and open multipart uploads would stay behind. While an
:class:`~fasts3.S3` context is open (and while the ``fasts3`` command runs), SIGTERM instead
raises :class:`Terminated` (a ``SystemExit`` with code 143 = 128 + 15) in the main thread, so
the engine's interrupt path runs (workers killed, uploads aborted, temp files removed) and the
program then exits with 143, as it would have.

This happens only when SIGTERM still has its default action: a program that installed its own
handler keeps it, and nothing is changed outside the main thread (Python delivers signals
there only). The previous handler is restored when the last open context closes.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

log = logging.getLogger("fasts3")
EXIT_TERMINATED = 128 + signal.SIGTERM

_lock = threading.Lock()
_holders = 0
_installed = False


class Terminated(SystemExit):
    """SIGTERM arrived while fasts3 was working; ``code`` is 143."""

    def __init__(self) -> None:
        super().__init__(EXIT_TERMINATED)


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    log.warning("SIGTERM received: cleaning up and exiting")
    raise Terminated()


def hold() -> bool:
    """Turn SIGTERM into :class:`Terminated` until the matching :func:`release` (nested holds
    are counted). Returns whether this call holds (only the main thread can)."""
    global _holders, _installed
    if threading.current_thread() is not threading.main_thread():
        return False
    with _lock:
        if _holders == 0:
            try:
                _installed = signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
                if _installed:
                    signal.signal(signal.SIGTERM, _raise_terminated)
            except (ValueError, OSError):  # no signals here (e.g. an embedded interpreter)
                _installed = False
        _holders += 1
    return True


def release() -> None:
    """Undo one :func:`hold`; the last one restores SIGTERM's default action."""
    global _holders, _installed
    with _lock:
        if _holders == 0:
            return
        _holders -= 1
        if _holders == 0 and _installed:
            _installed = False
            try:
                if signal.getsignal(signal.SIGTERM) is _raise_terminated:
                    signal.signal(signal.SIGTERM, signal.SIG_DFL)
            except (ValueError, OSError):
                pass
