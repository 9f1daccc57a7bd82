"""The one internal object that moves bytes for a client: :class:`Engine`.

An Engine owns, for one :class:`~fasts3.S3` context (or one CLI command, or one Dask shard):

* the connection (boto3 session, endpoint, region; ``fasts3.session``), resolved on first use;
* the one source of credentials (:meth:`Engine.credentials`), which the worker pool (before
  each batch, periodically during long ones, for replacement workers) and the range readers
  of ``open()`` read; botocore refreshes temporary credentials behind it;
* the worker pool (started on the first batch with one worker -- launched before the
  connection is resolved, so the two overlap -- grown to the work, stopped by :meth:`close`);
* the temp directory downloads are staged in (absolute, mode 0700, removed by :meth:`close`);
* progress reporting, and :meth:`run` -- the one way to run ops.

Everything above the engine (``api``, ``manage``, ``seekable``, ``cli``, ``distributed``)
builds ops (``plan.py``, ``upload_plan.py``, ``copy_plan.py``) and hands them to :meth:`run`.
Batches of one Engine run one at a time: a second thread's call waits for the first.
"""

from __future__ import annotations

import atexit
import itertools
import logging
import os
import shutil
import subprocess
import threading
import weakref
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from .. import forksafe
from ..config import TransferConfig, attempts_now
from ..errors import S3Error, S3RetriesExhausted
from ..progress import Progress
from ..urls import temp_name
from . import files
from .pool import Pool
from .procs import discard_worker, launch_worker
from .ranged import RangeReader
from .scheduler import Op
from .stream import FeedItem, OpStream, stream
from .tasks import WorkerInit

if TYPE_CHECKING:
    from ..session import Connection
    from .sigv4 import Credentials
    from .transport import EndpointSpec

log = logging.getLogger("fasts3")
_open_engines: weakref.WeakSet[Engine] = weakref.WeakSet()  # closed at interpreter exit


@atexit.register
def _close_at_exit() -> None:
    """Close the engines a program left open (e.g. a module-level ``S3()``) while the
    interpreter still runs normally: later, at finalization, the workers' reader threads
    are frozen and closing their pipes aborts the interpreter, leaving the temp dir."""
    for engine in list(_open_engines):
        try:
            engine.close()
        except Exception:  # noqa: BLE001 - the others still close
            log.exception("closing an S3 client at exit failed")


class ProgressSink(Protocol):
    """What :meth:`Engine.run` reports to (``fasts3.progress.Progress`` is one)."""

    @property
    def active(self) -> bool: ...

    def advance(self, nbytes: int) -> None: ...

    def file_done(self, op: Any) -> None: ...

    def add_total(self, nbytes: int) -> None: ...


class UploadOptions(NamedTuple):
    """Server-side options applied to every object a client creates (uploads and copies);
    the last four (see ``fasts3.headers.PutOptions``) are defaults of uploads only."""

    encryption: str | None = None
    kms_key_id: str | None = None
    storage_class: str | None = None
    acl: str | None = None
    cache_control: str | None = None
    content_encoding: str | None = None
    content_disposition: str | None = None

    def headers(self) -> dict[str, str]:
        """The headers for a new object (``x-amz-server-side-encryption``, KMS key, storage
        class). Raises :class:`~fasts3.errors.S3InvalidObject` for a malformed class."""
        from ..session import upload_headers

        out = upload_headers(self.encryption, self.kms_key_id, self.storage_class)
        if self.encryption:
            out["x-amz-server-side-encryption"] = self.encryption
        return out


