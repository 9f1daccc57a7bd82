"""The file objects behind ``fs.open()``.

* Reading (``"rb"``): :func:`open_reader` wraps ``S3.open()``'s seekable, ETag-pinned range
  reader (``fasts3.seekable``) in an :class:`io.BufferedReader` with fsspec's ``size``,
  ``path`` and ``fs`` attributes.
* Writing (``"wb"``, ``"xb"``): :func:`open_writer` is the one place that decides how bytes
  are written. For now a :class:`TempFileWriter` buffers to a temp file in the S3 context's
  temp directory and uploads it with ``put_files`` (multipart and parallel above the
  threshold) when closed; the object appears only then. Leaving a ``with`` block by an
  exception, ``discard()`` or dropping the file unclosed uploads nothing.
"""

from __future__ import annotations

import io
import logging
import os
import tempfile
from typing import Any

from ..objects import S3PutObject

log = logging.getLogger("fasts3.fsspec")

#: ``fs.open()`` options of fsspec's own caches; fasts3's reader has its own block cache and
#: readahead (see ``fasts3.seekable``), so these are accepted and ignored.
IGNORED_READ_OPTIONS = frozenset({"cache_type", "cache_options", "fill_cache"})
READ_OPTIONS = frozenset({"cache_size", "readahead", "readahead_ratio", "threads", "initial",
                          "version_id"})


class ReadFile(io.BufferedReader):
    """A buffered, seekable binary reader over one object; ``size`` is its size in bytes,
    ``path`` the fsspec path (``bucket/key``), ``fs`` the filesystem."""

    def __init__(self, raw: Any, fs: Any, path: str, buffer_size: int) -> None:
        super().__init__(raw, buffer_size)
        self.fs = fs
        self.path = path
        self.size: int = raw.size


def open_reader(s3: Any, url: str, fs: Any, path: str, block_size: int,
                options: dict[str, Any]) -> ReadFile:
    """Open ``url`` for reading. ``options`` are ``S3.open()`` options (``cache_size``,
    ``readahead``, ``threads``, ``version_id``, ...); fsspec cache options are ignored.
    Raises :class:`~fasts3.errors.S3NotFound` if there is no such object and
    :class:`TypeError` for an unknown option."""
    unknown = set(options) - READ_OPTIONS - IGNORED_READ_OPTIONS
    if unknown:
        raise TypeError(f"fasts3: unknown open() option(s) {sorted(unknown)}")
    kwargs = {k: v for k, v in options.items() if k in READ_OPTIONS}
    raw = s3.open(url, block_size=block_size, **kwargs)
    return ReadFile(raw, fs, path, block_size)


def open_writer(s3: Any, url: str, path: str, *, exclusive: bool = False,
                autocommit: bool = True, content_type: str | None = None,
                metadata: dict[str, str] | None = None) -> TempFileWriter:
    """A binary writer that creates ``url`` when closed (see the module docstring).

    ``exclusive`` (mode ``"xb"``): the upload skips an object that appeared meanwhile and
    :class:`FileExistsError` is raised at close. With ``autocommit=False`` (inside an fsspec
    transaction) ``close()`` keeps the data and ``commit()`` uploads it.
    """
    return TempFileWriter(s3, url, path, exclusive=exclusive, autocommit=autocommit,
                          content_type=content_type, metadata=metadata)


class TempFileWriter(io.BufferedIOBase):
    """Writes to a temp file; uploads it on ``close()``/``commit()``, never on failure."""

    def __init__(self, s3: Any, url: str, path: str, *, exclusive: bool, autocommit: bool,
                 content_type: str | None, metadata: dict[str, str] | None) -> None:
        super().__init__()
        self._s3 = s3
        self.url = url
        self.path = path
        self.mode = "xb" if exclusive else "wb"
        self._exclusive = exclusive
        self.autocommit = autocommit
        self._content_type = content_type
        self._metadata = metadata
        fd, self._tmp = tempfile.mkstemp(prefix=".fsspec-", suffix=".part", dir=s3.tmpdir)
        self._f: Any = os.fdopen(fd, "wb")
        self._pending = False  # closed with autocommit=False: waits for commit()/discard()

    # -- io ------------------------------------------------------------------------------
    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        if self.closed:
            raise ValueError("I/O operation on closed file")
        return self._f.write(data)

    def tell(self) -> int:
        return self._f.tell()

    def flush(self) -> None:
        if not self._f.closed:
            self._f.flush()

    # -- finishing -----------------------------------------------------------------------
    def close(self) -> None:
        """Finish the file: upload it (``autocommit``) or keep it for :meth:`commit`."""
        if self.closed:
            return
        try:
            self._f.close()
            if self.autocommit:
                self._upload()
            else:
                self._pending = True
        except BaseException:
            self._drop()
            raise
        finally:
            super().close()

    def commit(self) -> None:
        """Upload a file closed inside a transaction (fsspec calls this at its end)."""
        if self._pending:
            self._pending = False
            try:
                self._upload()
            finally:
                self._drop()

    def discard(self) -> None:
        """Throw the data away: nothing is uploaded."""
        self._pending = False
        if not self._f.closed:
            self._f.close()
        self._drop()
        if not self.closed:
            super().close()

    def __exit__(self, exc_type: Any, *rest: Any) -> None:
        if exc_type is not None:
            self.discard()
        else:
            self.close()

    def __del__(self) -> None:
        # Not io's default (close(), which would upload): a file dropped unclosed may hold a
        # partial write, and partial data never appears under the final name.
        try:
            if not self.closed:
                log.warning("fasts3: %s was never closed; nothing was uploaded", self.url)
            self.discard()
        except Exception:  # noqa: BLE001 - never raise from a finalizer
            pass

    def _upload(self) -> None:
        try:
            item = S3PutObject(self.url, path=self._tmp, content_type=self._content_type,
                               metadata=self._metadata)
            done = self._s3.put_files([item], overwrite=not self._exclusive)
            if self._exclusive and not done:
                raise FileExistsError(f"{self.path} already exists")
        finally:
            self._drop()

    def _drop(self) -> None:
        try:
            os.unlink(self._tmp)
        except OSError:
            pass


class CompressedWriter(io.BufferedIOBase):
    """A compressing stream over a :class:`TempFileWriter`: closing it finishes the
    compressed stream, then the writer (which uploads); leaving a ``with`` block by an
    exception, or :meth:`discard`, uploads nothing. (fsspec's own compression wrappers do
    not close the file they wrap, so the upload would never happen.)"""

    def __init__(self, inner: Any, raw: TempFileWriter) -> None:
        super().__init__()
        self._inner = inner
        self._raw = raw
        self.path = raw.path

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        return self._inner.write(data)

    def flush(self) -> None:
        if not self._inner.closed:
            self._inner.flush()

    def close(self) -> None:
        if self.closed:
            return
        try:
            self._inner.close()
            self._raw.close()
        except BaseException:
            self._raw.discard()
            raise
        finally:
            super().close()

    def discard(self) -> None:
        self._raw.discard()
        try:
            self._inner.close()  # its last bytes go nowhere: the writer is discarded
        except (OSError, ValueError):
            pass
        if not self.closed:
            super().close()

    def __exit__(self, exc_type: Any, *rest: Any) -> None:
        if exc_type is not None:
            self.discard()
        else:
            self.close()
