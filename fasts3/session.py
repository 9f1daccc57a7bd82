"""Where requests go and who signs them: boto3's normal credential chain and botocore's
endpoint/region resolution, reduced to what worker processes need (an
:class:`~fasts3.engine.transport.EndpointSpec` and frozen
:class:`~fasts3.engine.sigv4.Credentials`).

Only the parent process imports boto3. Credentials are re-read from the (refreshing) botocore
credential object before every batch, so long jobs with temporary credentials keep working.
"""

from __future__ import annotations

import logging
import os
from typing import Any
from urllib.parse import urlsplit

from .engine.sigv4 import Credentials
from .engine.transport import EndpointSpec
from .errors import S3AccessDenied, S3Error

log = logging.getLogger("fasts3.session")


class Connection:
    """A boto3 session and S3 client, resolved once per :class:`~fasts3.S3` context."""

    def __init__(
        self,
        endpoint_url: str | None = None,
        session_vars: dict[str, Any] | None = None,
        client_params: dict[str, Any] | None = None,
        role: str | None = None,
    ) -> None:
        import boto3
        from botocore import UNSIGNED
        from botocore.config import Config

        params = dict(client_params or {})
        endpoint_url = (endpoint_url or params.pop("endpoint_url", None)
                        or os.environ.get("AWS_ENDPOINT_URL_S3")
                        or os.environ.get("AWS_ENDPOINT_URL"))
        self.session = boto3.session.Session(**(session_vars or {}))
        if role:
            self.session = _assume_role(self.session, role)
        config = params.pop("config", None)
        anonymous = config is not None and getattr(config, "signature_version", None) is UNSIGNED
        self.client = self.session.client("s3", endpoint_url=endpoint_url,
                                          config=config or Config(), **params)
        meta = self.client.meta
        region = meta.region_name or "us-east-1"
        parts = urlsplit(meta.endpoint_url)
        style = (meta.config.s3 or {}).get("addressing_style") if meta.config.s3 else None
        path_style = style == "path" or (style != "virtual" and endpoint_url is not None)
        self.endpoint = EndpointSpec(
            parts.scheme, parts.hostname or "", parts.port or (443 if parts.scheme == "https"
                                                               else 80),
            region, path_style,
        )
        self._anonymous = anonymous
        self._creds = None if anonymous else self.session.get_credentials()
        if self._creds is None and not anonymous:
            log.info("no AWS credentials found; sending unsigned (anonymous) requests")

    def credentials(self) -> Credentials:
        """Current frozen credentials (refreshed by botocore when they near expiry)."""
        if self._creds is None:
            return Credentials(None, None, None)
        try:
            f = self._creds.get_frozen_credentials()
        except Exception as e:  # botocore raises many types here; none should escape raw
            raise S3AccessDenied(f"Could not obtain AWS credentials: {type(e).__name__}",
                                 code="NoCredentials") from None
        return Credentials(f.access_key, f.secret_key, f.token)


def _assume_role(session, role_arn: str):
    """A session whose credentials come from STS AssumeRole and refresh automatically."""
    from botocore.credentials import (
        AssumeRoleCredentialFetcher,
        DeferredRefreshableCredentials,
    )

    fetcher = AssumeRoleCredentialFetcher(
        client_creator=session._session.create_client,
        source_credentials=session._session.get_credentials(),
        role_arn=role_arn,
    )
    creds = DeferredRefreshableCredentials(method="assume-role",
                                           refresh_using=fetcher.fetch_credentials)
    import boto3

    botocore_session = session._session
    botocore_session._credentials = creds
    try:
        return boto3.session.Session(botocore_session=botocore_session)
    except Exception as e:
        raise S3Error(f"Could not assume role: {type(e).__name__}", url=role_arn) from None
