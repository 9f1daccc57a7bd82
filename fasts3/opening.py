"""``S3.open(key, mode)``: picks the file object for a mode.

* ``"rb"``: :class:`~fasts3.seekable.S3File` (seekable, cached range reads), as before.
* ``"r"``/``"rt"``: that file in an :class:`io.BufferedReader` in an :class:`io.TextIOWrapper`
  (``encoding`` default UTF-8, ``errors``, ``newline`` as for the built-in ``open``).
* ``"wb"``: :class:`~fasts3.writer.S3Writer` (parts upload while you write; the object appears
  on ``close``).
* ``"w"``/``"wt"``: that writer in a :class:`TextWriter` (an :class:`io.TextIOWrapper` whose
  ``with`` block aborts the upload when it exits by an exception).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .objects import S3PutObject

if TYPE_CHECKING:
    from .engine.engine import Engine
    from .seekable import S3File
    from .writer import S3Writer

log = logging.getLogger("fasts3.writer")

READ_OPTIONS = ("block_size", "cache_size", "readahead", "readahead_ratio", "threads",
                "initial", "version_id")
WRITE_OPTIONS = ("content_type", "metadata", "acl", "cache_control", "content_encoding",
                 "content_disposition", "part_size", "window")
_MODES = {"r": ("r", True), "rt": ("r", True), "rb": ("r", False),
          "w": ("w", True), "wt": ("w", True), "wb": ("w", False)}


class TextWriter(io.TextIOWrapper):
    """Text over an :class:`~fasts3.writer.S3Writer`: ``close()`` creates the object; a
    ``with`` block left by an exception, :meth:`abort` and garbage collection without
    ``close()`` abort the upload instead."""

    def abort(self) -> None:
        """Discard what was written; no object is created (see ``S3Writer.abort``)."""
        self.buffer.abort()  # type: ignore[attr-defined]

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            self.abort()
        else:
            self.close()

    def __del__(self) -> None:
        try:
            if not self.closed:
                self.abort()
        except Exception:  # noqa: BLE001 - never raise from a finalizer
            pass


def open_key(engine: Engine, url: str, mode: str = "rb", *, encoding: str | None = None,
             errors: str | None = None, newline: str | None = None,
             **options: Any) -> S3File | S3Writer | io.TextIOWrapper:
    """The file object for ``mode`` over the object at ``url`` (see the module doc and
    :meth:`fasts3.S3.open` for ``options``). Raises ``ValueError`` for an unknown mode, for
    ``encoding``/``errors``/``newline`` in a binary mode, and for write options when reading
    (or ``version_id`` when writing); the errors of
    :func:`~fasts3.seekable.open_object` when reading (a missing key raises
    :class:`~fasts3.errors.S3NotFound` here); :class:`~fasts3.errors.S3InvalidObject` for a
    bad content type, metadata or put option when writing (before anything is sent)."""
    if mode not in _MODES:
        raise ValueError(f"invalid mode {mode!r}: give 'rb', 'r', 'wb' or 'w'")
    kind, text = _MODES[mode]
    if not text and (encoding, errors, newline) != (None, None, None):
        raise ValueError("encoding, errors and newline are for text modes ('r', 'w')")
    unknown = set(options) - set(READ_OPTIONS) - set(WRITE_OPTIONS)
    if unknown:
        raise TypeError(f"open() got unexpected keyword arguments {sorted(unknown)}")
    if kind == "r":
        wrong = [k for k in WRITE_OPTIONS if options.get(k) is not None]
        if wrong:
            raise ValueError(f"{', '.join(wrong)}: only for writing ('w', 'wb')")
        from .seekable import open_object

        raw = open_object(engine, url, **{k: v for k, v in options.items()
                                          if k in READ_OPTIONS})
        if not text:
            return raw
        buffer_size = options.get("block_size") or io.DEFAULT_BUFFER_SIZE
        return io.TextIOWrapper(io.BufferedReader(raw, buffer_size), encoding or "utf-8",
                                errors, newline)
    if options.get("version_id") is not None:
        raise ValueError("version_id: only for reading ('r', 'rb')")
    writer = open_writer(engine, url, **{k: options.get(k) for k in WRITE_OPTIONS})
    if not text:
        return writer
    return TextWriter(writer, encoding or "utf-8", errors, newline)


def open_writer(engine: Engine, url: str, content_type: str | None = None,
                metadata: Mapping[str, Any] | None = None, acl: str | None = None,
                cache_control: str | None = None, content_encoding: str | None = None,
                content_disposition: str | None = None, part_size: int | None = None,
                window: int | None = None) -> S3Writer:
    """An :class:`~fasts3.writer.S3Writer` for ``url`` whose object gets these headers (the
    content type is guessed from the key when not given; the engine's encryption, KMS key,
    storage class and put-option defaults apply). Checked before anything is sent."""
    from .uploads import object_headers
    from .writer import S3Writer

    item = S3PutObject(url, value=b"", content_type=content_type, metadata=metadata, acl=acl,
                       cache_control=cache_control, content_encoding=content_encoding,
                       content_disposition=content_disposition)
    headers = object_headers(engine, item, url)
    return S3Writer(engine, url, headers, part_size=part_size, window=window)
