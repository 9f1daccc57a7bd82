"""The fasts3 exception tree.

Every error a user sees is an :class:`S3Error`. Each carries the URL it concerns (``url``), the
S3 error code when the server sent one (``code``, e.g. ``"NoSuchKey"``) and the HTTP status
(``status``, 0 when no response arrived). Messages never contain credentials.

The worker processes never raise these across the process boundary: they report
``(status, code, message, transient, attempts)`` and the parent calls
:func:`retries_exhausted` (transient failures that used every attempt) or
:func:`error_from_response` (the rest). Whether a failure is transient is decided once, in the
engine's transport (``engine/transport.py``, ``engine/network.py``); this module only picks
the exception type.
"""

from __future__ import annotations

from collections.abc import Sequence


class S3Error(Exception):
    """Base class of every fasts3 error.

    Attributes:
        url: the ``s3://bucket/key`` URL the error concerns, or ``None``.
        code: the S3 error code (``"NoSuchKey"``, ``"SlowDown"``, ...) or a fasts3 code.
        status: the HTTP status of the failed response; 0 if there was none.
    """

    def __init__(
        self, message: str, url: str | None = None, code: str | None = None, status: int = 0
    ) -> None:
        self.url = url
        self.code = code
        self.status = status
        self.message = message
        super().__init__(self._format())

    def _format(self) -> str:
        parts = [self.message]
        if self.url:
            parts.append(f"url={self.url}")
        if self.code:
            parts.append(f"code={self.code}")
        if self.status:
            parts.append(f"status={self.status}")
        return " | ".join(parts) if len(parts) > 1 else parts[0]

    def __reduce__(self):  # keep exceptions picklable with their fields
        return (_rebuild, (type(self), self.message, self.url, self.code, self.status))


def _rebuild(cls, message, url, code, status):
    return cls(message, url=url, code=code, status=status)


class S3NotFound(S3Error, FileNotFoundError):
    """The object, bucket or local file does not exist (404, NoSuchKey, NoSuchBucket)."""


class S3AccessDenied(S3Error, PermissionError):
    """The credentials were refused (403: AccessDenied, SignatureDoesNotMatch, ...)."""


class S3InvalidRange(S3Error):
    """A byte range starts at or past the end of the object (416 InvalidRange)."""


class S3URLError(S3Error, ValueError):
    """A URL, root or key is malformed or not allowed here. Raised before any request."""


class S3InvalidObject(S3Error, TypeError):
    """A value given to ``put`` is not ``str``, ``bytes`` or a readable binary file object."""


class S3ObjectChanged(S3Error):
    """The object was overwritten (its ETag or size changed) while it was being read
    (``S3.open()``, ZIP extraction); code ``ObjectChanged``, status 412 when S3 said so."""


class S3TransientError(S3Error):
    """A failure that may succeed when retried (5xx, SlowDown, reset, short body)."""


class S3RetriesExhausted(S3TransientError):
    """Transient failures persisted through every allowed attempt.

    Attributes:
        urls: every URL whose request gave up (the first is also ``url``).
    """

    def __init__(
        self,
        message: str,
        url: str | None = None,
        code: str | None = None,
        status: int = 0,
        urls: Sequence[str] = (),
    ) -> None:
        self.urls = list(urls) or ([url] if url else [])
        super().__init__(message, url=url, code=code, status=status)

    def __reduce__(self):
        return (_rebuild_exhausted, (self.message, self.url, self.code, self.status, self.urls))


def _rebuild_exhausted(message, url, code, status, urls, cls=S3RetriesExhausted):
    return cls(message, url=url, code=code, status=status, urls=urls)


class S3NetworkError(S3RetriesExhausted):
    """Every attempt failed without a usable answer from the endpoint: connection refused
    (``ConnectionRefused``), reset (``ConnectionReset``), name resolution (``DNSFailure``),
    connect or read timeout (``ConnectTimeout``, ``Timeout``), a TLS error mid-stream
    (``SSLError``), a body cut short (``ShortBody``) or another socket error
    (``NetworkError``). The message names the endpoint (``host:port``); ``status`` is 0."""

    def __reduce__(self):
        return (_rebuild_exhausted, (self.message, self.url, self.code, self.status, self.urls,
                                     type(self)))


