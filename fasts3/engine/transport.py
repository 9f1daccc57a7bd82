"""Signed HTTP/1.1 requests to one endpoint, and the failures they raise.

* :class:`Signing` -- what both transports share: addressing (path or virtual style, the
  bucket's learned region), SigV4 signing (:meth:`Signing.prepare`) and the mapping of a
  socket/TLS exception to a :class:`NetworkFailure` (:meth:`Signing.failure`).
* the transports: the workers' event-loop one (``aiotransport.py``) and the blocking one of
  the parent's range reads (``blocking.py``, ``open()``). This module imports neither
  ``asyncio`` nor ``http.client``, so each process loads only the one it uses.

Failed responses raise :class:`HTTPFailure` with the S3 error code parsed from the body;
network failures raise :class:`NetworkFailure`. Both say whether a retry may help
(``transient``).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from . import network, regions, s3xml
from .sigv4 import UNSIGNED, Signer, canonical_query, quote_path

BUFFER_SIZE = 1 << 20
_TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})
_TRANSIENT_CODES = frozenset(
    {"SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable", "RequestTimeTooSkewed",
     "OperationAborted", "Throttling", "ThrottlingException", "BadDigest", "IncompleteBody"}
)


class EndpointSpec(NamedTuple):
    """Where requests go. ``path_style`` puts the bucket in the path, else in the host.
    ``headers`` are ``(name, value)`` pairs (lower case) sent, signed, with every request
    (e.g. ``x-amz-request-payer``)."""

    scheme: str
    host: str
    port: int
    region: str
    path_style: bool = True
    headers: tuple[tuple[str, str], ...] = ()
    #: TLS verification: True (system CAs), False (none) or a CA bundle path (see network.py)
    verify: bool | str = True


class HTTPFailure(Exception):
    """S3 answered with an error status. ``code`` is the S3 error code (or the status)."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str]) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers

    @property
    def transient(self) -> bool:
        return self.status in _TRANSIENT_STATUS or self.code in _TRANSIENT_CODES

    @property
    def throttled(self) -> bool:
        """The server asks for fewer requests: SlowDown and friends, 429, and any 503 (S3
        answers HEAD with a bare 503, no body to name the code)."""
        return self.code in ("SlowDown", "Throttling", "ThrottlingException") or self.status in (
            429, 503)


class NetworkFailure(Exception):
    """No usable response: refused, reset, timeout, short body, bad checksum (transient), or
    one no retry can fix (``transient=False``: an untrusted certificate, an unframed body,
    an ignored Range; see ``network.py`` and ``framing.py``)."""

    throttled = False
    status = 0

    def __init__(self, code: str, message: str, transient: bool = True) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.transient = transient


class LocalFileError(OSError):
    """Reading the local file being uploaded failed (not a regular file, shrank, I/O error).
    Not a network problem: the worker reports it as a permanent ``LocalIOError``."""


class Signing:
    """What both transports share: the endpoint, the signer, the regions learned from
    redirects (``regions.py``), the worker-wide checksum options, and how a request is
    addressed and signed (:meth:`prepare`)."""

    def __init__(
        self,
        endpoint: EndpointSpec,
        signer: Signer,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
    ) -> None:
        self.endpoint = endpoint
        self.signer = signer
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        # Worker-wide options the handlers read (see checksums.py).
        self.verify_checksums = "fast"  # "off" | "fast" | "all": see checksums.for_download
        self.upload_checksums = "crc32"  # "off" | "crc32" | "md5": see checksums.upload_headers
        self._ssl = network.ssl_context(endpoint.verify) if endpoint.scheme == "https" else None
        self._regions = regions.BucketRegions(endpoint)

    def _target(self, bucket: str, key: str) -> tuple[str, str]:
        ep = self.endpoint
        base = self._regions.host(bucket)
        if ep.path_style or "." in bucket:
            return base, quote_path(f"/{bucket}/{key}" if key else f"/{bucket}")
        return f"{bucket}.{base}", quote_path("/" + key)

    def prepare(self, method: str, bucket: str, key: str, query: dict[str, str] | None,
                headers: dict[str, str] | None, body_length: int | None,
                payload_hash: str | None) -> tuple[str, str, dict[str, str]]:
        """``(host, request target, headers)`` of a signed request (``host`` header
        included) for ``bucket``'s current region; ``body_length`` None: no body."""
        host, path = self._target(bucket, key)
        qs = canonical_query(query)
        hdrs = dict(headers) if headers else {}
        hdrs.update(self.endpoint.headers)
        if body_length is not None:
            hdrs["content-length"] = str(body_length)
        elif method in ("PUT", "POST"):
            hdrs["content-length"] = "0"
        host_header = host if self.endpoint.port in (80, 443) else f"{host}:{self.endpoint.port}"
        signer = self._regions.signer(bucket, self.signer)
        signer.sign(method, host_header, path, qs, hdrs, payload_hash or UNSIGNED)
        hdrs["host"] = host_header
        return host, path + ("?" + qs if qs else ""), hdrs

    def failure(self, exc: BaseException, host: str, connecting: bool = False,
                code: str | None = None) -> NetworkFailure:
        """The :class:`NetworkFailure` for a socket/TLS/HTTP exception (``network.py``
        decides the code and whether it is transient); ``code`` (e.g. ``ShortBody`` for a
        failure mid-body) replaces a reset, timeout or generic code, not ``SSLError``."""
        found, transient, message = network.classify(exc, f"{host}:{self.endpoint.port}",
                                                     connecting)
        if code and found in ("ConnectionReset", "Timeout", "NetworkError"):
            found = code
        return NetworkFailure(found, message, transient)


def error_answer(status: int, reason: str, headers: dict[str, str], data: bytes) -> HTTPFailure:
    """The :class:`HTTPFailure` of an error answer (``status`` >= 300) and its body."""
    s3_code, s3_message = s3xml.parse_error(data)
    return HTTPFailure(status, s3_code or str(status), s3_message or reason, headers)


def __getattr__(name: str) -> Any:
    """``Transport`` and ``Response`` moved to ``blocking.py``; still importable from here."""
    if name in ("Transport", "Response"):
        from . import blocking

        return getattr(blocking, name)
    raise AttributeError(name)
