"""Upload ops: :class:`PutOp` — one PUT, or above the threshold a multipart upload whose parts
spread over the workers; any failure aborts the upload (no orphan uploads, also after an
interrupt: see ``orphans.py``). ``overwrite=False`` HEADs first.

Ops never raise: a failure is stored in ``op.error`` (an :class:`~fasts3.errors.S3Error`).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from ..errors import S3Error, S3NotFound
from .plan import _Op
from .retry import make_error
from .tasks import (
    HeadArgs,
    MpuAbortArgs,
    MpuAbortKeyArgs,
    MpuCompleteArgs,
    MpuCreateArgs,
    MpuPartArgs,
    PutArgs,
    Task,
    TaskSpec,
)

log = logging.getLogger("fasts3.plan")


class PutOp(_Op):
    """Upload one object from ``body`` (bytes) or ``path``.

    ``multipart_size`` is the part size to use, or ``None`` for a single PUT. The
    checksum sent with each body is the workers' ``TransferConfig.upload_checksums``.
    After success ``uploaded`` is True (False when skipped by ``overwrite=False``).

    A multipart upload that fails or is cancelled is aborted once none of its tasks is in
    flight; if the batch is interrupted (:meth:`abandon`) it is aborted at once, and an upload
    whose creation was in flight is found by listing the key's uploads started since then.
    """

    def __init__(self, url, bucket, key, size, headers, body=None, path=None, overwrite=True,
                 multipart_size=None) -> None:
        super().__init__(url, bucket, key)
        self.size = size
        self.headers = headers
        self.body = body
        self.path = path
        self.overwrite = overwrite
        self.multipart_size = multipart_size
        self.uploaded = False
        self.upload_id: str | None = None  # created and not yet completed or aborted
        self._creating_since: float | None = None  # wall time of an unanswered mpu_create
        self._aborting = False
        self._etags: dict[int, tuple[str, str | None]] = {}  # part -> (etag, crc32)
        self._parts_left = 0

    def start(self) -> list[TaskSpec]:
        if not self.overwrite:
            return [self.spec(HeadArgs())]
        return self._upload()

    def _upload(self) -> list[TaskSpec]:
        if self.multipart_size is None:
            if self.body is not None:
                return [self.spec(PutArgs(self.headers, body=self.body))]
            return [self.spec(PutArgs(self.headers, path=self.path, length=self.size))]
        self._creating_since = time.time()
        return [self.spec(MpuCreateArgs(self.headers, self._creating_since,
                                        part_checksums=True))]

    def _parts(self) -> list[TaskSpec]:
        specs = []
        part = self.multipart_size
        for i, off in enumerate(range(0, self.size, part), start=1):
            specs.append(self.spec(MpuPartArgs(self.upload_id or "", i, self.path or "", off,
                                               min(part, self.size - off))))
        self._parts_left = len(specs)
        return specs

    def on_result(self, task: Task, value: Any, error: tuple | None) -> list[TaskSpec]:
        self.received()
        kind = task.kind
        if kind in ("mpu_abort", "mpu_abort_key"):
            if kind == "mpu_abort":
                self._aborting = False
                self.upload_id = None
            if error is not None:
                log.warning("could not abort the multipart upload of %s: %s", self.url, error[2])
            return []
        if kind == "mpu_create":
            self._creating_since = None
            if value is not None:
                self.upload_id = value["upload_id"]
        elif kind == "mpu_complete" and error is None:
            self.upload_id = None
        if self.done:  # failed or cancelled: only clean up
            return self._abort_when_idle()
        if error is not None:
            err = make_error(error, self.url)
            if kind == "head" and isinstance(err, S3NotFound):
                return self._upload()
            self.fail(err)
            return self._abort_when_idle()
        if kind == "head":  # exists and overwrite=False: leave it alone
            self.done = True
        elif kind == "put" or kind == "mpu_complete":
            self.uploaded = True
            self.done = True
        elif kind == "mpu_create":
            return self._parts()
        elif kind == "mpu_part":
            self._etags[value["part"]] = (value["etag"], value.get("checksum"))
            self._parts_left -= 1
            if self._parts_left == 0:
                parts = [(n, etag, crc) for n, (etag, crc) in sorted(self._etags.items())]
                return [self.spec(MpuCompleteArgs(self.upload_id or "", parts, self.size))]
        return []

    def _abort_when_idle(self) -> list[TaskSpec]:
        """After a failure: abort the upload once no task of it is still in flight."""
        if self.upload_id and self.outstanding == 0 and not self._aborting:
            self._aborting = True
            return [self.spec(MpuAbortArgs(self.upload_id))]
        return []

    def forget(self, task: Task) -> None:
        super().forget(task)
        if task.kind == "mpu_abort":
            self._aborting = False

    def cancel(self) -> list[TaskSpec]:
        super().cancel()
        return self._abort_when_idle()

    def abandon(self) -> list[TaskSpec]:
        self.outstanding = 0
        if not self.done:
            self.cancelled = self.done = True
            self.error = S3Error("Interrupted", self.url, "Cancelled")
        specs = []
        if self.upload_id:
            self._aborting = True
            specs.append(self.spec(MpuAbortArgs(self.upload_id)))
        if self._creating_since is not None:
            specs.append(self.spec(MpuAbortKeyArgs(self._creating_since)))
            self._creating_since = None
        return specs
