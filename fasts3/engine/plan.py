"""Batch -> tasks: one *op* per user request, a small state machine that emits worker tasks.

* :class:`GetOp` — the first request fetches the first part with a Range header; its
  Content-Range gives the size; the remaining parts (pinned to the first part's ETag with
  If-Match) go to every worker and land by offset in one preallocated temp file, renamed into
  place when all are in.
* uploads: :class:`~fasts3.engine.upload_plan.PutOp` (``upload_plan.py``); server-side copies:
  ``copy_plan.py``.
* :class:`HeadOp`, :class:`ListOp` (follows continuation tokens), :class:`DeleteOp`.

Ops never raise: a failure is stored in ``op.error`` (an :class:`~fasts3.errors.S3Error`).
"""

from __future__ import annotations

import logging
import os
from typing import Any

from ..errors import S3Error, S3NotFound, error_from_response, retries_exhausted
from .tasks import Task, TaskSpec

log = logging.getLogger("fasts3.plan")


def make_error(error: tuple, url: str) -> S3Error:
    """Turn a worker's ``(status, code, message, transient, attempts)`` into an S3Error."""
    status, code, message, transient, attempts = error
    if code == "LocalFileNotFound":
        return S3NotFound(message, url, code, status)
    if transient:
        return retries_exhausted(message, url, code, status, attempts)
    if code in ("NoSpaceLeft", "LocalIOError", "WorkerCrashed", "InternalError"):
        return S3Error(message, url, code, status)
    return error_from_response(status, code, message, url)


class _Op:
    """Shared bookkeeping: ``done``, ``error``, the URL and the task count in flight."""

    def __init__(self, url: str, bucket: str, key: str) -> None:
        self.url = url
        self.bucket = bucket
        self.key = key
        self.done = False
        self.error: S3Error | None = None
        self.cancelled = False
        self.outstanding = 0

    def spec(self, kind: str, **args: Any) -> TaskSpec:
        self.outstanding += 1
        return TaskSpec(kind, self.bucket, self.key, args)

    def received(self) -> None:
        self.outstanding -= 1

    def fail(self, error: tuple | S3Error) -> None:
        if self.error is None:
            self.error = error if isinstance(error, S3Error) else make_error(error, self.url)
        self.done = True

    def forget(self, task: Task) -> None:
        """The pool dropped ``task`` (never sent, or its worker was abandoned): no result
        will come for it."""
        self.outstanding -= 1

    def cancel(self) -> list[TaskSpec]:
        """Another op failed (fail-fast): stop; tasks still in flight will report. Returns
        cleanup tasks."""
        self.cancelled = True
        if self.error is None:
            self.error = S3Error("Cancelled because another request in the batch failed",
                                 self.url, "Cancelled")
        self.done = True
        return []

    def abandon(self) -> list[TaskSpec]:
        """The batch was interrupted and its workers killed: no task will report any more.
        Returns the cleanup tasks to run on fresh workers (may be called on a done op)."""
        self.outstanding = 0
        if self.done:
            return []
        self.error = S3Error("Interrupted", self.url, "Cancelled")
        return self.cancel()


class HeadOp(_Op):
    """HEAD one object. ``result`` is the header dict, or ``None`` if missing and allowed."""

    def __init__(self, url, bucket, key, return_missing=False, version_id=None) -> None:
        super().__init__(url, bucket, key)
        self.return_missing = return_missing
        self.version_id = version_id
        self.result: dict[str, str] | None = None

    def start(self) -> list[TaskSpec]:
        return [self.spec("head", version_id=self.version_id)]

    def on_result(self, task: Task, value: Any, error: tuple | None) -> list[TaskSpec]:
        self.received()
        if error is not None:
            err = make_error(error, self.url)
            if not (isinstance(err, S3NotFound) and self.return_missing):
                self.fail(err)
        else:
            self.result = value["headers"]
        self.done = True
        return []


