"""Batch -> tasks: one *op* per user request, a small state machine that emits worker tasks.

* :class:`GetOp` — the first request is a plain GET (or the user's range): a small object
  arrives whole and the worker commits it; of a large one the worker keeps the first part,
  the answer gives the size, and the remaining parts (pinned to the first answer's ETag with
  If-Match) go to every worker and land by offset in one preallocated temp file, committed
  (``files.commit``) when all are in.
* uploads: :class:`~fasts3.engine.upload_plan.PutOp` (``upload_plan.py``); server-side copies:
  ``copy_plan.py``.
* :class:`HeadOp`, :class:`ListOp` (follows continuation tokens), :class:`DeleteOp`.

Ops never raise: a failure is stored in ``op.error`` (an :class:`~fasts3.errors.S3Error`).
"""

from __future__ import annotations

import errno
import logging
import os
from typing import Any

from ..errors import S3Error, S3NotFound
from . import files
from .retry import make_error
from .tasks import (
    DeleteArgs,
    GetArgs,
    GetPlan,
    GetResult,
    HeadArgs,
    ListArgs,
    Task,
    TaskArgs,
    TaskSpec,
)

log = logging.getLogger("fasts3.plan")


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

    def spec(self, args: TaskArgs) -> TaskSpec:
        """A task of this op on its own object (counted as outstanding)."""
        self.outstanding += 1
        return TaskSpec(self.bucket, self.key, args)

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
        return [self.spec(HeadArgs(self.version_id))]

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
    the end) or negative (suffix). ``size`` and ``etag``, when a listing gave them, let a
    whole object larger than ``part_size`` be fetched as ranged parts at once (pinned to that
    ETag) instead of a first plain GET. After success: ``headers`` (of the first response),
    ``total`` (object size), ``start`` and ``length`` (bytes held).
    """

    def __init__(self, url, bucket, key, final, temp, part_size, rng=None,
                 return_missing=False, version_id=None, size: int | None = None,
                 etag: str | None = None) -> None:
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
        self._listed = (size, etag)
        self._planned = False  # all parts planned from the listed size
        self._early: GetPlan | None = None  # the plan announced by the first answer's head

    def start(self) -> list[TaskSpec]:
        p = self.part_size
        size, etag = self._listed
        if self.rng is None and size is not None and size > p:
            return self._plan_parts(size, etag)
        first = GetArgs(self.temp, first=True, final=self.final, version_id=self.version_id)
        if self.rng is None:
            # A plain GET: a small object arrives whole, with its checksum (servers send none
            # on ranged answers); of a large one the worker keeps the first ``part`` bytes.
            args = first._replace(whole=True, part=p)
        else:
            off, length = self.rng
            if length is None:
                args = first._replace(range=f"bytes={off}-{off + p - 1}", base=off)
            elif length < 0:
                args = first._replace(range=f"bytes={length}", base=None)
            else:
                args = first._replace(range=f"bytes={off}-{off + min(length, p) - 1}",
                                      base=off, want_end=off + length)
        return [self.spec(args)]

    def on_result(self, task: Task, value: Any, error: tuple | None) -> list[TaskSpec]:
        self.received()
        if self.done:
            if self.error is not None:
                self.discard()  # a late result of a failed or cancelled download
            return []
        first = isinstance(task.args, GetArgs) and task.args.first
        if error is not None:
            err = make_error(error, self.url)
            if (first or self._planned) and isinstance(err, S3NotFound) and \
                    self.return_missing:
                self.discard()
                self.missing = True
                self.done = True
            else:
                self.fail(err)
                self.discard()
            return []
        r: GetResult = value
        if first:
            plan = GetPlan(r.start, r.length, r.base, r.end, _etag(r.headers))
            if self._early is not None and (r.complete or plan != self._early):
                # A retried first request got another version than its parts (the worker
                # pins retries to the announced ETag; a server without ETags cannot be).
                self.fail(S3Error("The object changed while it was downloaded", self.url,
                                  "ObjectChanged", 412))
                self.discard()
                return []
            self.headers = r.headers or {}
            self.total = r.total
            self.start_offset = r.base
            self.length = r.end - r.base
            if r.complete:
                self.learned_bytes = self.length  # for progress totals (scheduler)
                self.done = True  # the worker committed the file
                return []
            if self._early is None:  # not announced early: ask for the rest now
                return self._plan_rest(plan, first_pending=False)
            # announced early (on_early): this answer was one of the parts
        elif r.headers is not None:  # the part at offset 0 of a planned download
            self.headers = r.headers
        self._parts_left -= 1
        if self._parts_left == 0:
            try:
                files.commit(self.temp, self.final)
            except OSError as e:
                self.fail(S3Error(f"Could not move the download into place: {e}", self.url,
                                  "LocalIOError"))
                self.discard()
                return []
            self.done = True
        return []

    def on_early(self, task: Task, plan: GetPlan) -> list[TaskSpec]:
        """The first answer's head says parts follow (``plan``): ask for the rest of the
        download now, pinned to its ETag; the first answer, still arriving, completes the
        download like a part (its result comes later and must match ``plan``)."""
        if self.done or self._early is not None:
            return []
        self._early = plan
        return self._plan_rest(plan, first_pending=True)

    def _plan_rest(self, plan: GetPlan, first_pending: bool) -> list[TaskSpec]:
        specs = self._part_specs(plan.start + plan.length, plan.end, plan.base, plan.etag)
        self._parts_left = len(specs) + (1 if first_pending else 0)
        self.learned_bytes = plan.end - plan.base  # for progress totals (scheduler)
        return specs

    def _part_specs(self, pos: int, end: int, base: int, etag: str | None) -> list[TaskSpec]:
        """Ranged GETs for object bytes ``[pos, end)`` into the temp file (whose byte 0 is
        object offset ``base``), each pinned to ``etag``."""
        part = _rest_part_size(self.part_size, end - pos)
        specs = []
        while pos < end:
            n = min(part, end - pos)
            specs.append(self.spec(GetArgs(
                self.temp, base=base, range=f"bytes={pos}-{pos + n - 1}", if_match=etag,
                expect=(pos, n), version_id=self.version_id)))
            pos += n
        return specs

    def _plan_parts(self, size: int, etag: str | None) -> list[TaskSpec]:
        """Create the temp file and ask for every part of a listed object at once."""
        try:
            os.close(files.create(self.temp, size))
        except OSError as e:
            code = "NoSpaceLeft" if e.errno == errno.ENOSPC else "LocalIOError"
            self.fail(S3Error(f"Cannot create the download: {e.strerror or e}", self.url,
                              code))
            return []
        self._planned = True
        self.total, self.start_offset, self.length = size, 0, size
        self.learned_bytes = size
        specs = self._part_specs(0, size, 0, etag)
        self._parts_left = len(specs)
        return specs

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
        """Remove this download's files: after success only the final file exists (the temp
        was renamed to it); otherwise the temp file and any final file a worker may have
        completed meanwhile, so a failed or cancelled op leaves nothing behind."""
        if self.done and self.error is None:
            files.discard(self.final)
        else:
            files.discard(self.temp, self.final)


def _etag(headers: dict[str, str] | None) -> str | None:
    """The ETag of an answer's headers, unquoted (``None`` if absent)."""
    return ((headers or {}).get("etag") or "").strip('"') or None


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
    """List ``prefix`` (one level with ``delimiter="/"``, else recursively): all pages, or
    with ``one_page`` only the page at ``token`` (``next_token`` then names the next one, or
    is ``None`` after the last page; streaming listings chain such ops).

    ``objects`` collects ``(key, size, last_modified, etag)``; ``prefixes`` the common
    prefixes. A missing bucket fails with S3NotFound.
    """

    def __init__(self, url, bucket, prefix, delimiter=None, token: str | None = None,
                 one_page: bool = False) -> None:
        super().__init__(url, bucket, prefix)
        self.delimiter = delimiter
        self.token = token
        self.one_page = one_page
        self.next_token: str | None = None
        self.objects: list[tuple[str, int, int | None, str]] = []
        self.prefixes: list[str] = []

    def start(self) -> list[TaskSpec]:
        return [self.spec(ListArgs(self.key, self.delimiter, self.token))]

    def on_result(self, task: Task, value: Any, error: tuple | None) -> list[TaskSpec]:
        self.received()
        if self.done:
            return []
        if error is not None:
            self.fail(error)
            return []
        self.objects.extend(value["objects"])
        self.prefixes.extend(value["prefixes"])
        if self.one_page:
            self.next_token = value["next"]
        elif value["next"]:
            return [self.spec(ListArgs(self.key, self.delimiter, value["next"]))]
        self.done = True
        return []


class DeleteOp(_Op):
    """Delete up to 1000 keys of one bucket with one DeleteObjects request."""

    def __init__(self, url, bucket, keys: list[str]) -> None:
        super().__init__(url, bucket, "")
        self.keys = keys
        self.failures: list[tuple[str, str, str]] = []

    def start(self) -> list[TaskSpec]:
        return [self.spec(DeleteArgs(self.keys))]

    def on_result(self, task: Task, value: Any, error: tuple | None) -> list[TaskSpec]:
        self.received()
        if error is not None:
            self.fail(error)
        else:
            self.failures = value["errors"]
        self.done = True
        return []
