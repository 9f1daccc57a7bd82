"""The uploading half of ``S3.open(key, "wb")`` (``fasts3/writer.py`` stages the parts):
:class:`PartUploader` takes staged part files as they are written and uploads them as one
multipart upload on the engine's worker pool, in parallel, while the caller keeps writing.

A thread of its own runs while there is work: it creates the upload for the first part
(``Engine.run``), then feeds parts to ``Engine.stream`` as they arrive (the feed yields ``None``
while parts are in flight and nothing new is queued, and ends when both are empty; the thread
then ends too, so an idle writer holds no thread). Each part file is deleted once sent. At most
``window`` parts are queued or uploading: :meth:`PartUploader.submit` waits for room. A failed
part (after its retries) stops the thread, which aborts the upload at once; the failure is
raised by the next :meth:`~PartUploader.submit` or by :meth:`~PartUploader.complete`.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import TYPE_CHECKING, Any

from .engine import files
from .engine.mpu_ops import AbortOp, CompleteOp, CreateOp, PartOp

if TYPE_CHECKING:
    from .engine.engine import Engine, ProgressSink

log = logging.getLogger("fasts3.writer")
_STOP = object()


class PartUploader:
    """One multipart upload fed part by part (see the module doc).

    Args:
        engine: runs the ops (``engine/mpu_ops.py``).
        url, bucket, key: the object.
        headers: of the new object (sent with CreateMultipartUpload).
        window: most parts queued or uploading at once (>= 1).
        progress: the sink the engine reports bytes to.
    """

    def __init__(self, engine: Engine, url: str, bucket: str, key: str,
                 headers: dict[str, str], window: int, progress: ProgressSink) -> None:
        self._engine = engine
        self._url, self._bucket, self._key = url, bucket, key
        self._headers = headers
        self._window = window
        self._progress = progress
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._cv = threading.Condition()
        self._staged: set[str] = set()  # files of parts queued or uploading
        self._inflight = 0
        self._thread: threading.Thread | None = None
        self._aborting = False
        self.error: BaseException | None = None
        """The failure that stopped the upload (a typed ``S3Error``), or ``None``."""
        self.upload_id: str | None = None
        """The multipart upload created and not yet completed or aborted."""
        self._parts: dict[int, tuple[int, str, str | None]] = {}

    def submit(self, number: int, path: str, length: int) -> None:
        """Upload ``length`` bytes of the staged file ``path`` as part ``number`` (1-based),
        then delete the file. Waits while ``window`` parts are queued or uploading. Raises
        the upload's failure (and deletes ``path``) if there is one."""
        with self._cv:
            while len(self._staged) >= self._window and self.error is None:
                self._cv.wait(0.5)
            if self.error is not None:
                files.discard(path)
                raise self.error
            self._staged.add(path)
            self._queue.put((number, path, length))
            if self._thread is None:  # none, or it ended when it ran out of work
                self._thread = threading.Thread(target=self._run, daemon=True,
                                                name="fasts3-writer")
                self._thread.start()

    def fail(self, error: BaseException) -> None:
        """Record ``error`` (the first one wins) and wake a waiting :meth:`submit`."""
        with self._cv:
            if self.error is None:
                self.error = error
            self._cv.notify_all()

    def complete(self, size: int) -> None:
        """Wait for every part, then complete the upload (``size`` bytes in all): the
        object appears. Raises the upload's failure (the caller then :meth:`abort`\\ s)."""
        self._stop()
        if self.error is not None:
            raise self.error
        parts = [self._parts[n] for n in sorted(self._parts)]
        op = CompleteOp(self._url, self._bucket, self._key, self.upload_id or "", parts, size)
        self._engine.run([op], "upload", progress=self._progress)
        self.upload_id = None

    def abort(self) -> None:
        """Stop (parts in flight finish first), delete staged parts and abort the upload.
        Idempotent; a failed abort request is logged, not raised."""
        self._aborting = True
        self._stop()
        if self.upload_id is not None:
            self._abort_upload()

    # -- the thread --------------------------------------------------------------------
    def _stop(self) -> None:
        with self._cv:
            thread = self._thread
            if thread is not None:
                self._queue.put(_STOP)
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _run(self) -> None:
        try:
            while True:
                with self._cv:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        self._thread = None  # idle: the next part starts a new thread
                        return
                if item is _STOP or self._aborting:
                    break
                if self.upload_id is None:
                    self._create()
                if not self._stream(item):
                    break
        except BaseException as e:  # noqa: BLE001 - reported to the writing thread
            self.fail(e)
        self._drain()
        with self._cv:  # stopping: nothing more will be uploaded
            leftover, self._staged = self._staged, set()
            self._thread = None
            self._cv.notify_all()
        files.discard(*leftover)
        if (self.error is not None or self._aborting) and self.upload_id is not None:
            self._abort_upload()

    def _create(self) -> None:
        op = CreateOp(self._url, self._bucket, self._key, self._headers)
        try:
            self._engine.run([op], "upload", progress=self._progress)
        finally:
            self.upload_id = op.upload_id

    def _stream(self, first: Any) -> bool:
        """Upload ``first`` and every part queued while parts are in flight; return when
        none is left (True) or when stopping (False)."""
        stop = []
        upload_id = self.upload_id or ""

        def feed() -> Any:
            item = first
            while True:
                if item is _STOP or self._aborting:
                    stop.append(True)
                    return
                number, path, length = item
                self._inflight += 1
                yield PartOp(self._url, self._bucket, self._key, upload_id, number, path,
                             length)
                item = None
                while item is None:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        if self._inflight == 0:
                            return
                        yield None  # nothing to start now: let the pool run

        def unclaimed(op: PartOp) -> None:
            self._done_with(op.path)

        with self._engine.stream(feed(), "upload", window=self._window, fail_fast=True,
                                 progress=self._progress, on_unclaimed=unclaimed) as parts:
            for done in parts:
                op: PartOp = done  # type: ignore[assignment]
                self._inflight -= 1
                self._done_with(op.path)
                if op.error is not None:
                    raise op.error
                self._parts[op.number] = (op.number, op.etag or "", op.checksum)
                if self._aborting:
                    return False
        return not stop

    def _done_with(self, path: str) -> None:
        files.discard(path)
        with self._cv:
            self._staged.discard(path)
            self._cv.notify_all()

    def _drain(self) -> None:
        """Delete the files of parts still queued (the thread is stopping)."""
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not _STOP:
                self._done_with(item[1])

    def _abort_upload(self) -> None:
        upload_id, self.upload_id = self.upload_id, None
        op = AbortOp(self._url, self._bucket, self._key, upload_id or "")
        try:
            self._engine.run([op], "abort", fail_fast=False, progress=self._progress)
        except Exception as e:  # noqa: BLE001 - e.g. the client is closed: say so
            log.warning("could not abort the multipart upload of %s: %s", self._url, e)
            return
        if op.error is not None:
            log.warning("could not abort the multipart upload of %s: %s", self._url, op.error)
