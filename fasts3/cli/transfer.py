"""Running planned transfers (downloads, uploads, server-side copies, deletes) in chunks on
the S3 context's worker pool, reporting one result per object and carrying on past
per-object failures (the exit code then says "partial").

Downloads are staged in the engine's temp directory, which the commands create inside
the destination directory, then moved into place (``engine/files.place``): a destination
file appears complete or not at all. Its mtime is set to the object's Last-Modified (what
``sync`` compares) and its mode follows the umask.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..downloads import get_op
from ..engine import files
from ..engine.s3xml import parse_http_date
from ..errors import S3Error
from ..manage import copy_ops, delete_urls
from ..objects import S3GetObject, S3PutObject
from ..progress import Progress
from ..uploads import build_put_op
from ..urls import resolve
from .common import EXIT_ERROR, EXIT_OK, EXIT_PARTIAL, Output, error_fields, human, umask

if TYPE_CHECKING:
    from ..engine.engine import Engine

CHUNK = 1000  # objects per batch: bounds memory and staged files, refreshes credentials
_VERBS = {"download": "downloaded", "upload": "uploaded", "copy": "copied",
          "delete": "deleted"}


@dataclass
class Job:
    """One transfer: ``src`` and ``dst`` are ``s3://`` URLs or local paths (``dst`` is
    unused for deletes). ``size`` is the source size if known."""

    src: str
    dst: str = ""
    size: int | None = None
    version: str | None = None


@dataclass
class Stats:
    """Counts of one command's results."""

    ok: int = 0
    failed: int = 0
    skipped: int = 0
    unchanged: int = 0
    nbytes: int = 0
    started: float = field(default_factory=time.monotonic)

    def add(self, other: Stats) -> None:
        self.ok += other.ok
        self.failed += other.failed
        self.skipped += other.skipped
        self.unchanged += other.unchanged
        self.nbytes += other.nbytes

    def exit_code(self) -> int:
        """0 when nothing failed, 1 when everything failed, 3 when only some did."""
        if not self.failed:
            return EXIT_OK
        return EXIT_PARTIAL if self.ok or self.skipped or self.unchanged else EXIT_ERROR


