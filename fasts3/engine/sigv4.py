"""AWS Signature Version 4 for S3 requests, lean enough for the data path.

botocore resolves the credentials (its normal chain, refreshed by the parent process); this
module only computes the ``Authorization`` header from them. Payloads are sent as
``UNSIGNED-PAYLOAD`` unless the caller passes the body's SHA-256. The signing key is cached per
day. ``tests/test_sigv4.py`` checks the output against botocore's own signer.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import NamedTuple
from urllib.parse import quote

UNSIGNED = "UNSIGNED-PAYLOAD"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


class Credentials(NamedTuple):
    """Frozen credentials handed to workers. ``access_key is None`` means anonymous."""

    access_key: str | None
    secret_key: str | None
    token: str | None = None

    def __repr__(self) -> str:  # never show secrets
        return f"Credentials(access_key={'***' if self.access_key else None})"


def quote_path(path: str) -> str:
    """URI-encode an S3 path once, keeping ``/`` (S3 does not double-encode)."""
    return quote(path, safe="/~")


def canonical_query(query: dict[str, str] | None) -> str:
    """``a=1&b=2`` sorted by name, every name and value URI-encoded."""
    if not query:
        return ""
    return "&".join(
        f"{quote(k, safe='~')}={quote(str(v), safe='~')}" for k, v in sorted(query.items())
    )


class Signer:
    """Signs requests for one region and service with one set of credentials."""

    def __init__(self, credentials: Credentials, region: str, service: str = "s3") -> None:
        self.credentials = credentials
        self.region = region
        self.service = service
        self._day = ""
        self._key = b""

    @property
    def anonymous(self) -> bool:
        return not self.credentials.access_key

    def _signing_key(self, day: str) -> bytes:
        if day != self._day:
            k = ("AWS4" + (self.credentials.secret_key or "")).encode()
            for part in (day, self.region, self.service, "aws4_request"):
                k = hmac.new(k, part.encode(), hashlib.sha256).digest()
            self._key, self._day = k, day
        return self._key

    def sign(
        self,
        method: str,
        host: str,
        quoted_path: str,
        query: str,
        headers: dict[str, str],
        payload_hash: str = UNSIGNED,
        now: float | None = None,
    ) -> None:
        """Add ``x-amz-date``, ``x-amz-content-sha256``, the session token and
        ``Authorization`` to ``headers`` (in place). Signs ``host`` and every ``x-amz-*``
        header; names in ``headers`` must already be lower case."""
        if self.anonymous:
            return
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
        day = stamp[:8]
        headers["x-amz-date"] = stamp
        headers["x-amz-content-sha256"] = payload_hash
        if self.credentials.token:
            headers["x-amz-security-token"] = self.credentials.token
        signed = {"host": host}
        for name, value in headers.items():
            if name.startswith("x-amz-") or name in ("content-md5", "content-type"):
                signed[name] = " ".join(str(value).split())
        names = sorted(signed)
        canonical = "\n".join(
            (
                method,
                quoted_path,
                query,
                "".join(f"{n}:{signed[n]}\n" for n in names),
                ";".join(names),
                payload_hash,
            )
        )
        scope = f"{day}/{self.region}/{self.service}/aws4_request"
        to_sign = "\n".join(
            ("AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest())
        )
        signature = hmac.new(
            self._signing_key(day), to_sign.encode(), hashlib.sha256
        ).hexdigest()
        headers["authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={self.credentials.access_key}/{scope}, "
            f"SignedHeaders={';'.join(names)}, Signature={signature}"
        )
