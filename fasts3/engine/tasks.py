"""The wire schema between the parent and its worker processes.

Frames are a 4-byte big-endian length followed by a pickle. The parent sends
``("init", WorkerInit)``, ``("tasks", [Task, ...])``, ``("creds", Credentials)`` and
``("stop",)``; a worker answers with lists of ``("r", task_id, value, error)`` (one per
finished task; ``value`` a :class:`GetResult` for a GET, a small dict otherwise) and
``("p", nbytes)`` (bytes moved since the last report), one pickle per frame for all the
results it has ready. ``error`` is ``None`` or an :data:`ErrorInfo` ``(status, code, message,
transient, attempts)``.

Every task carries one typed argument record (a ``NamedTuple`` per task kind, below); the
record's type names the handler (``handlers.HANDLERS``) that runs it. Offsets and lengths are
bytes; ``since`` values are epoch seconds (wall clock).
"""

from __future__ import annotations

import pickle
import struct
from typing import IO, Any, NamedTuple

_LEN = struct.Struct(">I")

ErrorInfo = tuple[int, str, str, bool, int]
"""``(HTTP status or 0, S3 error code, message, transient, attempts made)``."""


class GetArgs(NamedTuple):
    """GET (a range of) an object into ``path``.

    ``range``: the Range header or ``None``; ``base``: the object offset of the file's byte 0
    (``None``: learn it from the answer, for suffix ranges); ``want_end``: exclusive object
    offset the whole download stops at (``None``: the object's end); ``first``: this request
    sizes and creates the file; ``whole``: the range is ours, not the user's (on 416 fetch
    without it: an empty object); ``final``: rename ``path`` there if this answer completes
    the download; ``part``: with ``whole`` and no range, keep at most this many bytes of a
    larger object (the parent fetches the rest as parts); ``if_match``: ETag pinning the
    parts to the first answer's object; ``expect``: ``(offset, length)`` a part's answer must
    have."""

    path: str
    first: bool = False
    final: str | None = None
    range: str | None = None
    base: int | None = 0
    want_end: int | None = None
    whole: bool = False
    part: int | None = None
    if_match: str | None = None
    expect: tuple[int, int] | None = None
    version_id: str | None = None


class HeadArgs(NamedTuple):
    """HEAD an object. ``copy_source``: the HEAD is of a copy's source (the copy op tells
    the two HEADs it sends apart by this)."""

    version_id: str | None = None
    copy_source: bool = False


class PutArgs(NamedTuple):
    """One-request PUT of ``body`` (in the task) or ``length`` bytes of the file ``path`` at
    ``offset``. ``headers``: content type, metadata, encryption, storage class."""

    headers: dict[str, str]
    body: bytes | None = None
    path: str | None = None
    offset: int = 0
    length: int = 0


class MpuCreateArgs(NamedTuple):
    """CreateMultipartUpload. ``part_checksums``: parts will carry checksums (declare the
    algorithm); ``since``: wall time of the first try (a retry aborts uploads of the key
    created since then by lost tries, see ``orphans.py``)."""

    headers: dict[str, str]
    since: float | None = None
    part_checksums: bool = False


class MpuPartArgs(NamedTuple):
    """UploadPart ``part`` (1-based) from ``length`` bytes of ``path`` at ``offset``."""

    upload_id: str
    part: int
    path: str
    offset: int
    length: int


class MpuCompleteArgs(NamedTuple):
    """CompleteMultipartUpload. ``parts``: ``[(number, etag, crc32 or None)]`` in order;
    ``size``: total bytes (a retry that finds the upload gone accepts an object of that size
    at the key: a lost try completed it)."""

    upload_id: str
    parts: list[tuple[Any, ...]]
    size: int | None = None


class MpuAbortArgs(NamedTuple):
    """AbortMultipartUpload (an upload already gone counts as aborted)."""

    upload_id: str


class MpuAbortKeyArgs(NamedTuple):
    """Abort the key's uploads started since ``since`` (creations whose answer was lost)."""

    since: float


class ListArgs(NamedTuple):
    """One ListObjectsV2 page of ``prefix`` (one level with a ``delimiter``)."""

    prefix: str = ""
    delimiter: str | None = None
    token: str | None = None


