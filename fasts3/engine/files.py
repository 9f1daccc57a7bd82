"""The one layer that creates, finishes and discards downloaded files.

A download is written to a temp file (``.<name>.part``, mode 0600) and appears under its final
name only by :func:`commit` (an atomic rename) once every byte is in; a failed download is
removed by :func:`discard`. A small download that arrives in one answer (at most
:data:`UNNAMED_MAX` bytes) is written to an unnamed file instead (Linux ``O_TMPFILE``,
:func:`create_unnamed`) and linked under its final name when complete
(:func:`commit_unnamed`; an existing file there is replaced atomically, as by the rename): no
name exists before, nothing is left if the worker dies, and the directory is locked once per
file instead of twice (create, rename) -- where many workers fill one directory that lock is
contended. Elsewhere it falls back to the temp file. The worker commits an object that
arrived in one answer (no extra round trip to the parent); the parent's
:class:`~fasts3.engine.plan.GetOp` commits one fetched in parts, when the last part is in.
:func:`place` moves a committed file to a user's destination (the CLI), also across file
systems.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import tempfile
import time

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


def _free(directory: str) -> int:
    st = os.statvfs(directory)
    return st.f_bavail * st.f_frsize


def check_space(path: str, need: int) -> None:
    """Raise ``OSError(ENOSPC)`` if ``path``'s directory has less than ``need`` bytes free."""
    if need <= 0:
        return
    directory = os.path.dirname(path) or "."
    free = _free(directory)
    if free < need:
        raise _no_space(need, free, directory)


def _no_space(need: int, free: int, directory: str) -> OSError:
    return OSError(errno.ENOSPC, f"Not enough free space for this object ({need} bytes "
                   f"needed, {free} free)", directory)


class SpaceCheck:
    """Free-space checks for a stream of downloads without a ``statvfs`` per object: the
    free space of a directory is read at most every ``interval`` seconds and what each
    download will take is subtracted from that estimate in between. A download of at least
    ``large`` bytes, or one the estimate says does not fit, reads it again first, so a
    refusal always rests on a fresh number. (Other writers can still fill the disk between
    two reads: the write then fails with ENOSPC, which the caller reports the same way.)"""

    def __init__(self, interval: float = 1.0, large: int = 8 << 20) -> None:
        self.interval = interval
        self.large = large
        self._dirs: dict[str, tuple[float, int]] = {}

    def check(self, path: str, need: int) -> None:
        """Raise ``OSError(ENOSPC)`` if ``path``'s directory cannot take ``need`` bytes."""
        if need <= 0:
            return
        directory = os.path.dirname(path) or "."
        now = time.monotonic()
        seen = self._dirs.get(directory)
        fresh = seen is None or now - seen[0] > self.interval or need >= self.large or \
            seen[1] < need
        if fresh:
            seen = (now, _free(directory))
        assert seen is not None
        if seen[1] < need:
            self._dirs[directory] = seen
            raise _no_space(need, seen[1], directory)
        self._dirs[directory] = (seen[0], seen[1] - need)


def create(path: str, size: int, preallocate: bool = True,
           space: SpaceCheck | None = None) -> int:
    """Create the temp file of a download of ``size`` bytes and return its fd: free space
    checked (by ``space``, else with one ``statvfs``) and, with ``preallocate``, the file
    grown to its final size so parts can land at their offsets (a download that arrives in
    one answer is written in order and needs neither). A file that exists already (a retry
    of the first request, whose parts may be landing) keeps its bytes and is not checked
    again."""
    if not os.path.exists(path):
        if space is not None:
            space.check(path, size)
        else:
            check_space(path, size)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        if size > 0 and preallocate:
            os.ftruncate(fd, size)
    except BaseException:
        os.close(fd)
        raise
    return fd


UNNAMED_MAX = 1 << 20
_unnamed_ok = hasattr(os, "O_TMPFILE") and os.path.isdir("/proc/self/fd")


def create_unnamed(final: str, size: int, space: SpaceCheck | None = None) -> int:
    """An unnamed file (``O_TMPFILE``, mode 0600) in ``final``'s directory for a download of
    ``size`` bytes (free space checked as :func:`create` does); ``-1`` where the platform or
    file system has none (then use :func:`create`)."""
    global _unnamed_ok
    if not _unnamed_ok:
        return -1
    if space is not None:
        space.check(final, size)
    else:
        check_space(final, size)
    try:
        return os.open(os.path.dirname(final) or ".", os.O_TMPFILE | os.O_WRONLY, 0o600)
    except OSError as e:
        if e.errno in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
            _unnamed_ok = False  # this file system cannot: named temp files from now on
            return -1
        raise


def commit_unnamed(fd: int, final: str, temp: str) -> None:
    """Give a complete unnamed file (:func:`create_unnamed`) its final name, atomically:
    ``linkat`` of ``/proc/self/fd/<fd>``; if ``final`` exists (a destination written
    again), linked as ``temp`` (the download's own temp name) and renamed over it."""
    global _proc_fd
    if _proc_fd is None or _proc_fd[0] != os.getpid():
        _proc_fd = (os.getpid(), os.open("/proc/self/fd", os.O_RDONLY | os.O_DIRECTORY))
    # a dir fd makes os.link call linkat(..., AT_SYMLINK_FOLLOW) (plain link() would not)
    try:
        os.link(str(fd), final, src_dir_fd=_proc_fd[1])
        return
    except FileExistsError:
        pass
    discard(temp)  # left by an earlier try
    os.link(str(fd), temp, src_dir_fd=_proc_fd[1])
    try:
        os.replace(temp, final)
    except BaseException:
        discard(temp)
        raise


# (pid, fd of that process's /proc/self/fd). No lock: two threads committing their first
# unnamed files at once may each open one (one descriptor is then left open, harmless), and a
# lock could be inherited held by a forked child.
_proc_fd: tuple[int, int] | None = None


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
