"""Buckets that live in another region than the endpoint's: S3 answers a request signed for
the wrong region with ``301 PermanentRedirect`` (or ``400 AuthorizationHeaderMalformed``)
and names the bucket's region in ``x-amz-bucket-region``. The transport then re-signs the
request for that region and sends it again, once; the region is remembered for the bucket
(per :class:`~fasts3.engine.transport.Transport`, i.e. per worker process), so later requests
go right the first time. On AWS the regional host changes with the region
(``s3.<region>.amazonaws.com``); a custom endpoint keeps its host.
"""

from __future__ import annotations

import re
from typing import Any

from .sigv4 import Signer

_AWS_S3_HOST = re.compile(r"^s3([.-][a-z0-9-]+)?\.amazonaws\.com(\.cn)?$")
_REGION = re.compile(r"^[a-z0-9-]{1,64}$")
_REDIRECT_CODES = frozenset({"PermanentRedirect", "AuthorizationHeaderMalformed",
                             "IllegalLocationConstraintException"})


def is_aws_host(host: str | None) -> bool:
    """Whether ``host`` is one of AWS's S3 endpoints (global, regional, dual-stack...)."""
    if not host:
        return False
    return bool(_AWS_S3_HOST.match(host)) or host.endswith((".amazonaws.com",
                                                               ".amazonaws.com.cn"))


def regional_host(host: str, region: str) -> str:
    """The endpoint host to use for a bucket in ``region``: AWS's regional S3 host when
    ``host`` is an AWS S3 host, else ``host`` unchanged."""
    m = _AWS_S3_HOST.match(host)
    if not m:
        return host
    return f"s3.{region}.amazonaws.com" + (m.group(2) or "")


class BucketRegions:
    """The regions learned from redirects, per bucket, for one endpoint (thread-safe: one
    dict assignment per lesson)."""

    def __init__(self, endpoint: Any) -> None:
        self._endpoint = endpoint
        self._regions: dict[str, str] = {}
        self._signers: dict[str, Signer] = {}

    def region(self, bucket: str) -> str:
        return self._regions.get(bucket, self._endpoint.region)

    def host(self, bucket: str) -> str:
        """The host (without the bucket) requests for ``bucket`` go to."""
        region = self._regions.get(bucket)
        if region is None:
            return self._endpoint.host
        return regional_host(self._endpoint.host, region)

    def signer(self, bucket: str, default: Signer) -> Signer:
        """``default`` (the transport's current signer), or one with the same credentials
        for the region learned for ``bucket``."""
        region = self._regions.get(bucket)
        if region is None or region == default.region:
            return default
        signer = self._signers.get(region)
        if signer is None or signer.credentials is not default.credentials:
            signer = self._signers[region] = Signer(default.credentials, region,
                                                    default.service)
        return signer

    def learn(self, bucket: str, status: int, code: str, headers: dict[str, str],
              used: str | None = None) -> bool:
        """Record the region named by a redirect answer; True if the request should be sent
        again: the answer is a region redirect to another region than ``used``, the one the
        request was signed for (default: the one known for ``bucket`` now). Many requests
        may be in flight when the first redirect arrives: each is sent again once."""
        if status not in (301, 400) or (status == 400 and code not in _REDIRECT_CODES
                                            and code != "400"):  # a HEAD has no body
            return False
        region = (headers.get("x-amz-bucket-region") or "").strip()
        if not _REGION.match(region) or region == (used or self.region(bucket)):
            return False
        self._regions[bucket] = region
        return True
