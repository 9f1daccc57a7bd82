"""Plain data objects of the public API: results (:class:`S3Object`) and requests
(:class:`S3GetObject`, :class:`S3PutObject`). No I/O, except the lazy file reads behind
``S3Object.blob`` and ``S3Object.text``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import IO, Any, NamedTuple

from .errors import S3InvalidObject, S3URLError
from .urls import relative_key


class RangeInfo(NamedTuple):
    """Which bytes of an object a result holds.

    ``total_size`` is the object's size in bytes, ``request_offset`` the first byte held and
    ``request_length`` the number of bytes held (after clamping to the object's end).
    """

    total_size: int
    request_offset: int
    request_length: int


class S3GetObject:
    """A request for ``length`` bytes of ``key`` starting at ``offset``.

    * ``offset is None`` means 0, as in Metaflow (``S3GetObject(key, None, -5)``).
    * ``length is None``: read from ``offset`` to the end.
    * ``length < 0``: the last ``-length`` bytes (``offset`` is ignored).
    * A range that runs past the end is clamped; ``offset >= size`` raises
      :class:`~fasts3.errors.S3InvalidRange` when fetched.
    * ``length == 0`` or ``offset < 0`` raise :class:`~fasts3.errors.S3URLError` here.
    * ``version_id`` reads that version of the object.
    """

    __slots__ = ("key", "offset", "length", "version_id")

    def __init__(
        self, key: str, offset: int | None = 0, length: int | None = None,
        version_id: str | None = None,
    ) -> None:
        if offset is None:
            offset = 0
        if not isinstance(key, str):
            raise S3URLError(f"S3GetObject key must be a str, not {type(key).__name__}")
        if not isinstance(offset, int) or offset < 0:
            raise S3URLError(f"S3GetObject offset must be an int >= 0, got {offset!r}", url=key)
        if length is not None and (not isinstance(length, int) or length == 0):
            raise S3URLError(
                f"S3GetObject length must be a non-zero int or None, got {length!r}", url=key
            )
        self.key = key
        self.offset = offset
        self.length = length
        self.version_id = version_id

    def range_header(self) -> str | None:
        """The HTTP ``Range`` value for this request, or ``None`` for the whole object."""
        if self.length is None:
            return f"bytes={self.offset}-" if self.offset else None
        if self.length < 0:
            return f"bytes={self.length}"
        return f"bytes={self.offset}-{self.offset + self.length - 1}"

    def __repr__(self) -> str:
        return f"S3GetObject(key={self.key!r}, offset={self.offset}, length={self.length})"


class S3PutObject:
    """An object to upload: ``value`` (``str``/``bytes``/readable binary file) or ``path``.

    Exactly one of ``value`` and ``path`` must be given. ``metadata`` is a JSON-encodable
    dict with str names, stored as Metaflow stores it (names and JSON types kept; at most
    2 KB encoded, see ``fasts3.headers``). ``encryption`` is ``"AES256"`` or ``"aws:kms"``.
    The keyword-only ``acl`` (a canned ACL such as ``"public-read"``), ``cache_control``,
    ``content_encoding`` and ``content_disposition`` set those headers of the new object;
    ``None`` takes the value given to the ``put*`` call (see
    :class:`fasts3.headers.PutOptions`).
    """

    __slots__ = ("key", "value", "path", "content_type", "encryption", "metadata", "acl",
                 "cache_control", "content_encoding", "content_disposition")

    def __init__(
        self,
        key: str,
        value: str | bytes | IO[bytes] | None = None,
        path: str | os.PathLike[str] | None = None,
        content_type: str | None = None,
        encryption: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        *,
        acl: str | None = None,
        cache_control: str | None = None,
        content_encoding: str | None = None,
        content_disposition: str | None = None,
    ) -> None:
        if (value is None) == (path is None):
            raise S3InvalidObject("S3PutObject needs exactly one of value= and path=", url=key)
        self.key = key
        self.value = value
        self.path = os.fspath(path) if path is not None else None
        self.content_type = content_type
        self.encryption = encryption
        self.metadata = dict(metadata) if metadata else None
        self.acl = acl
        self.cache_control = cache_control
        self.content_encoding = content_encoding
        self.content_disposition = content_disposition

    def __repr__(self) -> str:
        src = f"path={self.path!r}" if self.path is not None else "value=<...>"
        return f"S3PutObject(key={self.key!r}, {src})"


class S3Object:
    """One result: an object (or prefix) in S3 and, if downloaded, its local copy.

    ``path`` is valid until the :class:`~fasts3.S3` context closes. ``size`` is in bytes
    (the local file's size when downloaded). ``last_modified`` is epoch seconds (float).
    """

    __slots__ = (
        "_url",
        "_prefix",
        "_key",
        "_path",
        "_size",
        "_exists",
        "_content_type",
        "_metadata",
        "_range_info",
        "_last_modified",
        "_encryption",
        "_has_info",
        "_version_id",
        "_etag",
    )

    def __init__(
        self,
        url: str,
        prefix: str | None = None,
        path: str | None = None,
        size: int | None = None,
        exists: bool | None = None,
        content_type: str | None = None,
        metadata: dict[str, Any] | None = None,
        range_info: RangeInfo | None = None,
        last_modified: float | None = None,
        encryption: str | None = None,
        has_info: bool = False,
        version_id: str | None = None,
        etag: str | None = None,
    ) -> None:
        self._url = url
        self._prefix = None if prefix is None or prefix == url else prefix
        self._path = path
        self._size = size
        self._exists = (size is not None) if exists is None else exists
        key = relative_key(self._prefix, url)
        # A listed prefix ("dir/") is reported as "dir", as Metaflow does.
        self._key = key.rstrip("/") if not self._exists and key.endswith("/") else key
        self._content_type = content_type
        self._metadata = metadata
        self._range_info = range_info
        self._last_modified = last_modified
        self._encryption = encryption
        self._has_info = has_info
        self._version_id = version_id
        self._etag = etag

    @property
    def url(self) -> str:
        """The full ``s3://bucket/key`` URL."""
        return self._url

    @property
    def prefix(self) -> str | None:
        """The root (or listed prefix) ``key`` is relative to; ``None`` if ``key`` is a URL."""
        return self._prefix

    @property
    def key(self) -> str:
        """The key relative to ``prefix``, or the full URL when there is no prefix."""
        return self._key

    @property
    def exists(self) -> bool:
        """True if the object exists in S3 (False for missing objects and listed prefixes)."""
        return self._exists

    @property
    def downloaded(self) -> bool:
        """True if the object's bytes are in a local file (``path``)."""
        return self._path is not None

    @property
    def path(self) -> str | None:
        """Local file holding the downloaded bytes, or ``None``."""
        return self._path

    @property
    def blob(self) -> bytes | None:
        """The downloaded bytes (read from ``path`` on each access), or ``None``."""
        if self._path is None:
            return None
        with open(self._path, "rb") as f:
            return f.read()

    @property
    def text(self) -> str | None:
        """The downloaded bytes decoded as UTF-8 (invalid bytes replaced), or ``None``."""
        blob = self.blob
        return None if blob is None else blob.decode("utf-8", errors="replace")

    @property
    def size(self) -> int | None:
        """Size in bytes of what is held (the range, if ranged), or ``None`` if unknown."""
        return self._size

    @property
    def has_info(self) -> bool:
        """True if metadata/content type/last-modified were requested and obtained."""
        return self._has_info

    @property
    def metadata(self) -> dict[str, Any] | None:
        """User metadata (Metaflow's JSON attributes merged over plain ``x-amz-meta-*``
        headers), or ``None`` if the object has none or it was not requested."""
        return self._metadata

    @property
    def content_type(self) -> str | None:
        """The object's Content-Type, or ``None`` if not known."""
        return self._content_type

    @property
    def range_info(self) -> RangeInfo | None:
        """``(total_size, request_offset, request_length)`` for downloads, else ``None``."""
        return self._range_info

    @property
    def last_modified(self) -> float | None:
        """Last modification time in epoch seconds (a float, as in Metaflow), or ``None`` if
        not known."""
        return self._last_modified

    @property
    def encryption(self) -> str | None:
        """Server-side encryption (``"AES256"``, ``"aws:kms"``) or ``None``."""
        return self._encryption

    @property
    def version_id(self) -> str | None:
        """The object's version id when the bucket is versioned, else ``None``."""
        return self._version_id

    @property
    def etag(self) -> str | None:
        """The object's ETag without quotes, or ``None`` if not known."""
        return self._etag

    def __str__(self) -> str:
        if self._path is not None:
            return f"<S3Object {self._url} ({self._size} bytes, local)>"
        if self._exists:
            return f"<S3Object {self._url} ({self._size} bytes, in S3)>"
        if self._size is None and not self._exists and self._url.endswith("/"):
            return f"<S3Object {self._url} (prefix)>"
        return f"<S3Object {self._url} (object does not exist)>"

    __repr__ = __str__
