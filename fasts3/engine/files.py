"""The one layer that creates, finishes and discards downloaded files.

A download is written to a temp file (``.<name>.part``, mode 0600) and appears under its final
name only by :func:`commit` (an atomic rename) once every byte is in; a failed download is
removed by :func:`discard`. The worker commits an object that arrived in one answer (no extra
round trip to the parent); the parent's :class:`~fasts3.engine.plan.GetOp` commits one fetched
in parts, when the last part is in. :func:`place` moves a committed file to a user's
destination (the CLI), also across file systems.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import tempfile

STAGING_PREFIX = "fasts3."
_STAGING_NAME = re.compile(r"fasts3\.[a-z0-9_]{8}\Z")


def make_staging_dir(parent: str) -> str:
    """Create a fresh temp directory (mode 0700) in ``parent`` (made if missing); return
    its absolute path."""
    parent = os.path.abspath(parent)
    os.makedirs(parent, exist_ok=True)
    return tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=parent)


def is_staging_dir(name: str) -> bool:
    """Whether a directory name is one of our temp directories (e.g. left behind by a process
    that was killed): such a directory is never uploaded or synced as user data."""
    return bool(_STAGING_NAME.match(name))


def check_space(path: str, need: int) -> None:
    """Raise ``OSError(ENOSPC)`` if ``path``'s directory has less than ``need`` bytes free."""
    if need <= 0:
        return
    directory = os.path.dirname(path) or "."
    st = os.statvfs(directory)
    free = st.f_bavail * st.f_frsize
    if free < need:
        raise OSError(errno.ENOSPC, f"Not enough free space for this object ({need} bytes "
                      f"needed, {free} free)", directory)


def create(path: str, size: int) -> int:
    """Create the temp file of a download of ``size`` bytes (free space checked, the file
    preallocated to its final size so parts can land at their offsets); return its fd."""
    check_space(path, size)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        if size > 0:
            os.ftruncate(fd, size)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_part(path: str) -> int:
    """Open an existing temp file to write a part into (at its offset, with ``pwrite``)."""
    return os.open(path, os.O_WRONLY)


def commit(temp: str, final: str) -> None:
    """Move a complete download into place atomically (same directory: a rename)."""
    os.replace(temp, final)


def discard(*paths: str) -> None:
    """Remove the files of a failed or cancelled download (missing ones are fine)."""
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def place(staged: str, dst: str, mode: int | None = None) -> None:
    """Move a committed download to ``dst`` atomically: a rename on the same file system, else
    a copy to a hidden temp name beside ``dst`` and a rename. ``mode``: permissions to set."""
    parent = os.path.dirname(os.path.abspath(dst))
    os.makedirs(parent, exist_ok=True)
    try:
        os.replace(staged, dst)
    except OSError as e:
        if e.errno != errno.EXDEV:
            raise
        tmp = os.path.join(parent, f".{os.path.basename(dst)}.fasts3-{os.getpid()}")
        try:
            shutil.move(staged, tmp)
            os.replace(tmp, dst)
        except BaseException:
            discard(tmp)
            raise
    if mode is not None:
        os.chmod(dst, mode)