class DeleteArgs(NamedTuple):
    """DeleteObjects of up to 1000 ``keys`` of the task's bucket."""

    keys: list[str]


class CopySource(NamedTuple):
    """The source object of a server-side copy."""

    bucket: str
    key: str
    version: str | None = None


class CopyArgs(NamedTuple):
    """CopyObject from ``source``; ``size`` (source bytes, may be None) only for progress."""

    source: CopySource
    headers: dict[str, str]
    size: int | None = None


class PartCopyArgs(NamedTuple):
    """UploadPartCopy: part ``part`` from ``length`` source bytes at ``offset``."""

    upload_id: str
    part: int
    source: CopySource
    offset: int
    length: int


TaskArgs = (GetArgs | HeadArgs | PutArgs | MpuCreateArgs | MpuPartArgs | MpuCompleteArgs
            | MpuAbortArgs | MpuAbortKeyArgs | ListArgs | DeleteArgs | CopyArgs | PartCopyArgs)

KIND_OF: dict[type, str] = {
    GetArgs: "get", HeadArgs: "head", PutArgs: "put", MpuCreateArgs: "mpu_create",
    MpuPartArgs: "mpu_part", MpuCompleteArgs: "mpu_complete", MpuAbortArgs: "mpu_abort",
    MpuAbortKeyArgs: "mpu_abort_key", ListArgs: "list", DeleteArgs: "delete",
    CopyArgs: "copy", PartCopyArgs: "mpu_part_copy",
}
"""The short name of each task kind (logs, the cleanup set, per-kind decisions in ops)."""


class GetPlan(NamedTuple):
    """What the first answer of a download that continues in parts tells as soon as its
    head arrives (a worker's ``("e", task_id, GetPlan)`` record, before the task's result):
    ``start``/``length`` of the bytes this answer will keep, ``base`` and ``end`` as in
    :class:`GetResult`, the ``etag`` the other parts are pinned to (``None`` if absent). The
    parent asks for the other parts at once, while this answer's body is still arriving."""

    start: int
    length: int
    base: int
    end: int
    etag: str | None


class GetResult(NamedTuple):
    """What a GET reports (compact: one small tuple per object). ``start``: object offset of
    the first byte received; ``length``: bytes kept; ``total``: object size (``None`` if the
    answer did not say); ``base``: object offset of the file's byte 0; ``end``: exclusive
    object offset the download stops at; ``complete``: the file holds the whole download
    (committed if it had a final name); ``headers``: the object's headers (first answer, or
    the part at offset 0), else ``None``."""

    start: int
    length: int
    total: int | None
    base: int
    end: int
    complete: bool
    headers: dict[str, str] | None


class WorkerInit(NamedTuple):
    """What a worker is started with: where requests go, who signs them, how they retry.
    ``retry`` is ``(max_attempts, backoff_base s, backoff_max s)``; timeouts in seconds;
    ``in_flight`` is the most requests the worker keeps in flight (its event loop's limit,
    cut on throttling)."""

    endpoint: Any  # transport.EndpointSpec
    credentials: Any  # sigv4.Credentials
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    retry: tuple[int, float, float] = (5, 0.1, 5.0)
    verify_checksums: str = "fast"
    upload_checksums: str = "crc32"
    in_flight: int = 128
    inject: tuple[float, int | None] | None = None  # (rate %, seed): see inject.py


class TaskSpec(NamedTuple):
    """A task before the pool gives it an id."""

    bucket: str
    key: str
    args: TaskArgs

    @property
    def kind(self) -> str:
        return KIND_OF[type(self.args)]


class Task(NamedTuple):
    """One HTTP-level job for a worker. ``attempt`` counts retries inside the worker (0 on
    the first try); ``rerun`` counts how often the task was re-sent after its worker died."""

    id: int
    bucket: str
    key: str
    args: TaskArgs
    attempt: int = 0
    rerun: int = 0

    @property
    def kind(self) -> str:
        return KIND_OF[type(self.args)]

    @property
    def retried(self) -> bool:
        """Whether an earlier try of this task may have reached the server unanswered."""
        return bool(self.attempt or self.rerun)


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
