"""What one Dask task does: stage one shard with the fasts3 engine on the worker it runs on.

A task opens its own :class:`~fasts3.engine.engine.Engine` (same connection keywords as the
client) whose temp directory lies in the job's staging directory under the destination, so
every download is written under a temp name and renamed into place only when complete: a task
that dies half way leaves no partial file at a destination path, and re-running the shard
(Dask retries it, or reschedules it when its worker is lost) produces complete files.

Per-object outcomes that a re-run cannot change (missing object, access denied, a local path
conflict) are recorded in the entries; any other failure raises :class:`ShardFailed` so that
Dask retries the whole shard.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from ..config import TransferConfig, usable_cores
from ..engine.engine import Engine
from ..engine.plan import GetOp
from ..errors import S3AccessDenied, S3Error, S3InvalidRange, S3NotFound, S3URLError
from ..urls import split_url
from .contexts import borrowed, close_job
from .manifest import FAILED, MISSING, OK, ManifestEntry
from .plan import SourceObject, destination, staging_root

log = logging.getLogger("fasts3.distributed")
PROGRESS_INTERVAL = 0.5
_PERMANENT = (S3NotFound, S3AccessDenied, S3InvalidRange, S3URLError)
_PERMANENT_CODES = ("LocalIOError", "LocalPathConflict")


class ShardFailed(S3Error):
    """A shard could not be staged completely for a reason a re-run may fix (raised inside
    the Dask task so that Dask retries it)."""


@dataclass
class ShardSpec:
    """Everything a task needs (pickled to the worker).

    dest: an absolute local directory (download) or an ``s3://`` prefix (server-side copy).
    connect: :class:`~fasts3.S3` connection keywords (``endpoint_url``, ``role``,
        ``session_vars``, ``client_params``).
    config: the engine's :class:`TransferConfig` on the worker (``None``: the worker's
        defaults and ``FASTS3_*`` environment).
    checksum: ``"etag"``, ``"md5"`` (download only, computed from the written file) or
        ``None``.
    topic: the Dask event topic progress is published on, or ``None``.
    """

    job: str
    index: int
    objects: list[SourceObject]
    dest: str
    connect: dict[str, Any] = field(default_factory=dict)
    config: TransferConfig | None = None
    checksum: str | None = "etag"
    topic: str | None = None


def worker_address() -> str:
    """The address of the Dask worker running this code, else ``host:pid``."""
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return f"{socket.gethostname()}:{os.getpid()}"


def worker_config() -> TransferConfig:
    """The engine config of a task when the job gave none: ``FASTS3_*`` and the machine's
    defaults, except that without ``FASTS3_PROCESSES`` the usable cores are divided among
    the Dask worker's task threads (each running task has its own engine processes)."""
    if "FASTS3_PROCESSES" in os.environ:
        return TransferConfig.from_env()
    try:
        from distributed import get_worker

        threads = max(1, get_worker().state.nthreads)
    except (ImportError, ValueError, AttributeError):
        threads = 1
    return TransferConfig.from_env(processes=max(1, usable_cores() // threads))


class Reporter:
    """Publishes ``[shard, attempt, bytes, files]`` (cumulative for this attempt) on the
    job's event topic, at most every ``PROGRESS_INTERVAL`` seconds."""

    def __init__(self, topic: str | None, shard: int) -> None:
        self.topic = topic
        self.shard = shard
        self.attempt = uuid.uuid4().hex[:12]
        self.nbytes = 0
        self.files = 0
        self._last = 0.0
        self._worker = None
        if topic is not None:
            try:
                from distributed import get_worker

                self._worker = get_worker()
            except (ImportError, ValueError):
                self._worker = None

    # The engine's progress interface (``engine.ProgressSink``).
    active = True

    def advance(self, n: int) -> None:
        self.nbytes += n
        self.flush()

    def file_done(self, op: object) -> None:
        self.files += 1
        self.flush()

    def add_total(self, n: int) -> None:
        pass

    def flush(self, force: bool = False) -> None:
        if self._worker is None or self.topic is None:
            return
        now = time.monotonic()
        if force or now - self._last >= PROGRESS_INTERVAL:
            self._last = now
            try:
                self._worker.log_event(self.topic, [self.shard, self.attempt, self.nbytes,
                                                    self.files])
            except Exception as e:  # noqa: BLE001 - progress must never fail a transfer
                log.debug("progress event dropped: %r", e)


class CopyReporter(Reporter):
    """Counts a server-side copy's bytes when it completes (none travel through us)."""

    def advance(self, n: int) -> None:
        pass

    def file_done(self, op: object) -> None:
        self.nbytes += getattr(op, "size", None) or 0
        super().file_done(op)


def run_shard(spec: ShardSpec) -> list[ManifestEntry]:
    """Stage ``spec.objects``; return one entry per object, in ``spec.objects`` order.

    Raises :class:`ShardFailed` when a failure might go away on a re-run (transient errors
    that exhausted their retries, a crashed engine worker, a full disk).
    """
    if spec.dest.startswith("s3://"):
        return _copy_shard(spec)
    return _download_shard(spec)


def _download_shard(spec: ShardSpec) -> list[ManifestEntry]:
    worker = worker_address()
    cfg = spec.config or worker_config()
    staging = staging_root(spec.dest, spec.job)
    os.makedirs(staging, exist_ok=True)
    reporter = Reporter(spec.topic, spec.index)
    entries: list[ManifestEntry] = []

    def make() -> Engine:
        return Engine.from_options(cfg, False, staging, spec.connect)

    with borrowed(spec.job, make) as engine:
        jobs: list[tuple[ManifestEntry, GetOp]] = []
        for i, obj in enumerate(spec.objects):
            final = destination(spec.dest, obj.rel)
            entry = ManifestEntry(obj.url, final, obj.size, worker=worker, shard=spec.index)
            entries.append(entry)
            try:
                os.makedirs(os.path.dirname(final), exist_ok=True)
            except OSError as e:
                entry.error = f"LocalPathConflict: {e}"
                continue
            bucket, key = split_url(obj.url)
            temp = os.path.join(engine.tmpdir, f"{reporter.attempt}-{i:07d}.part")
            jobs.append((entry, GetOp(obj.url, bucket, key, final, temp, cfg.part_size,
                                      return_missing=True)))
        engine.run([op for _, op in jobs], "get", fail_fast=False, progress=reporter)
    retry = []
    for entry, op in jobs:
        if op.error is not None:
            entry.error = _describe(op.error)
            if not _is_permanent(op.error):
                retry.append(entry)
        elif op.missing:
            entry.status = MISSING
        else:
            entry.size = op.length
            entry.status = OK
            entry.checksum = _checksum(spec.checksum, op.headers, op.final)
    return _finish_shard(spec, reporter, entries, retry)


def _copy_shard(spec: ShardSpec) -> list[ManifestEntry]:
    """Server-side copies of one shard (CopyObject, or UploadPartCopy for large objects:
    the bytes never leave S3); an object that vanished since listing is ``"missing"``."""
    from ..manage import copy_ops

    worker = worker_address()
    cfg = spec.config or worker_config()
    reporter = CopyReporter(spec.topic, spec.index)
    entries = [ManifestEntry(o.url, destination(spec.dest, o.rel), o.size, worker=worker,
                             shard=spec.index) for o in spec.objects]

    def make() -> Engine:
        return Engine.from_options(cfg, False, tempfile.gettempdir(), spec.connect)

    with borrowed(spec.job, make) as engine:
        ops = copy_ops(engine, [(e.url, e.dest, o.size, None)
                                for e, o in zip(entries, spec.objects, strict=True)])
        engine.run(ops, "copy", fail_fast=False, progress=reporter)
    retry = []
    for entry, op in zip(entries, ops, strict=True):
        if op.error is not None:
            entry.error = _describe(op.error)
            if op.error.code == "NoSuchKey":
                entry.status = MISSING
            elif not _is_permanent(op.error):
                retry.append(entry)
        else:
            entry.status = OK
            entry.size = op.size if op.size is not None else entry.size
            etag = (getattr(op, "etag", None) or "").strip('"')
            entry.checksum = f"etag:{etag}" if spec.checksum and etag else None
    return _finish_shard(spec, reporter, entries, retry)


def _finish_shard(spec: ShardSpec, reporter: Reporter, entries: list[ManifestEntry],
                  retry: list[ManifestEntry]) -> list[ManifestEntry]:
    reporter.flush(force=True)
    if retry:
        raise ShardFailed(f"shard {spec.index}: {len(retry)} of {len(entries)} objects failed; "
                          f"first: {retry[0].error}", url=retry[0].url, code="ShardFailed")
    for e in entries:
        if e.status == FAILED:
            log.warning("not staged: %s: %s", e.url, e.error)
    return entries


def _is_permanent(err: S3Error) -> bool:
    return isinstance(err, _PERMANENT) or err.code in _PERMANENT_CODES


def _describe(err: S3Error) -> str:
    return f"{type(err).__name__}: {err.message} (code={err.code}, status={err.status})"


def _checksum(kind: str | None, headers: dict[str, str], path: str) -> str | None:
    if kind is None:
        return None
    if kind == "md5":
        h = hashlib.md5(usedforsecurity=False)
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        return "md5:" + h.hexdigest()
    etag = (headers.get("etag") or "").strip('"')
    return "etag:" + etag if etag else None


def finish_job(dest: str, job: str) -> bool:
    """End ``job`` in this worker process: close its reused S3 contexts and, for a local
    ``dest``, remove the job's staging directory (and the shared staging parent if now
    empty). The client runs this on every worker when the job ends; returns whether a
    staging directory was removed."""
    import shutil

    close_job(job)
    if dest.startswith("s3://"):
        return False
    root = staging_root(dest, job)
    existed = os.path.isdir(root)
    shutil.rmtree(root, ignore_errors=True)
    try:
        os.rmdir(os.path.dirname(root))
    except OSError:
        pass  # not empty (another job) or already gone
    return existed
