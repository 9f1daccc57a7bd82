"""``S3.open(key, "wb")``: a write-only binary file that uploads while it is written.

:class:`S3Writer` stages what is written in part files in the engine's temp directory (mode
0600). Each full part is handed to a :class:`~fasts3.part_uploads.PartUploader`, whose thread
feeds it to a stream on the engine's worker pool (``Engine.stream``; ``engine/mpu_ops.py``),
so parts upload in parallel while the caller keeps writing; each part file is deleted once
uploaded.

* **Bounded.** At most ``window`` parts are queued or uploading; a ``write`` that fills a part
  beyond that waits for one to finish. Disk use is at most ``(window + 1) x`` the part size;
  memory is one 1 MiB write buffer, whatever the object's size.
* **Atomic.** The object appears only on :meth:`S3Writer.close`: an object that fits in one
  part goes as one PUT then; a larger one is a multipart upload completed then.
* **Aborted, never half there.** A ``with`` block left by an exception, :meth:`abort`, a
  failed part (after its retries), an unclosed writer collected by the garbage collector and
  the closing of the ``S3`` context all abort the upload: no object, no open multipart
  upload, no staged file.
* **Sizes.** Parts are ``part_size`` bytes (default ``TransferConfig.part_size``); every
  1000 parts the part size doubles (up to 5 GiB), so a stream of unknown length stays within
  S3's 10,000 parts up to its 5 TiB object limit.

A writer is used from one thread at a time, in the process that opened it (a forked child
gets ``S3Error`` code ``ForkedClient``, and its copy of the part file is ``/dev/null``: see
``fasts3.forksafe``). Errors are typed (:class:`~fasts3.errors.S3Error`): a failed upload
raises from the next ``write`` or from ``close``; a full temp disk raises ``NoSpaceLeft``.
"""

from __future__ import annotations

import errno
import io
import logging
import os
import threading
import weakref
from typing import TYPE_CHECKING, Any, BinaryIO

from . import forksafe
from .engine import files
from .engine.upload_plan import PutOp
from .errors import S3Error
from .part_uploads import PartUploader
from .urls import split_url

if TYPE_CHECKING:
    from .engine.engine import Engine

log = logging.getLogger("fasts3.writer")
MiB = 1 << 20
BUFFER = 1 * MiB  # bytes of small writes gathered before they reach the part file
MAX_PART = 5 << 30
MAX_PARTS = 10_000
PARTS_PER_STEP = 1000  # the part size doubles after each this many parts

_registry_lock = threading.Lock()
_open_writers: weakref.WeakKeyDictionary[Any, weakref.WeakSet[S3Writer]] = \
    weakref.WeakKeyDictionary()


def _register(engine: Engine, writer: S3Writer) -> None:
    """Have ``engine.close()`` abort ``writer`` if it is still open then."""
    with _registry_lock:
        writers = _open_writers.get(engine)
        if writers is None:
            writers = _open_writers[engine] = weakref.WeakSet()
            engine.at_close(lambda: _abort_all(writers))
        writers.add(writer)


def _abort_all(writers: weakref.WeakSet[S3Writer]) -> None:
    for writer in list(writers):
        writer.abort()


def _forget_inherited() -> None:
    """In a forked child: the parent's writers are not the child's to abort or flush."""
    global _registry_lock, _open_writers
    _registry_lock = threading.Lock()  # another thread may have held it at fork time
    _open_writers = weakref.WeakKeyDictionary()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_inherited)


class _Sink:
    """The engine's progress sink for a writer's batches: bytes only (one file in all)."""

    def __init__(self, progress: Any) -> None:
        self._progress = progress
        self.active = progress.active

    def advance(self, nbytes: int) -> None:
        self._progress.advance(nbytes)

    def add_total(self, nbytes: int) -> None:
        pass  # the writer adds each part as it is staged

    def file_done(self, op: Any) -> None:
        pass


