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

A process forked while a context is open (``multiprocessing``, a data loader's workers) does
not own that context: the child starts with SIGTERM's default action and no holds, and the
inherited context's close in the child releases nothing (holds are tied to the process that
took them).
"""

from __future__ import annotations

import logging
import os
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


def hold() -> int | None:
    """Turn SIGTERM into :class:`Terminated` until the matching :func:`release` (nested holds
    are counted). Returns the token to release with, or ``None`` if this call does not hold
    (only the main thread can)."""
    global _holders, _installed
    if threading.current_thread() is not threading.main_thread():
        return None
    with _lock:
        if _holders == 0:
            try:
                _installed = signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
                if _installed:
                    signal.signal(signal.SIGTERM, _raise_terminated)
            except (ValueError, OSError):  # no signals here (e.g. an embedded interpreter)
                _installed = False
        _holders += 1
    return os.getpid()


def release(token: int | None) -> None:
    """Undo the :func:`hold` that returned ``token``; the last one restores SIGTERM's default
    action. A token from another process (a context inherited through ``fork()``) releases
    nothing."""
    global _holders
    if token is None or token != os.getpid():
        return
    with _lock:
        if _holders == 0:
            return
        _holders -= 1
        if _holders == 0 and _installed:
            _restore_default()


def _restore_default() -> None:
    global _installed
    _installed = False
    try:
        if signal.getsignal(signal.SIGTERM) is _raise_terminated:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
    except (ValueError, OSError):
        pass


def _forget_inherited() -> None:
    """In a forked child: the parent's holds are not the child's (see the module doc)."""
    global _lock, _holders
    _lock = threading.Lock()  # another thread may have held it at fork time
    _holders = 0
    if _installed:
        _restore_default()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_inherited)
