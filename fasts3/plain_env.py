"""Credentials and region without botocore, when the caller and the environment fix them.

Importing botocore and building a session costs ~70-100 ms of CPU before the first request,
a large share of a short command or of the time to the first object of a stream. When what
the caller passed and the environment already decide the answer -- a full key pair (in
``session_vars``, else ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``), no ``profile``,
``role`` or ``client_params`` -- and the AWS config file's profile sets nothing that would
change it, :func:`resolve` returns what botocore would, without importing it. Otherwise it
returns ``None`` and :class:`~fasts3.session.Connection` asks botocore.

The rules follow botocore's: explicit keys win; the environment's keys come first in the
credential chain (also when ``AWS_PROFILE`` names a profile); the session token is
``AWS_SECURITY_TOKEN``, else ``AWS_SESSION_TOKEN`` (botocore's order); the region is the
explicit one, else ``AWS_DEFAULT_REGION``, else the profile's ``region``. The profile is
``AWS_DEFAULT_PROFILE``, else ``AWS_PROFILE``, else ``default``, read from
``AWS_CONFIG_FILE`` (default ``~/.aws/config``). ``tests/test_plain_env.py`` compares the
answers with botocore's.
"""

from __future__ import annotations

import configparser
import os
from collections.abc import Mapping
from typing import Any, NamedTuple

from .engine.sigv4 import Credentials

_KEY_VARS = frozenset({"aws_access_key_id", "aws_secret_access_key", "aws_session_token",
                       "region_name"})
#: profile settings that change where requests go or how they are made: botocore decides
_PROFILE_SETTINGS = frozenset({"endpoint_url", "services", "s3", "ca_bundle",
                               "ignore_configured_endpoint_urls", "use_dualstack_endpoint",
                               "use_fips_endpoint", "s3_use_arn_region",
                               "s3_us_east_1_regional_endpoint"})


class Resolved(NamedTuple):
    """``credentials`` (``None``: anonymous) and ``region`` (``None``: none configured)."""

    credentials: Credentials | None
    region: str | None


def resolve(session_vars: Mapping[str, Any] | None, client_params: Mapping[str, Any] | None,
            role: Any, profile: str | None, anonymous: bool,
            region: str | None) -> Resolved | None:
    """What botocore would resolve, or ``None`` when only botocore can tell (see the module
    doc). Never raises: anything unusual (a half key pair, an unreadable config file, a
    named profile that does not exist) is left to botocore and its errors."""
    svars = dict(session_vars or {})
    if client_params or role or profile or set(svars) - _KEY_VARS:
        return None
    env = os.environ
    if anonymous:
        credentials = None
    else:
        credentials = _credentials(svars, env)
        if credentials is None:
            return None
    region = region or svars.get("region_name") or env.get("AWS_DEFAULT_REGION") or None
    section = _profile_section(env)
    if section is None or _PROFILE_SETTINGS & section.keys():
        return None
    return Resolved(credentials, region or section.get("region") or None)


def _credentials(svars: dict[str, Any], env: Mapping[str, str]) -> Credentials | None:
    names = ("aws_access_key_id", "aws_secret_access_key", "aws_session_token")
    if any(svars.get(n) is not None for n in names):
        key, secret, token = (svars.get(n) for n in names)
    else:
        if env.get("AWS_CREDENTIAL_EXPIRATION"):
            return None  # botocore refreshes these: its own business
        key, secret = env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY")
        token = env.get("AWS_SECURITY_TOKEN") or env.get("AWS_SESSION_TOKEN")
    if not (isinstance(key, str) and key and isinstance(secret, str) and secret):
        return None
    return Credentials(key, secret, token if isinstance(token, str) and token else None)


def _profile_section(env: Mapping[str, str]) -> dict[str, str] | None:
    """The settings of the active profile in the config file ({} if there is no file or no
    such section for ``default``); ``None`` if the file cannot be read or a named profile is
    missing."""
    name = env.get("AWS_DEFAULT_PROFILE") or env.get("AWS_PROFILE") or "default"
    path = os.path.expanduser(env.get("AWS_CONFIG_FILE") or "~/.aws/config")
    if not os.path.exists(path):
        return {} if name == "default" else None
    parser = configparser.RawConfigParser()
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, OSError, UnicodeDecodeError):
        return None
    for title in ((name, f"profile {name}") if name == "default" else (f"profile {name}",)):
        if parser.has_section(title):
            return {k.lower(): v for k, v in parser.items(title)}
    return {} if name == "default" else None
