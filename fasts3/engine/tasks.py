"""The wire format between the parent and its worker processes.

Frames are a 4-byte big-endian length followed by a pickle. The parent sends
``("init", dict)``, ``("tasks", [Task, ...])``, ``("creds", Credentials)`` and ``("stop",)``;
a worker answers with lists of ``("r", task_id, value, error)`` (one per finished task) and
``("p", nbytes)`` (bytes moved since the last report). ``error`` is ``None`` or
``(status, code, message, transient, attempts)``.
"""

from __future__ import annotations

import pickle
import struct
from typing import IO, Any, NamedTuple

_LEN = struct.Struct(">I")


class Task(NamedTuple):
    """One HTTP-level job for a worker. ``kind`` is one of the handlers in ``worker.py``
    (``get``, ``head``, ``put``, ``mpu_create``, ``mpu_part``, ``mpu_complete``,
    ``mpu_abort``, ``list``, ``delete``); ``args`` holds that kind's parameters."""

    id: int
    kind: str
    bucket: str
    key: str
    args: dict[str, Any]


class TaskSpec(NamedTuple):
    """A task before the pool gives it an id."""

    kind: str
    bucket: str
    key: str
    args: dict[str, Any]


ErrorInfo = tuple[int, str, str, bool, int]


def write_frame(stream: IO[bytes], obj: object) -> None:
    """Pickle ``obj`` and write it as one frame, then flush."""
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_LEN.pack(len(data)) + data)
    stream.flush()


def read_frame(stream: IO[bytes]) -> Any:
    """Read one frame; ``None`` at end of stream (the peer exited)."""
    head = stream.read(4)
    if len(head) < 4:
        return None
    (size,) = _LEN.unpack(head)
    data = stream.read(size)
    if len(data) < size:
        return None
    return pickle.loads(data)