class GetOp(_Op):
    """Download (a range of) one object into ``final`` via the temp file ``temp``.

    ``rng`` is ``None`` (whole object) or ``(offset, length)`` with ``length`` ``None`` (to
    the end) or negative (suffix). After success: ``headers`` (of the first response),
    ``total`` (object size), ``start`` and ``length`` (bytes held).
    """

    def __init__(self, url, bucket, key, final, temp, part_size, rng=None,
                 return_missing=False, version_id=None) -> None:
        super().__init__(url, bucket, key)
        self.final = final
        self.temp = temp
        self.part_size = part_size
        self.rng = rng
        self.return_missing = return_missing
        self.version_id = version_id
        self.missing = False
        self.headers: dict[str, str] = {}
        self.total: int | None = None
        self.start_offset = 0
        self.length = 0
        self._parts_left = 0

    def start(self) -> list[TaskSpec]:
        p = self.part_size
        args: dict[str, Any] = {"path": self.temp, "final": self.final, "first": True,
                                "version_id": self.version_id}
        if self.rng is None:
            # A plain GET: a small object arrives whole, with its checksum (servers send none
            # on ranged answers); of a large one the worker keeps the first ``part`` bytes.
            args.update(range=None, base=0, want_end=None, whole=True, part=p)
        else:
            off, length = self.rng
            if length is None:
                args.update(range=f"bytes={off}-{off + p - 1}", base=off, want_end=None)
            elif length < 0:
                args.update(range=f"bytes={length}", base=None, want_end=None)
            else:
                args.update(range=f"bytes={off}-{off + min(length, p) - 1}", base=off,
                            want_end=off + length)
        return [self.spec("get", **args)]

    def on_result(self, task: Task, value: Any, error: tuple | None) -> list[TaskSpec]:
        self.received()
        if self.done:
            if self.error is not None:
                self.discard()  # a late result of a failed or cancelled download
            return []
        if error is not None:
            err = make_error(error, self.url)
            if task.args["first"] and isinstance(err, S3NotFound) and self.return_missing:
                self.missing = True
                self.done = True
            else:
                self.fail(err)
                self.discard()
            return []
        if task.args["first"]:
            self.headers = value["headers"]
            self.total = value["total"]
            self.start_offset = value["base"]
            self.length = value["end"] - value["base"]
            self.learned_bytes = self.length  # for progress totals (read by the scheduler)
            if value["complete"]:
                self.done = True
                return []
            etag = self.headers.get("etag", "").strip('"') or None
            specs = []
            pos = value["start"] + value["length"]
            part = _rest_part_size(self.part_size, value["end"] - pos)
            while pos < value["end"]:
                n = min(part, value["end"] - pos)
                specs.append(self.spec(
                    "get", path=self.temp, base=value["base"], range=f"bytes={pos}-{pos + n - 1}",
                    first=False, if_match=etag, expect=(pos, n), version_id=self.version_id))
                pos += n
            self._parts_left = len(specs)
            return specs
        self._parts_left -= 1
        if self._parts_left == 0:
            try:
                os.replace(self.temp, self.final)
            except OSError as e:
                self.fail(S3Error(f"Could not move the download into place: {e}", self.url,
                                  "LocalIOError"))
                self.discard()
                return []
            self.done = True
        return []

    def cancel(self) -> list[TaskSpec]:
        super().cancel()
        self.discard()
        return []

    def abandon(self) -> list[TaskSpec]:
        specs = super().abandon()
        if self.error is not None:
            self.discard()
        return specs

    def discard(self) -> None:
        """Remove the temp file and, since this download failed, any final file a worker
        may have completed meanwhile: a failed op leaves nothing behind."""
        for path in (self.temp, self.final):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass


MiB = 1 << 20
MAX_GET_PART = 64 * MiB
GET_PARTS_TARGET = 16


def _rest_part_size(part_size: int, remaining: int) -> int:
    """Part size for the rest of a large download: ``part_size`` or larger, so a big object
    is fetched in about ``GET_PARTS_TARGET`` parts (fewer requests, less CPU per MiB) of at
    most ``MAX_GET_PART`` bytes, rounded up to whole MiB. Memory is unaffected: parts stream
    to disk through a fixed buffer."""
    want = -(-remaining // GET_PARTS_TARGET)
    want = -(-want // MiB) * MiB
    return max(part_size, min(MAX_GET_PART, want))


class ListOp(_Op):
    """List ``prefix`` (one level with ``delimiter="/"``, else recursively), all pages.

    ``objects`` collects ``(key, size, last_modified, etag)``; ``prefixes`` the common
    prefixes. A missing bucket fails with S3NotFound.
    """

    def __init__(self, url, bucket, prefix, delimiter=None) -> None:
        super().__init__(url, bucket, prefix)
        self.delimiter = delimiter
        self.objects: list[tuple[str, int, int | None, str]] = []
        self.prefixes: list[str] = []

    def start(self) -> list[TaskSpec]:
        return [self.spec("list", prefix=self.key, delimiter=self.delimiter, token=None)]

    def on_result(self, task: Task, value: Any, error: tuple | None) -> list[TaskSpec]:
        self.received()
        if self.done:
            return []
        if error is not None:
            self.fail(error)
            return []
        self.objects.extend(value["objects"])
        self.prefixes.extend(value["prefixes"])
        if value["next"]:
            return [self.spec("list", prefix=self.key, delimiter=self.delimiter,
                              token=value["next"])]
        self.done = True
        return []


class DeleteOp(_Op):
    """Delete up to 1000 keys of one bucket with one DeleteObjects request."""

    def __init__(self, url, bucket, keys: list[str]) -> None:
        super().__init__(url, bucket, "")
        self.keys = keys
        self.failures: list[tuple[str, str, str]] = []

    def start(self) -> list[TaskSpec]:
        return [self.spec("delete", keys=self.keys)]

    def on_result(self, task: Task, value: Any, error: tuple | None) -> list[TaskSpec]:
        self.received()
        if error is not None:
            self.fail(error)
        else:
            self.failures = value["errors"]
        self.done = True
        return []
