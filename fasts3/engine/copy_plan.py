"""Server-side copies: :class:`CopyOp`, one op per ``source -> destination`` pair.

* Sources below ``multipart_threshold`` are copied with one CopyObject request (S3 keeps the
  source's content type and metadata).
* Larger sources (CopyObject's limit is 5 GiB) are copied with a multipart upload whose parts
  are UploadPartCopy requests of ``part_size`` bytes spread over the workers; the source's
  content type and ``x-amz-meta-*`` headers (from a HEAD) are given to the new upload. Any
  failure aborts the upload (no orphan uploads).
* When the source size is unknown, a HEAD learns it first, except when the threshold is at
  S3's limit: then CopyObject is tried directly and a "source too large" answer falls back
  to HEAD + multipart.
* ``overwrite=False`` HEADs the destination first and leaves an existing object alone.

Like every op, a CopyOp never raises: failures end up in ``op.error``.
"""

from __future__ import annotations

from typing import Any

from ..errors import S3NotFound
from .plan import _Op
from .retry import make_error
from .tasks import (
    CopyArgs,
    CopySource,
    HeadArgs,
    MpuAbortArgs,
    MpuCompleteArgs,
    MpuCreateArgs,
    PartCopyArgs,
    Task,
    TaskSpec,
)

MiB = 1 << 20
GiB = 1 << 30
MAX_COPY_SIZE = 5 * GiB  # CopyObject's limit
MIN_PART = 5 * MiB
MAX_PARTS = 10_000
DEFAULT_COPY_PART = 256 * MiB
_SOURCE_HEADERS = ("content-type", "content-encoding", "cache-control", "content-disposition",
                   "content-language")


def copy_part_size(size: int, part_size: int | None = None) -> int:
    """Part size for a multipart copy of ``size`` bytes: ``part_size`` (default 256 MiB),
    at least 5 MiB and large enough that the copy needs at most 10,000 parts."""
    part = max(part_size or DEFAULT_COPY_PART, MIN_PART, -(-size // MAX_PARTS))
    return min(part, MAX_COPY_SIZE)


class CopyOp(_Op):
    """Copy ``src_bucket/src_key`` (optionally one ``src_version``) to ``bucket/key``.

    ``size`` is the source size when known (e.g. from a listing), else ``None``. ``headers``
    are extra destination headers (encryption, storage class). After success ``copied`` is
    True (False when ``overwrite=False`` found the destination), ``etag`` and
    ``version_id`` describe the new object and ``size`` is the source size if it was learned.
    """

    def __init__(self, url: str, bucket: str, key: str, src_url: str, src_bucket: str,
                 src_key: str, size: int | None = None, src_version: str | None = None,
                 headers: dict[str, str] | None = None, overwrite: bool = True,
                 multipart_threshold: int = MAX_COPY_SIZE, part_size: int | None = None) -> None:
        super().__init__(url, bucket, key)
        self.src_url = src_url
        self.src = CopySource(src_bucket, src_key, src_version)
        self.size = size
        self.headers = dict(headers or {})
        self.overwrite = overwrite
        self.multipart_threshold = multipart_threshold
        self.part_size = part_size
        self.copied = False
        self.etag: str | None = None
        self.version_id: str | None = None
        self.upload_id: str | None = None
        self._etags: dict[int, str] = {}
        self._parts_left = 0
        self._blind = False  # CopyObject sent without knowing the size

    # -- task specs --------------------------------------------------------------------
    def _head_source(self) -> list[TaskSpec]:
        self.outstanding += 1
        return [TaskSpec(self.src.bucket, self.src.key,
                         HeadArgs(self.src.version, copy_source=True))]

    def _copy(self) -> list[TaskSpec]:
        return [self.spec(CopyArgs(self.src, self.headers, self.size))]

    def _begin(self) -> list[TaskSpec]:
        if self.size is None:
            if self.multipart_threshold >= MAX_COPY_SIZE:
                self._blind = True
                return self._copy()
            return self._head_source()
        if self.size < self.multipart_threshold:
            return self._copy()
        return self._head_source()

    def _multipart(self, source_headers: dict[str, str]) -> list[TaskSpec]:
        headers = {k: v for k, v in source_headers.items()
                   if k in _SOURCE_HEADERS or k.startswith("x-amz-meta-")}
        headers.update(self.headers)
        return [self.spec(MpuCreateArgs(headers))]

    def _parts(self) -> list[TaskSpec]:
        size = self.size or 0
        part = copy_part_size(size, self.part_size)
        specs = []
        for i, off in enumerate(range(0, size, part), start=1):
            specs.append(self.spec(PartCopyArgs(self.upload_id or "", i, self.src, off,
                                                min(part, size - off))))
        self._parts_left = len(specs)
        return specs

    # -- the state machine -------------------------------------------------------------
    def start(self) -> list[TaskSpec]:
        if not self.overwrite:
            return [self.spec(HeadArgs())]
        return self._begin()

    def on_result(self, task: Task, value: Any, error: tuple | None) -> list[TaskSpec]:
        self.received()
        kind = task.kind
        if kind == "mpu_abort":
            self.done = self.outstanding == 0
            return []
        if kind == "mpu_create" and value is not None and (self.cancelled or self.done):
            self.upload_id = value["upload_id"]
            return [self.spec(MpuAbortArgs(self.upload_id))]
        if self.done:
            return self._abort_when_idle()
        source_head = isinstance(task.args, HeadArgs) and task.args.copy_source
        if error is not None:
            # A missing key on a copy is the source's (the destination need not exist).
            blame_source = source_head or (kind in ("copy", "mpu_part_copy")
                                           and error[1] in ("NoSuchKey", "NoSuchVersion"))
            err = make_error(error, self.src_url if blame_source else self.url)
            if kind == "head" and not source_head and isinstance(err, S3NotFound):
                return self._begin()  # overwrite=False and the destination is free
            if kind == "copy" and self._blind and _too_large(error):
                self._blind = False
                return self._head_source()
            self.fail(err)
            return self._abort_when_idle()
        if kind == "head" and not source_head:  # destination exists, overwrite=False
            self.done = True
        elif source_head:
            headers = value["headers"]
            self.size = int(headers.get("content-length", 0))
            if self.size < self.multipart_threshold:
                return self._copy()
            return self._multipart(headers)
        elif kind == "copy" or kind == "mpu_complete":
            self.copied = True
            self.etag = value.get("etag", self.etag)
            self.version_id = value.get("version_id")
            self.done = True
        elif kind == "mpu_create":
            self.upload_id = value["upload_id"]
            return self._parts()
        elif kind == "mpu_part_copy":
            self._etags[value["part"]] = value["etag"]
            self._parts_left -= 1
            if self._parts_left == 0:
                return [self.spec(MpuCompleteArgs(self.upload_id or "",
                                                  sorted(self._etags.items())))]
        return []

    def _abort_when_idle(self) -> list[TaskSpec]:
        """After a failure: abort the upload once no part is still in flight."""
        if self.upload_id and self.outstanding == 0:
            uid, self.upload_id = self.upload_id, None
            self.done = False
            return [self.spec(MpuAbortArgs(uid))]
        return []

    def cancel(self) -> list[TaskSpec]:
        super().cancel()
        return self._abort_when_idle()


def _too_large(error: tuple) -> bool:
    """Is this CopyObject failure S3's "copy source larger than 5 GiB" answer?"""
    status, code, message = error[0], error[1], (error[2] or "").lower()
    return status == 400 and code in ("InvalidRequest", "EntityTooLarge") and "larg" in message