class S3CertificateError(S3Error):
    """The endpoint's TLS certificate could not be verified (code ``CertificateError``). Not
    retried: point ``AWS_CA_BUNDLE`` or ``client_params={"verify": "/path/ca.pem"}`` at the
    CA that signed it (``verify=False`` skips the check)."""


class S3ProtocolError(S3Error):
    """The server's answer breaks the HTTP/S3 protocol in a way a retry would not fix: a
    body framed by neither Content-Length nor chunked encoding (``UnframedResponse``), a
    ranged GET answered with the whole object (``RangeIgnored``), a listing marked truncated
    without a continuation token (``TruncatedListing``). Nothing is written under a final
    name and nothing is deleted because of such an answer."""


class S3NoCredentials(S3AccessDenied):
    """No usable credentials: none were found anywhere in boto3's chain (``NoCredentials``),
    or only part of a key pair was set, e.g. ``AWS_ACCESS_KEY_ID`` without
    ``AWS_SECRET_ACCESS_KEY`` (``PartialCredentials``). For public buckets pass
    ``anonymous=True`` (CLI: ``--no-sign-request``) to send unsigned requests."""


_NOT_FOUND_CODES = frozenset({"NoSuchKey", "NoSuchBucket", "NotFound", "NoSuchUpload"})
_DENIED_CODES = frozenset(
    {
        "AccessDenied",
        "SignatureDoesNotMatch",
        "InvalidAccessKeyId",
        "ExpiredToken",
        "InvalidToken",
        "TokenRefreshRequired",
        "AllAccessDisabled",
        "AccountProblem",
    }
)


NETWORK_CODES = frozenset({"ConnectionRefused", "ConnectionReset", "DNSFailure", "ConnectTimeout",
                           "Timeout", "SSLError", "ShortBody", "NetworkError"})
_PROTOCOL_CODES = frozenset({"UnframedResponse", "RangeIgnored", "TruncatedListing"})


def retries_exhausted(message: str, url: str | None, code: str | None, status: int,
                      attempts: int) -> S3RetriesExhausted:
    """The error for a transient failure that persisted through ``attempts`` tries:
    :class:`S3NetworkError` when no usable answer came (``code`` in :data:`NETWORK_CODES`),
    else :class:`S3RetriesExhausted`."""
    cls = S3NetworkError if code in NETWORK_CODES and not status else S3RetriesExhausted
    return cls(f"Gave up after {attempts} attempts: {message}", url, code, status,
               urls=[url] if url else [])


def error_from_response(status: int, code: str | None, message: str, url: str | None) -> S3Error:
    """Map a failed S3 response to the typed error a user should see.

    ``status`` is the HTTP status (0 if no response), ``code`` the S3 error code if any. A 404
    without a code (HEAD answers carry no body) is reported as ``NoSuchKey``, so ``info`` and
    ``get`` of a missing key raise the same error.
    """
    if status == 404 and (not code or code == "404"):
        code = "NoSuchKey"  # a HEAD answer has no body: name it as GET does
    code = code or (str(status) if status else None)
    if code == "CertificateError":
        return S3CertificateError(message or "TLS certificate not trusted", url, code, status)
    if code in _PROTOCOL_CODES:
        return S3ProtocolError(message or "Protocol violation", url, code, status)
    if code in ("NoCredentials", "PartialCredentials"):
        return S3NoCredentials(message or "No credentials", url, code, status)
    if status == 404 or code in _NOT_FOUND_CODES:
        return S3NotFound(message or "Not found", url, code, status)
    if status == 403 or code in _DENIED_CODES:
        return S3AccessDenied(message or "Access denied", url, code, status)
    if status == 416 or code == "InvalidRange":
        return S3InvalidRange(message or "Range not satisfiable", url, code, status)
    if status >= 500 or status == 0 or status == 429 or code in ("SlowDown", "RequestTimeout"):
        return S3TransientError(message or "Transient failure", url, code, status)
    return S3Error(message or "Request failed", url, code, status)
