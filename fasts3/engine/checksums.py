"""Integrity checks on the data path.

Downloads: when a response carries the whole object, its body is hashed while it streams to
disk and compared with what the server says the object's checksum is:

* ``x-amz-checksum-crc32`` (zlib), ``-sha1``, ``-sha256`` (hashlib) -- full-object values only
  (composite ``...-N`` values of multipart uploads are skipped); CRC32C and CRC64NVME have no
  standard-library implementation and are skipped. Servers send these only when asked
  (``x-amz-checksum-mode: ENABLED``) and usually only for non-ranged GETs.
* else the ETag, when it is an MD5 of the body: 32 hex digits, no ``-N`` suffix (multipart),
  and no SSE-KMS / SSE-C encryption (whose ETags are not MD5s).

A mismatch raises :class:`~fasts3.engine.transport.NetworkFailure` (``ChecksumMismatch``),
which is transient: the worker retries the request.

Uploads: :func:`content_md5` gives the ``Content-MD5`` header value, which S3 verifies (a
mismatch is ``400 BadDigest``, also retried).
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import zlib

from .transport import NetworkFailure

REQUEST_HEADERS = {"x-amz-checksum-mode": "ENABLED"}
_MD5_ETAG = re.compile(r"^[0-9a-fA-F]{32}$")
_CHUNK = 1 << 20


class _CRC32:
    """hashlib-like wrapper around :func:`zlib.crc32` (digest: 4 bytes, big-endian)."""

    def __init__(self) -> None:
        self.value = 0

    def update(self, data) -> None:
        self.value = zlib.crc32(data, self.value)

    def digest(self) -> bytes:
        return self.value.to_bytes(4, "big")


class Digest:
    """A running checksum of a response body and the value it must end at."""

    def __init__(self, name: str, hasher, expected: bytes) -> None:
        self.name = name
        self.hasher = hasher
        self.expected = expected

    def update(self, data) -> None:
        self.hasher.update(data)

    def verify(self) -> None:
        """Raise ``NetworkFailure("ChecksumMismatch")`` unless the body matched."""
        got = self.hasher.digest()
        if got != self.expected:
            raise NetworkFailure("ChecksumMismatch", f"{self.name} of the body is {got.hex()}, "
                                 f"the server says {self.expected.hex()}")


def _b64(value: str) -> bytes | None:
    try:
        return base64.b64decode(value, validate=True)
    except ValueError:
        return None


VERIFY_MODES = ("off", "fast", "all")
UPLOAD_MODES = ("off", "crc32", "md5")


def for_download(headers: dict[str, str], mode: str = "all") -> Digest | None:
    """The check to run on a response that holds the whole object (``headers`` lower case),
    or ``None`` if the server gave nothing verifiable. ``mode`` ``"fast"`` uses only
    ``x-amz-checksum-crc32`` (~0.3 s CPU/GiB); ``"all"`` also SHA-1/SHA-256 and the MD5 ETag
    (~0.8-1.9 s CPU/GiB)."""
    if mode == "off":
        return None
    algorithms = (("crc32", _CRC32),) if mode == "fast" else (
        ("crc32", _CRC32), ("sha1", hashlib.sha1), ("sha256", hashlib.sha256))
    if headers.get("x-amz-checksum-type", "FULL_OBJECT").upper() == "FULL_OBJECT":
        for name, factory in algorithms:
            value = headers.get("x-amz-checksum-" + name)
            if value and "-" not in value:
                expected = _b64(value)
                if expected:
                    return Digest(name.upper(), factory(), expected)
    etag = headers.get("etag", "").strip().strip('"')
    if mode != "all" or not _MD5_ETAG.match(etag):
        return None
    if headers.get("x-amz-server-side-encryption", "").startswith("aws:kms") or headers.get(
            "x-amz-server-side-encryption-customer-algorithm"):
        return None
    return Digest("MD5", hashlib.md5(usedforsecurity=False), bytes.fromhex(etag))


def content_md5(body: bytes | None, fd: int | None = None, offset: int = 0,
                length: int = 0) -> str:
    """Base64 MD5 (the ``Content-MD5`` header) of ``body``, or of ``length`` bytes of the
    open file ``fd`` from ``offset``. Raises ``OSError`` if the file is shorter."""
    md5 = _digest_of(hashlib.md5(usedforsecurity=False), body, fd, offset, length)
    return base64.b64encode(md5.digest()).decode()


def _digest_of(hasher, body: bytes | None, fd: int | None, offset: int, length: int):
    if body is not None:
        hasher.update(body)
        return hasher
    assert fd is not None, "give a body or a file"
    while length:
        chunk = os.pread(fd, min(length, _CHUNK), offset)
        if not chunk:
            raise OSError("local file shrank while being read")
        hasher.update(chunk)
        offset += len(chunk)
        length -= len(chunk)
    return hasher


def upload_headers(mode: str, body: bytes | None, fd: int | None = None, offset: int = 0,
                   length: int = 0) -> dict[str, str]:
    """The checksum header S3 verifies for an upload body (``bytes`` or ``length`` bytes of
    ``fd`` from ``offset``): ``x-amz-checksum-crc32`` (``"crc32"``), ``Content-MD5``
    (``"md5"``) or none (``"off"``). A mismatch makes S3 answer 400 BadDigest (retried)."""
    if mode == "crc32":
        crc = _digest_of(_CRC32(), body, fd, offset, length)
        return {"x-amz-checksum-crc32": base64.b64encode(crc.digest()).decode()}
    if mode == "md5":
        return {"content-md5": content_md5(body, fd, offset, length)}
    return {}
