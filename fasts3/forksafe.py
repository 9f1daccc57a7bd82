"""What a process forked from one that uses fasts3 does with the descriptors it inherited
from the parent's engines and uploads: it points them at ``/dev/null`` at once.

A forked child (``multiprocessing``, a data loader's workers) gets copies of every descriptor,
and copies act on the parent's files and pipes:

* a child that flushes its copy of a writer's buffered part file (a normal exit does) would
  write bytes the parent has already buffered into the parent's part file a second time;
* a worker process exits when its input pipe closes, which needs every copy closed: a child
  holding one would keep the parent's workers alive after the parent died.

Objects that hold such descriptors register with :func:`track` and list them from
``inherited_fds()``. The rest of a client inherited through ``fork()`` -- the engine, its
streams, ``open()`` files and uploads -- keeps an :class:`Owner`: used in a child it raises
``S3Error`` (code ``ForkedClient``), and closed there it touches nothing.
"""

from __future__ import annotations

import logging
import os
import weakref
from typing import Any, Protocol

from .errors import S3Error

log = logging.getLogger("fasts3")


class Owner:
    """The process that made an object (a client, a stream, a file of it)."""

    __slots__ = ("pid",)

    def __init__(self) -> None:
        self.pid = os.getpid()

    @property
    def here(self) -> bool:
        """Whether the calling process is the owner (not a child forked from it)."""
        return os.getpid() == self.pid

    def check(self) -> None:
        """Raise ``S3Error`` (code ``ForkedClient``) in a process forked from the owner: the
        workers, connections and temp dir are the parent's."""
        if not self.here:
            raise S3Error(f"This S3 client was opened in process {self.pid} and inherited "
                          f"through fork(); open a new S3() in this process (e.g. at the "
                          f"start of a data loader's worker)", code="ForkedClient")


class HoldsDescriptors(Protocol):
    def inherited_fds(self) -> list[int]:
        """The descriptors a forked child must not use (open ones only)."""
        ...


_tracked: weakref.WeakSet[Any] = weakref.WeakSet()


def track(obj: HoldsDescriptors) -> None:
    """Have a forked child point ``obj``'s descriptors at ``/dev/null``."""
    _tracked.add(obj)


def _detach_in_child() -> None:
    try:
        devnull = os.open(os.devnull, os.O_RDWR)
    except OSError:
        return
    try:
        for obj in list(_tracked):
            try:
                for fd in obj.inherited_fds():
                    os.dup2(devnull, fd, inheritable=False)
            except Exception:  # noqa: BLE001 - a fork must not fail for this
                log.debug("detaching inherited descriptors failed", exc_info=True)
    finally:
        os.close(devnull)
    _tracked.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_detach_in_child)
