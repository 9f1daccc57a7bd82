"""Ranged GETs of one object from the calling process, for :mod:`fasts3.seekable`.

A :class:`RangeReader` signs (with credentials re-read from the engine before each request, so
botocore refreshes reach it), sends and retries (``retry.run_with_retries``) range GETs on its own
:class:`~fasts3.engine.blocking.Transport` (one keep-alive connection per calling thread).
The first answer fixes the object's size, ETag and version; every later request carries
``If-Match`` and its answer is checked against them, so a changed object raises
:class:`S3ObjectChanged` and never yields mixed bytes. Failures are typed
:class:`~fasts3.errors.S3Error`\\ s naming the URL.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from typing import Any

from ..errors import S3Error, S3ObjectChanged
from . import framing
from .blocking import Transport
from .retry import RetryPolicy, TaskFailed, make_error, run_with_retries
from .sigv4 import Credentials, Signer
from .transport import EndpointSpec, HTTPFailure, NetworkFailure

log = logging.getLogger("fasts3.seekable")

_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+)")


class RangeReader:
    """Signed, retried, ETag-pinned range GETs of one object (thread-safe).

    ``credentials()`` returns the current credentials (the engine's one source), ``config``
    is a :class:`~fasts3.config.TransferConfig` (timeouts and retry policy). Counters:
    ``requests`` (sent, retries included), ``bytes_fetched``.
    """

    def __init__(self, endpoint: EndpointSpec, credentials: Callable[[], Credentials],
                 config: Any, url: str, bucket: str, key: str,
                 version_id: str | None = None) -> None:
        self._credentials = credentials
        self._creds = credentials()
        self._tr = Transport(endpoint, Signer(self._creds, endpoint.region),
                             config.connect_timeout, config.read_timeout)
        self._retry = RetryPolicy(config.max_attempts, config.backoff_base,
                                  config.backoff_max)
        self._lock = threading.Lock()
        self.url, self.bucket, self.key = url, bucket, key
        self.version_id = version_id
        self.size: int | None = None
        self.etag: str | None = None
        self.bytes_fetched = 0
        self.requests = 0

    def first(self, block_size: int, tail: bool) -> tuple[int, bytes]:
        """The opening request: learns size, ETag and version. Returns ``(offset, data)``."""
        rng = f"bytes=-{block_size}" if tail else f"bytes=0-{block_size - 1}"
        try:
            return self.get(rng, None, block_size)
        except S3Error as e:
            if e.status != 416:
                raise
        return self.get(None, None, block_size)  # an empty object has no byte range

    def get(self, rng: str | None, expect: tuple[int, int] | None,
            limit: int = 0) -> tuple[int, bytes]:
        """One range with retries. ``expect`` is the ``(offset, length)`` the answer must
        have; ``limit`` bounds a whole-object (200) answer. Raises typed S3 errors."""
        try:
            return run_with_retries(lambda _attempt: self._once(rng, expect, limit),
                                    self._retry, what=f"{self.url} ({rng})")
        except TaskFailed as e:
            raise make_error(e.info, self.url) from None

    def changed(self, why: str, status: int = 0) -> S3ObjectChanged:
        return S3ObjectChanged(f"Object changed while open ({why})", self.url,
                               "ObjectChanged", status)

    def _once(self, rng: str | None, expect: tuple[int, int] | None,
              limit: int) -> tuple[int, bytes]:
        creds = self._credentials()
        if creds != self._creds:  # botocore refreshed them
            self._creds = creds
            self._tr.signer = Signer(creds, self._tr.endpoint.region)
        headers = {"range": rng} if rng else {}
        if self.etag:
            headers["if-match"] = self.etag
        query = {"versionId": self.version_id} if self.version_id else None
        with self._lock:
            self.requests += 1
        try:
            resp = self._tr.send("GET", self.bucket, self.key, query, headers)
        except HTTPFailure as e:
            if e.status == 412:
                raise self.changed("the ETag no longer matches", 412) from None
            raise
        h = resp.headers
        length = framing.body_length(resp, lambda: self._tr.discard(self.bucket))
        m = _CONTENT_RANGE.match(h.get("content-range", ""))
        cap = None
        if resp.status == 206 and m:
            start, total = int(m.group(1)), int(m.group(3))
        else:  # a whole-object answer: only acceptable when small
            start, cap = 0, max(limit, expect[1] if expect else 0)
            if length is not None and length > cap:
                self._tr.discard(self.bucket)  # do not read a body we did not ask for
                raise NetworkFailure("RangeIgnored", f"a range GET was answered with the "
                                     f"whole object ({length} bytes)", transient=False)
        data = self._tr.read_all(self.bucket, resp, cap)
        if cap is not None:
            total = len(data)
        with self._lock:
            self.bytes_fetched += len(data)
        etag = h.get("etag")
        if self.size is None:
            self.size, self.etag = total, etag
            self.version_id = self.version_id or h.get("x-amz-version-id")
            if not etag:
                log.warning("%s: no ETag in the response; cannot detect overwrites", self.url)
        elif total != self.size or (etag and self.etag and etag != self.etag):
            raise self.changed(f"size {self.size} -> {total}" if total != self.size
                               else "new ETag")
        if expect is not None and (start, len(data)) != expect:
            raise NetworkFailure("BadRange", f"asked for {expect}, got {(start, len(data))}")
        return start, data

    def close(self) -> None:
        self._tr.close()