class Engine:
    """Moves bytes for one client context. Nothing starts until the first batch.

    Args:
        config: sizes, timeouts, retries (:class:`~fasts3.config.TransferConfig`).
        progress: ``None`` (bar on a TTY), ``True``, ``False`` or ``"log"``.
        connect: keyword arguments of :class:`~fasts3.session.Connection` (endpoint_url,
            role, session_vars, client_params, region, profile, anonymous, ...).
        uploads: encryption / KMS key / storage class of new objects.
        tmproot: directory the temp directory is created in (made if missing).
    """

    def __init__(self, config: TransferConfig, progress: bool | str | None = None,
                 connect: dict[str, Any] | None = None,
                 uploads: UploadOptions = UploadOptions(), tmproot: str = ".") -> None:
        self.config = config
        self.progress_mode = progress
        self.uploads = uploads
        self._connect_args = dict(connect or {})
        self._connection: Connection | None = None
        self._pool: Pool | None = None
        self._launched: subprocess.Popen[bytes] | None = None  # the first worker, early
        self._closed = False
        self._owner = forksafe.Owner()  # the process of the workers and the temp dir
        self._lock = threading.RLock()
        self._serial = itertools.count()
        self._tmpdir: str | None = files.make_staging_dir(tmproot)
        self._at_close: list[Callable[[], None]] = []
        forksafe.track(self)
        _open_engines.add(self)

    @classmethod
    def from_options(cls, config: TransferConfig, progress: bool | str | None,
                     tmproot: str, options: dict[str, Any]) -> Engine:
        """An engine from :class:`~fasts3.S3`-style keywords: ``encryption``, ``kms_key_id``
        (implies ``aws:kms``), ``storage_class``, ``acl``, ``cache_control``,
        ``content_encoding`` and ``content_disposition`` become the upload options, the rest
        are connection options."""
        opts = dict(options)
        kms_key_id = opts.pop("kms_key_id", None)
        encryption = opts.pop("encryption", None) or ("aws:kms" if kms_key_id else None)
        uploads = UploadOptions(encryption, kms_key_id, opts.pop("storage_class", None),
                                *(opts.pop(name, None) for name in UploadOptions._fields[3:]))
        return cls(config, progress, opts, uploads, tmproot)

    # -- connection and credentials ----------------------------------------------------
    @property
    def connection(self) -> Connection:
        """The resolved :class:`~fasts3.session.Connection` (created on first use)."""
        if self._connection is None:
            from ..session import Connection

            self._connection = Connection(**self._connect_args)
        return self._connection

    @property
    def endpoint(self) -> EndpointSpec:
        return self.connection.endpoint

    def credentials(self) -> Credentials:
        """The current credentials: the one place every consumer reads them from. Raises
        :class:`~fasts3.errors.S3AccessDenied` if they cannot be obtained."""
        return self.connection.credentials()

    # -- the temp directory ------------------------------------------------------------
    @property
    def tmpdir(self) -> str:
        """The absolute temp directory holding downloads (removed on close)."""
        if self._tmpdir is None:
            raise S3Error("This S3 client is closed", code="Closed")
        self.check_owned()  # a forked child must not stage files in the parent's dir
        return self._tmpdir

    def new_paths(self, key: str) -> tuple[str, str]:
        """``(final, temp)`` paths for a new download of ``key`` in the temp directory."""
        name = temp_name(next(self._serial), key)
        return os.path.join(self.tmpdir, name), os.path.join(self.tmpdir, "." + name + ".part")

    # -- the owning process (forked children, forksafe) --------------------------------
    def inherited_fds(self) -> list[int]:
        """The pipes to the worker processes (``forksafe``)."""
        procs = [self._launched] + [w.proc for w in (self._pool.workers() if self._pool else [])]
        return [f.fileno() for p in procs if isinstance(p, subprocess.Popen)
                for f in (p.stdin, p.stdout) if f is not None and not f.closed]

    def owned_here(self) -> bool:
        """Whether the calling process made this engine (not a child that inherited it
        through ``fork()``: there, nothing of it may be used, closed or cleaned up)."""
        return self._owner.here

    def check_owned(self) -> None:
        """Raise ``S3Error`` (code ``ForkedClient``) in a process that inherited this
        engine (:meth:`forksafe.Owner.check`)."""
        self._owner.check()

    # -- running ops -------------------------------------------------------------------
    def _check_usable(self) -> None:
        """Raise :class:`S3Error` if this engine is closed (code ``Closed``) or inherited
        through ``fork()`` (code ``ForkedClient``)."""
        if self._closed:
            raise S3Error("This S3 client is closed", code="Closed")
        self.check_owned()

    def _ready_pool(self) -> Pool:
        self._check_usable()
        if self._pool is None and self._launched is None:
            # The first worker interpreter starts while the connection is resolved (botocore,
            # when it is needed, takes as long to import as a worker takes to start).
            self._launched = launch_worker()
        creds = self.credentials()
        cfg = self.config
        retry = (attempts_now(cfg), cfg.backoff_base, cfg.backoff_max)
        if self._pool is not None and self._pool.init.retry != retry:
            self._pool.close()  # S3_TRANSIENT_RETRY_COUNT was patched: new workers
            self._pool = None
        if self._pool is None:
            init = WorkerInit(
                endpoint=self.endpoint, credentials=creds,
                connect_timeout=cfg.connect_timeout, read_timeout=cfg.read_timeout,
                retry=retry, verify_checksums=cfg.verify_checksums,
                upload_checksums=cfg.upload_checksums, in_flight=cfg.requests_per_process,
                inject=(cfg.inject_failure_rate, cfg.inject_seed))
            launched, self._launched = self._launched, None
            self._pool = Pool(init, cfg.processes, credentials_source=self.credentials,
                              launched=launched)
            if self._closed:  # closed by another thread meanwhile: leave nothing running
                self._pool.close()
                self._pool = None
                raise S3Error("This S3 client is closed", code="Closed")
        else:
            self._pool.update_credentials(creds)
        return self._pool

    @property
    def pool(self) -> Pool | None:
        """The worker pool, or ``None`` before the first batch (and after close)."""
        return self._pool

    def new_progress(self, desc: str, count: int, total_bytes: int = 0) -> Progress:
        """A progress reporter in this engine's mode (close it when done)."""
        return Progress(self.progress_mode, desc, count, total_bytes)

    def run(self, ops: Sequence[Op], desc: str, *, total_bytes: int = 0,
            fail_fast: bool = True, progress: ProgressSink | None = None) -> None:
        """Run ``ops`` on the worker pool.

        With ``fail_fast`` (the default) the first failure cancels the rest and is raised as
        its typed error: the first in input order among the ops that failed before the
        cancellation; transient failures that exhausted their retries are raised together
        as one :class:`~fasts3.errors.S3RetriesExhausted` naming every URL that gave up.
        Otherwise every op runs to its end and errors stay in ``op.error``.

        ``progress``: a reporter shared by several calls (else one is made for this batch,
        with ``total_bytes`` as its total). ``desc`` names the batch in progress output.
        """
        if not ops:
            return
        self._check_usable()  # before the lock: a forked child may inherit it held
        own = progress is None
        prog: ProgressSink = progress or self.new_progress(desc, len(ops), total_bytes)
        active = prog.active
        try:
            with self._lock:
                self._ready_pool().run(
                    ops, prog.advance if active else None, prog.file_done if active else None,
                    fail_fast=fail_fast,
                    on_total=prog.add_total if active and own and not total_bytes else None)
        finally:
            if own:
                prog.close()  # type: ignore[attr-defined]
        if fail_fast:
            raise_first(ops)

    def stream(self, feed: Iterable[FeedItem], desc: str, *, window: int,
               ordered: bool = False, fail_fast: bool = False,
               progress: ProgressSink | None = None,
               on_unclaimed: Callable[[Any], None] | None = None) -> OpStream:
        """Run the ops of ``feed`` as they come and hand each back once done (see
        ``engine/stream.py``): at most ``window`` foreground ops are started and not yet
        handed back. Failures stay on the ops (``fail_fast``: the first cancels the rest and
        is raised). The returned iterator may be shared by threads; close it to stop early
        (queued work is cancelled, nothing half done is left)."""
        self._check_usable()  # before the lock: a forked child may inherit it held
        with self._lock:
            pool = self._ready_pool()
        own = progress is None
        prog: ProgressSink = progress or self.new_progress(desc, 0)
        active = prog.active
        gen = stream(pool, feed, window, ordered=ordered, fail_fast=fail_fast,
                     on_bytes=prog.advance if active else None,
                     on_total=prog.add_total if active else None,
                     on_done=prog.file_done if active else None, on_unclaimed=on_unclaimed)
        return OpStream(gen, self._lock, prog if own else None)

    def range_reader(self, url: str, bucket: str, key: str,
                     version_id: str | None = None) -> RangeReader:
        """A reader of ranges of one object from the calling thread (``open()``)."""
        self._check_usable()
        return RangeReader(self.endpoint, self.credentials, self.config, url, bucket, key,
                           version_id)

    # -- lifecycle ---------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self._closed

    def at_close(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` first thing in :meth:`close` (e.g. to abort an unfinished
        ``open("wb")`` upload while the workers are still there). It must not raise."""
        self._at_close.append(callback)

    def close(self) -> None:
        """Stop the workers and delete the temp directory (and every file in it).
        Idempotent. In a process that inherited this engine through ``fork()`` it only
        marks the engine closed: the workers and the temp dir are the parent's."""
        if not self.owned_here():
            self._closed = True
            self._pool = self._launched = self._tmpdir = None
            self._at_close = []
            return
        _open_engines.discard(self)
        callbacks, self._at_close = self._at_close, []
        for callback in callbacks:
            try:
                callback()
            except Exception:  # noqa: BLE001 - closing goes on whatever a callback did
                log.exception("a close callback failed")
        self._closed = True
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()
        launched, self._launched = self._launched, None
        if launched is not None:  # the connection failed to resolve: no pool was made
            discard_worker(launched)
        tmpdir, self._tmpdir = self._tmpdir, None
        if tmpdir:
            shutil.rmtree(tmpdir, ignore_errors=True)

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def raise_first(ops: Sequence[Op]) -> None:
    """Raise the failure of a fail-fast batch (see :meth:`Engine.run`), if any."""
    errors = [op.error for op in ops if op.error is not None and op.error.code != "Cancelled"]
    if not errors:
        for op in ops:
            if op.error is not None:
                raise op.error
        return
    exhausted = [e for e in errors if isinstance(e, S3RetriesExhausted)]
    if exhausted and len(exhausted) == len(errors):
        first = exhausted[0]
        urls = [e.url for e in exhausted if e.url]
        more = f" (and {len(urls) - 1} more)" if len(urls) > 1 else ""
        cls = type(first) if all(type(e) is type(first) for e in exhausted) else \
            S3RetriesExhausted  # e.g. S3NetworkError when every one was a network failure
        raise cls(first.message + more, first.url, first.code, first.status, urls=urls)
    raise errors[0]
