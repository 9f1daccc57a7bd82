"""The steps of a multipart upload as separate ops, for an upload whose parts arrive over time
(``S3.open(key, "wb")``, ``fasts3/writer.py``): the caller creates the upload, feeds one
:class:`PartOp` per part to a stream as each part is staged, then completes or aborts it.
(:class:`~fasts3.engine.upload_plan.PutOp` does all of it in one op when the whole body is
known up front.)

Each op sends one task. Ops never raise: a failure is stored in ``op.error``.
"""

from __future__ import annotations

import time
from typing import Any

from .plan import _Op
from .tasks import (
    MpuAbortArgs,
    MpuAbortKeyArgs,
    MpuCompleteArgs,
    MpuCreateArgs,
    MpuPartArgs,
    Task,
    TaskArgs,
    TaskSpec,
)


class _OneTask(_Op):
    """An op of a single task; ``value`` is the task's result (also when it arrives after
    the op was cancelled: a late CreateMultipartUpload answer still names an upload to
    abort)."""

    def __init__(self, url: str, bucket: str, key: str, args: TaskArgs) -> None:
        super().__init__(url, bucket, key)
        self.args = args
        self.value: dict[str, Any] | None = None

    def start(self) -> list[TaskSpec]:
        return [self.spec(self.args)]

    def on_result(self, task: Task, value: Any, error: tuple | None) -> list[TaskSpec]:
        self.received()
        if type(task.args) is not type(self.args):  # a cleanup task sent by abandon()
            return []
        if error is None:
            self.value = value
        elif not self.done:
            self.fail(error)
        self.done = True
        return []


class CreateOp(_OneTask):
    """CreateMultipartUpload with ``headers`` (content type, metadata, encryption, put
    options); parts will carry checksums. After success ``upload_id`` is set. If the batch is
    interrupted before the answer came, uploads of the key created since the request are
    aborted (see ``orphans.py``)."""

    def __init__(self, url: str, bucket: str, key: str, headers: dict[str, str]) -> None:
        self.since = time.time()
        super().__init__(url, bucket, key, MpuCreateArgs(headers, self.since,
                                                         part_checksums=True))

    @property
    def upload_id(self) -> str | None:
        return None if self.value is None else self.value["upload_id"]

    def abandon(self) -> list[TaskSpec]:
        unanswered = self.value is None and self.outstanding > 0
        specs = super().abandon()
        if unanswered:
            specs.append(self.spec(MpuAbortKeyArgs(self.since)))
        return specs


class PartOp(_OneTask):
    """UploadPart ``number`` (1-based) from the first ``length`` bytes of the file ``path``.
    After success ``etag`` and ``checksum`` (CRC32 sent, or ``None``) are set."""

    def __init__(self, url: str, bucket: str, key: str, upload_id: str, number: int,
                 path: str, length: int) -> None:
        super().__init__(url, bucket, key, MpuPartArgs(upload_id, number, path, 0, length))
        self.number = number
        self.path = path
        self.length = length

    @property
    def etag(self) -> str | None:
        return None if self.value is None else self.value["etag"]

    @property
    def checksum(self) -> str | None:
        return None if self.value is None else self.value.get("checksum")


class CompleteOp(_OneTask):
    """CompleteMultipartUpload of ``parts`` (``[(number, etag, crc32 or None)]`` in order),
    ``size`` bytes in all. Interrupted before its answer, it aborts the upload (an upload
    that did complete makes the abort a harmless 404)."""

    def __init__(self, url: str, bucket: str, key: str, upload_id: str,
                 parts: list[tuple[Any, ...]], size: int) -> None:
        super().__init__(url, bucket, key, MpuCompleteArgs(upload_id, parts, size))
        self.upload_id = upload_id

    def abandon(self) -> list[TaskSpec]:
        unanswered = not self.done
        specs = super().abandon()
        if unanswered:
            specs.append(self.spec(MpuAbortArgs(self.upload_id)))
        return specs


class AbortOp(_OneTask):
    """AbortMultipartUpload (an upload already gone counts as aborted)."""

    def __init__(self, url: str, bucket: str, key: str, upload_id: str) -> None:
        super().__init__(url, bucket, key, MpuAbortArgs(upload_id))