class Runner:
    """Runs jobs of one ``kind`` (``download``, ``upload``, ``copy``, ``delete``)."""

    def __init__(self, engine: Engine, out: Output, kind: str, dry_run: bool = False,
                 overwrite: bool = True, multipart_threshold: int | None = None,
                 part_size: int | None = None) -> None:
        self.engine = engine
        self.out = out
        self.kind = kind
        self.dry_run = dry_run
        self.overwrite = overwrite
        self.copy_args: dict[str, Any] = {}
        if multipart_threshold is not None:
            self.copy_args["multipart_threshold"] = multipart_threshold
        if part_size is not None:
            self.copy_args["part_size"] = part_size
        self._mode = 0o666 & ~umask()

    # -- reporting ---------------------------------------------------------------------
    def _record(self, job: Job, size: int | None = None, **extra: Any) -> dict[str, Any]:
        rec: dict[str, Any] = {"op": self.kind, "source": job.src}
        if self.kind != "delete":
            rec["dest"] = job.dst
        if size is not None:
            rec["size"] = size
        rec.update(extra)
        return rec

    def _ok(self, stats: Stats, job: Job, size: int | None, skipped: bool = False) -> None:
        if skipped:
            stats.skipped += 1
            self.out.result(self._record(job, size, ok=True, skipped=True),
                            f"skip (exists): {job.dst}")
            return
        stats.ok += 1
        stats.nbytes += size or 0
        arrow = f" -> {job.dst}" if self.kind != "delete" else ""
        self.out.result(self._record(job, size, ok=True), f"{self.kind}: {job.src}{arrow}")

    def fail(self, stats: Stats, job: Job, e: BaseException) -> None:
        """Count and report a failed job."""
        stats.failed += 1
        message = getattr(e, "message", None) or str(e)
        code = getattr(e, "code", None)
        target = job.src if self.kind in ("download", "delete") else f"{job.src} -> {job.dst}"
        self.out.error(self._record(job, **error_fields(e)),
                       f"{self.kind} failed: {target}: {message}" + (f" [{code}]" if code else ""))

    def summary(self, stats: Stats) -> None:
        secs = max(time.monotonic() - stats.started, 1e-6)
        verb = _VERBS[self.kind] if not self.dry_run else f"would {self.kind}"
        text = f"{verb} {stats.ok} object{'s' if stats.ok != 1 else ''}"
        if self.kind != "delete" and not self.dry_run and stats.ok:
            rate = human(int(stats.nbytes / secs))
            text += f", {human(stats.nbytes)} in {secs:.1f} s ({rate}/s)"
        if stats.skipped:
            text += f", {stats.skipped} skipped (exist)"
        if stats.unchanged:
            text += f", {stats.unchanged} unchanged"
        if stats.failed:
            text += f", {stats.failed} FAILED"
        self.out.note(text)

    def report_dry(self, stats: Stats, job: Job) -> None:
        """Count and report what ``job`` would do (``--dry-run``)."""
        stats.ok += 1
        arrow = f" -> {job.dst}" if self.kind != "delete" else ""
        self.out.result(self._record(job, job.size, dry_run=True),
                        f"(dry run) {self.kind}: {job.src}{arrow}")

    # -- running -----------------------------------------------------------------------
    def run(self, jobs: Sequence[Job], progress: Progress | None = None) -> Stats:
        """Run ``jobs`` in chunks of ``CHUNK``; ``progress``: a reporter shared with other
        calls (else one is made for these jobs)."""
        stats = Stats()
        if self.dry_run:
            for job in jobs:
                self.report_dry(stats, job)
            return stats
        if not jobs:
            return stats
        total = sum(j.size or 0 for j in jobs) if self.kind != "delete" else 0
        prog = progress or self.engine.new_progress(self.kind, len(jobs), total)
        try:
            for i in range(0, len(jobs), CHUNK):
                self._chunk(list(jobs[i:i + CHUNK]), stats, prog)
                self.out.flush()
        finally:
            if progress is None:
                prog.close()
        return stats

    def _chunk(self, jobs: list[Job], stats: Stats, prog: Progress) -> None:
        if self.kind == "delete":
            results = delete_urls(self.engine, [j.src for j in jobs], progress=prog)
            for job, (_, err) in zip(jobs, results, strict=True):
                if err is not None:
                    self.fail(stats, job, err)
                else:
                    self._ok(stats, job, None)
            return
        planned: list[tuple[Job, Any]] = []
        for job in jobs:
            op = self.plan(stats, job)
            if op is not None:
                planned.append((job, op))
        jobs_of = {id(op): job for job, op in planned}

        def settle(op: Any) -> None:
            job = jobs_of.pop(id(op), None)
            if job is not None:
                self.settle(stats, job, op)

        self.engine.run([op for _, op in planned], self.kind, fail_fast=False,
                        progress=_SettleAsDone(prog, settle))
        for _, op in planned:
            settle(op)

    def plan(self, stats: Stats, job: Job, etag: str | None = None) -> Any:
        """The op for ``job``, or ``None`` after reporting it skipped (exists and no
        overwrite) or failed (e.g. a bad path). ``etag`` (from a listing, with ``job.size``)
        lets a large download fetch its parts at once."""
        try:
            op = self._op(job, etag)
        except (S3Error, OSError) as e:
            self.fail(stats, job, e)
            return None
        if op is None:
            self._ok(stats, job, job.size, skipped=True)
        return op

    def settle(self, stats: Stats, job: Job, op: Any) -> None:
        """Report one finished op at once (a download is moved to its destination the
        moment it completes, so an interrupt keeps every completed file)."""
        if op.error is not None:
            self.fail(stats, job, op.error)
            return
        try:
            self._finish(stats, job, op)
        except OSError as e:
            self.fail(stats, job, S3Error(f"{e.strerror or e}: {job.dst}", job.src,
                                           "LocalIOError"))

    def _op(self, job: Job, etag: str | None = None) -> Any:
        engine = self.engine
        if self.kind == "download":
            if not self.overwrite and os.path.exists(job.dst):
                return None
            request = S3GetObject(job.src, version_id=job.version) if job.version else None
            return get_op(engine, resolve(None, job.src), request,
                          size=job.size if etag else None, etag=etag)
        if self.kind == "upload":
            return build_put_op(engine, S3PutObject(job.dst, path=job.src), self.overwrite,
                                lambda url: resolve(None, url))
        (op,) = copy_ops(engine, [(job.src, job.dst, job.size, job.version)], self.overwrite,
                         **self.copy_args)
        return op

    def _finish(self, stats: Stats, job: Job, op: Any) -> None:
        if self.kind == "download":
            files.place(op.final, job.dst, self._mode)
            mtime = parse_http_date(op.headers.get("last-modified"))
            if mtime is not None:
                os.utime(job.dst, (mtime, mtime))
            self._ok(stats, job, op.length)
        elif self.kind == "upload":
            self._ok(stats, job, op.size, skipped=not op.uploaded)
        else:
            self._ok(stats, job, op.size, skipped=not op.copied)


class _SettleAsDone:
    """The engine's progress sink for a chunk: forwards to the command's progress and settles
    each op (``settle(op)``) as soon as it is done."""

    active = True

    def __init__(self, progress: Progress, settle: Callable[[Any], None]) -> None:
        self._progress = progress
        self._settle = settle

    def advance(self, nbytes: int) -> None:
        if self._progress.active:
            self._progress.advance(nbytes)

    def add_total(self, nbytes: int) -> None:
        if self._progress.active:
            self._progress.add_total(nbytes)

    def file_done(self, op: Any) -> None:
        if self._progress.active:
            self._progress.file_done(op)
        self._settle(op)