class S3Writer(io.BufferedIOBase):
    """A write-only, non-seekable binary file creating the object at ``url`` on
    :meth:`close` (see the module doc). Made by :meth:`fasts3.S3.open`.

    Args:
        engine: the client's engine (pool, temp directory, config).
        url: ``s3://bucket/key`` of the object.
        headers: the new object's headers (``uploads.object_headers``).
        part_size: bytes per part, 5 MiB..5 GiB (default: ``TransferConfig.part_size``).
        window: most parts queued or uploading at once, >= 1 (default: twice the worker
            processes, at least 4).
    """

    def __init__(self, engine: Engine, url: str, headers: dict[str, str], *,
                 part_size: int | None = None, window: int | None = None) -> None:
        super().__init__()
        config = engine.config
        part_size = config.part_size if part_size is None else part_size
        if not 5 * MiB <= part_size <= MAX_PART:
            raise ValueError("part_size must be in 5 MiB..5 GiB")
        window = max(4, 2 * config.processes) if window is None else window
        if window < 1:
            raise ValueError("window must be >= 1")
        self._engine = engine
        self._url = url
        self._bucket, self._key = split_url(url)
        self._headers = headers
        self._part_size = part_size
        self._size = 0
        self._file: BinaryIO | None = None  # the part being filled
        self._path: str | None = None
        self._filled = 0
        self._number = 1  # of the part being filled
        self._finished = False
        self._ended = False
        self._progress = engine.new_progress("upload", 1)
        self._sink = _Sink(self._progress)
        self._uploader = PartUploader(engine, url, self._bucket, self._key, headers, window,
                                      self._sink)
        _register(engine, self)
        forksafe.track(self)

    def inherited_fds(self) -> list[int]:
        """The part file being filled (``forksafe``)."""
        f = self._file
        return [f.fileno()] if f is not None and not f.closed else []

    # -- the file interface ------------------------------------------------------------
    @property
    def name(self) -> str:
        """The object's ``s3://`` URL."""
        return self._url

    @property
    def mode(self) -> str:
        return "wb"

    @property
    def size(self) -> int:
        """Bytes written so far."""
        return self._size

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    def seekable(self) -> bool:
        return False

    def tell(self) -> int:
        """Bytes written so far (the position: writes only append)."""
        self._check()
        return self._size

    def __repr__(self) -> str:
        return f"<S3Writer {self._url} ({self._size} bytes written)>"

    def _check(self) -> None:
        if self.closed:
            raise ValueError("I/O operation on closed file.")
        self._engine.check_owned()  # a forked child must not write into the parent's parts
        if self._uploader.error is not None:
            raise self._uploader.error

    def write(self, b: Any) -> int:
        """Append ``b`` (any bytes-like object); return its length in bytes. Blocks while
        ``window`` parts are queued or uploading. Raises the upload's failure, if any."""
        self._check()
        data = memoryview(b).cast("B")
        n, pos = data.nbytes, 0
        try:
            while pos < n:
                limit = self._limit()
                if self._file is not None and self._filled == limit:
                    self._ship()
                if self._file is None:
                    self._new_part()
                    limit = self._limit()
                take = min(n - pos, limit - self._filled)
                assert self._file is not None
                self._file.write(data[pos:pos + take])
                self._filled += take
                pos += take
        except OSError as e:
            if isinstance(e, S3Error):  # S3NotFound and S3AccessDenied are OSErrors too
                raise
            error = _local_error(e, self._url)
            self._uploader.fail(error)
            self.abort()
            raise error from None
        finally:
            self._size += pos
        return n

    def flush(self) -> None:
        """Hand buffered bytes to the staged part file (uploads only start per full part)."""
        if self._file is not None and not self.closed and self._engine.owned_here():
            self._file.flush()

    def close(self) -> None:
        """Upload what remains and create the object (one PUT if it fits in one part, else
        complete the multipart upload); nothing is there before. On failure the upload is
        aborted and the typed error raised. Idempotent. In a process forked from the one
        that opened it: ``S3Error`` (code ``ForkedClient``), and nothing is touched."""
        if self.closed or self._finished:
            return
        self._engine.check_owned()
        try:
            if self._uploader.error is not None:
                raise self._uploader.error
            if self._number == 1:  # no part was shipped
                self._put_whole()
            else:
                if self._filled:
                    self._ship()
                self._uploader.complete(self._size)
            self._finished = True
            self._progress.file_done()
        except BaseException:
            self.abort()
            raise
        finally:
            self._end()

    def abort(self) -> None:
        """Discard everything written: no object is created, the multipart upload (if any)
        is aborted, staged parts are deleted. Idempotent; never raises for a failed abort
        request (it is logged). In a process forked from the one that opened it, nothing:
        the upload and its staged parts are the parent's."""
        if self._finished or not self._engine.owned_here():
            return
        self._finished = True
        try:
            self._uploader.abort()
            self._discard_current()
        finally:
            self._end()

    def _end(self) -> None:
        if not self._ended:
            self._ended = True
            self._progress.close()
        super().close()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            self.abort()  # the block failed: never publish what it wrote
        else:
            self.close()

    def __del__(self) -> None:
        try:
            if not getattr(self, "_finished", True) and self._engine.owned_here():
                log.warning("%s was never closed: its upload is aborted", self._url)
                self.abort()
        except Exception:  # noqa: BLE001 - never raise from a finalizer
            pass

    # -- staging -----------------------------------------------------------------------
    def _limit(self) -> int:
        """The size of the part being filled (doubling every 1000 parts)."""
        steps = (self._number - 1) // PARTS_PER_STEP
        return min(self._part_size << steps, MAX_PART)

    def _new_part(self) -> None:
        if self._number > MAX_PARTS:
            raise S3Error(f"An upload has at most {MAX_PARTS} parts", self._url, "TooManyParts")
        path = self._engine.new_paths(self._key)[1]
        files.check_space(path, self._limit())
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self._path = path
        self._file = open(fd, "wb", buffering=BUFFER)  # noqa: SIM115 - closed by _ship

    def _discard_current(self) -> None:
        f, path, self._file, self._path = self._file, self._path, None, None
        if f is not None:
            try:
                f.close()
            except OSError:
                pass
        if path is not None:
            files.discard(path)

    def _ship(self) -> None:
        """Hand the filled part to the uploader (which waits for room in the window)."""
        assert self._file is not None and self._path is not None
        self._file.close()
        number, path, length = self._number, self._path, self._filled
        self._file, self._path = None, None
        self._number += 1
        self._filled = 0
        self._uploader.submit(number, path, length)
        self._progress.add_total(length)

    # -- finishing ---------------------------------------------------------------------
    def _put_whole(self) -> None:
        """Everything fits in one part: one PUT of the staged file (or of nothing)."""
        path, size = self._path, self._filled
        if self._file is not None:
            self._file.close()
            self._file = None
        try:
            op = PutOp(self._url, self._bucket, self._key, size, self._headers,
                       body=b"" if path is None else None, path=path)
            self._engine.run([op], "upload", progress=self._sink)
        finally:
            self._path = None
            if path is not None:
                files.discard(path)


def _local_error(e: OSError, url: str) -> S3Error:
    """A typed error for a failure to stage bytes in the temp directory."""
    if e.errno == errno.ENOSPC:
        return S3Error("No space left in the temp directory to stage this upload", url,
                       "NoSpaceLeft")
    return S3Error(f"Could not stage this upload: {e.strerror or e}", url, "LocalIOError")
