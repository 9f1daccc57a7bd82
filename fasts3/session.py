"""Where requests go and who signs them: boto3's normal credential chain and botocore's
endpoint/region resolution (skipped when the arguments and the environment decide them:
``plain_env``), reduced to what worker processes need (an
:class:`~fasts3.engine.transport.EndpointSpec` and frozen
:class:`~fasts3.engine.sigv4.Credentials`).

Only the parent process imports boto3. Credentials are re-read from the (refreshing) botocore
credential object before every batch, so long jobs with temporary credentials keep working.

Client options (all optional; explicit arguments win over ``session_vars``/``client_params``,
which win over the environment and the AWS config files):

* ``endpoint_url`` — else ``client_params["endpoint_url"]``, ``AWS_ENDPOINT_URL_S3``,
  ``AWS_ENDPOINT_URL``, the profile's ``endpoint_url`` (or its ``services`` section's
  ``s3 = endpoint_url = ...``), else AWS. Every endpoint that is not AWS's is a custom
  endpoint: path-style addressing unless ``addressing_style="virtual"``.
* TLS verification (HTTPS endpoints) — ``client_params["verify"]`` (``False``, or the path
  of a CA bundle), else ``AWS_CA_BUNDLE``, else the profile's ``ca_bundle``, else the
  system's CAs. It reaches the worker processes with the endpoint.
* ``profile``, ``region`` — the AWS config profile and region.
* ``addressing_style`` — ``"path"`` (``host/bucket/key``), ``"virtual"``
  (``bucket.host/key``) or ``None``/``"auto"``: path style for a custom endpoint, virtual
  hosting on AWS. Buckets with dots always use path style.
* ``anonymous`` — unsigned requests (public buckets); also detected from
  ``client_params={"config": Config(signature_version=UNSIGNED)}``.
* ``requester_pays`` — send ``x-amz-request-payer: requester`` on every request.
* ``role`` — assume this role through STS (an ARN, or a dict of AssumeRole parameters such
  as ``{"RoleArn": ..., "DurationSeconds": 3600, "ExternalId": ...}``); the temporary
  credentials refresh automatically before they expire. The STS endpoint follows botocore's
  resolution (``AWS_ENDPOINT_URL_STS``, the config file, else AWS).

Credentials come only from the standard chain or from these parameters. None found (and
``anonymous`` not set) raises :class:`~fasts3.errors.S3NoCredentials` rather than sending
unsigned requests that fail with AccessDenied; so does half a key pair.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from . import plain_env
from .engine import network, regions
from .engine.sigv4 import Credentials
from .engine.transport import EndpointSpec
from .errors import S3AccessDenied, S3Error, S3InvalidObject, S3NoCredentials

log = logging.getLogger("fasts3.session")

ADDRESSING_STYLES = (None, "auto", "path", "virtual")
REQUEST_PAYER = ("x-amz-request-payer", "requester")
_STORAGE_CLASS = re.compile(r"^[A-Z][A-Z0-9_]{1,63}$")


class _ClientArgs(NamedTuple):
    """What the control-plane client is built from (``params``: the rest of
    ``client_params``, ``verify`` included)."""

    endpoint_url: str | None
    config: Any
    anonymous: bool
    addressing_style: str | None
    params: dict[str, Any]


class Connection:
    """Endpoint, region and credentials, resolved once per :class:`~fasts3.S3` context:
    from the arguments and the environment alone when they decide it (``plain_env``: no
    botocore import), else through a boto3 session.

    Attributes: ``endpoint`` (what workers connect to), ``client`` (a boto3 S3 client, for
    rare control-plane calls only, built on first use), ``session`` (likewise),
    ``anonymous``. Raises :class:`S3Error` for
    invalid options (an unreadable CA bundle too), :class:`S3NoCredentials` when no (or
    only partial) credentials are found and ``anonymous`` is not set, and
    :class:`S3AccessDenied` if a role cannot be assumed.
    """

    def __init__(
        self,
        endpoint_url: str | None = None,
        session_vars: dict[str, Any] | None = None,
        client_params: dict[str, Any] | None = None,
        role: str | Mapping[str, Any] | None = None,
        *,
        region: str | None = None,
        profile: str | None = None,
        anonymous: bool = False,
        requester_pays: bool = False,
        addressing_style: str | None = None,
    ) -> None:
        if addressing_style not in ADDRESSING_STYLES:
            raise S3Error(f"addressing_style must be one of {ADDRESSING_STYLES[1:]}",
                          code="InvalidOption")
        params = dict(client_params or {})
        verify = params.pop("verify", None)
        endpoint_url = (endpoint_url or params.pop("endpoint_url", None)
                        or os.environ.get("AWS_ENDPOINT_URL_S3")
                        or os.environ.get("AWS_ENDPOINT_URL"))
        svars = dict(session_vars or {})
        if profile:
            svars["profile_name"] = profile
        if region:
            svars["region_name"] = region
            params.pop("region_name", None)
        self._svars = svars
        self._session: Any = None
        self._client: Any = None
        config = params.pop("config", None)
        self._other_params = bool(params)  # beyond endpoint_url, verify, region and config
        self._client_args = _ClientArgs(
            endpoint_url, config, anonymous, addressing_style,
            dict(params, verify=verify) if verify is not None else params)
        plain = plain_env.resolve(session_vars, client_params, role, profile, anonymous, region)
        if plain is not None:
            # The common case needs no botocore at all (see ``plain_env``).
            self.anonymous = anonymous
            self._creds: Any = plain.credentials
            region_name, style = plain.region or "us-east-1", None
            scoped: Mapping[str, Any] = {}
            parts = urlsplit(endpoint_url or f"https://s3.{region_name}.amazonaws.com")
        else:
            region_name, parts, style, scoped = self._resolve_with_botocore(role)
        if addressing_style and addressing_style != "auto":
            style = addressing_style
        custom = endpoint_url is not None or not regions.is_aws_host(parts.hostname)
        path_style = style == "path" or (style != "virtual" and custom)
        headers = (REQUEST_PAYER,) if requester_pays else ()
        self.endpoint = EndpointSpec(
            parts.scheme, parts.hostname or "",
            parts.port or (443 if parts.scheme == "https" else 80),
            region_name, path_style, headers,
            _verify_setting(verify, scoped) if parts.scheme == "https" else True,
        )

    def _resolve_with_botocore(self, role: Any) -> tuple[str, Any, str | None, dict]:
        """Session, credentials, region, endpoint parts and addressing style from botocore
        (profiles, config files, SSO, instance roles, ...)."""
        from botocore import UNSIGNED

        session = self.session
        config = self._config()
        self.anonymous = getattr(config, "signature_version", None) is UNSIGNED
        if role and not self.anonymous:
            self._session = session = _assume_role(session, role)
        endpoint_url = self._client_args.endpoint_url
        scoped = session._session.get_scoped_config() or {}
        if self._other_params or "endpoint_url" in scoped or "services" in scoped:
            # Anything unusual: let botocore build a client and resolve it all.
            meta = self.client.meta
            region_name = meta.region_name or "us-east-1"
            parts = urlsplit(meta.endpoint_url)
            style = (meta.config.s3 or {}).get("addressing_style") if meta.config.s3 else None
        else:
            # Without the ~0.15 s CPU of building a boto3 client: an explicit endpoint, or
            # AWS's regional endpoint for the session's region.
            region_name = session.region_name or "us-east-1"
            parts = urlsplit(endpoint_url or f"https://s3.{region_name}.amazonaws.com")
            style = (config.s3 or {}).get("addressing_style") or \
                (scoped.get("s3") or {}).get("addressing_style")
        self._creds = None if self.anonymous else _find_credentials(session)
        return region_name, parts, style, scoped

    @property
    def session(self) -> Any:
        """The boto3 session (made on first use: the common case never needs it). Raises
        :class:`S3Error` (``InvalidOption``) if botocore refuses the options (an unknown
        profile)."""
        if self._session is None:
            import boto3

            try:
                self._session = boto3.session.Session(**self._svars)
            except Exception as e:  # ProfileNotFound and friends
                raise S3Error(f"Could not create an AWS session: {e}",
                              code="InvalidOption") from None
        return self._session

    def _config(self) -> Any:
        """The botocore ``Config`` of the control-plane client: ``client_params["config"]``
        with ``anonymous`` and ``addressing_style`` merged in."""
        from botocore import UNSIGNED
        from botocore.config import Config

        args = self._client_args
        config = args.config or Config()
        if args.anonymous:
            config = config.merge(Config(signature_version=UNSIGNED))
        if args.addressing_style and args.addressing_style != "auto":
            s3cfg = dict(config.s3 or {}, addressing_style=args.addressing_style)
            config = config.merge(Config(s3=s3cfg))
        return config

    @property
    def client(self) -> Any:
        """A boto3 S3 client for rare control-plane calls (built on first use)."""
        if self._client is None:
            args = self._client_args
            self._client = self.session.client("s3", endpoint_url=args.endpoint_url,
                                               config=self._config(), **args.params)
        return self._client

    def credentials(self) -> Credentials:
        """Current frozen credentials (refreshed by botocore when they near expiry)."""
        if self._creds is None:
            return Credentials(None, None, None)
        if isinstance(self._creds, Credentials):
            return self._creds  # static, from the caller or the environment
        try:
            f = self._creds.get_frozen_credentials()
        except Exception as e:  # botocore raises many types here; none should escape raw
            raise S3AccessDenied(f"Could not obtain AWS credentials: {type(e).__name__}: {e}",
                                 code="NoCredentials") from None
        return Credentials(f.access_key, f.secret_key, f.token)


def _verify_setting(verify: Any, scoped: Mapping[str, Any]) -> bool | str:
    """The TLS verification setting of an HTTPS endpoint (a plain-HTTP one has none: its
    bundle is never read), resolved as botocore does: ``verify`` (client_params),
    ``AWS_CA_BUNDLE``, the profile's ``ca_bundle``, else True. A CA bundle must be readable:
    :class:`S3Error` (``InvalidOption``) names it otherwise."""
    if verify is None:
        verify = os.environ.get("AWS_CA_BUNDLE") or scoped.get("ca_bundle") or True
    if verify is False or verify is True:
        return verify
    path = os.path.abspath(os.path.expanduser(str(verify)))
    try:
        network.ssl_context(path)
    except (OSError, ValueError) as e:  # ssl.SSLError is an OSError
        raise S3Error(f"Cannot use the CA bundle {path}: {e}", code="InvalidOption") from None
    return path


def _find_credentials(session: Any) -> Any:
    """The session's botocore credentials; :class:`S3NoCredentials` if none (or only part
    of a key pair) can be found."""
    from botocore.exceptions import BotoCoreError

    try:
        creds = session.get_credentials()
    except BotoCoreError as e:  # PartialCredentialsError, a broken profile, ...
        code = "PartialCredentials" if "Partial" in type(e).__name__ else "NoCredentials"
        raise S3NoCredentials(f"Incomplete AWS credentials: {e}", code=code) from None
    if creds is None:
        raise S3NoCredentials(
            "No AWS credentials found (environment, AWS config/credentials files, instance "
            "or container roles). To read a public bucket without signing, pass "
            "anonymous=True (CLI: --no-sign-request)", code="NoCredentials")
    return creds


def upload_headers(encryption: str | None, kms_key_id: str | None,
                   storage_class: str | None) -> dict[str, str]:
    """Extra headers for every upload (PUT, CreateMultipartUpload, CopyObject).

    ``encryption`` is the upload's effective ``x-amz-server-side-encryption`` value; the KMS
    key id is only sent with ``aws:kms``/``aws:kms:dsse`` (S3 rejects it otherwise, so an
    upload that asks for ``AES256`` simply does not get it). ``storage_class`` is e.g.
    ``"STANDARD_IA"``. Raises :class:`S3InvalidObject` for a malformed storage class.
    """
    out: dict[str, str] = {}
    if kms_key_id and encryption in ("aws:kms", "aws:kms:dsse"):
        out["x-amz-server-side-encryption-aws-kms-key-id"] = kms_key_id
    if storage_class:
        if not _STORAGE_CLASS.match(storage_class):
            raise S3InvalidObject(f"Invalid storage class {storage_class!r}")
        out["x-amz-storage-class"] = storage_class
    return out


def _assume_role(session: Any, role: str | Mapping[str, Any]) -> Any:
    """``session``, its credentials now from STS AssumeRole (refreshed automatically)."""
    from botocore.credentials import (
        AssumeRoleCredentialFetcher,
        DeferredRefreshableCredentials,
    )

    if isinstance(role, str):
        role_arn, extra = role, {}
    else:
        extra = dict(role)
        role_arn = extra.pop("RoleArn", None)
        if not role_arn:
            raise S3Error("role= as a dict needs a 'RoleArn'", code="InvalidOption")
    source = session.get_credentials()
    if source is None:
        raise S3AccessDenied("Cannot assume a role without source credentials", url=role_arn,
                             code="NoCredentials")
    botocore_session = session._session
    fetcher = AssumeRoleCredentialFetcher(
        client_creator=botocore_session.create_client,
        source_credentials=source,
        role_arn=role_arn,
        extra_args=extra or None,
    )
    creds = DeferredRefreshableCredentials(method="assume-role",
                                           refresh_using=fetcher.fetch_credentials)
    # Swap the credentials in place: wrapping the botocore session in a second boto3
    # Session would register boto3's event handlers twice.
    botocore_session._credentials = creds
    log.info("assuming role %s", role_arn)
    return session
