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
``AWS_CONFIG_FILE`` (default ``~/.aws/config``) merged, as botocore does, with the section of
the same name in ``AWS_SHARED_CREDENTIALS_FILE`` (default ``~/.aws/credentials``), which may
hold only keys here. Anything botocore would read differently (a variable set to "", a
profile defined twice, a malformed file) is left to it. ``tests/test_plain_env.py``
compares the answers with botocore's.
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
    doc). Never raises: anything unusual (a half key pair, an empty or unusual variable, an
    unreadable config file, a named profile that does not exist) is left to botocore and
    its errors."""
    svars = dict(session_vars or {})
    if client_params or role or profile or set(svars) - _KEY_VARS:
        return None
    env = os.environ
    if any(env.get(name) == "" for name in _SET_MEANS_SOMETHING) or \
            svars.get("region_name") == "":
        return None  # botocore reads a variable set to "" differently: let it
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


_SET_MEANS_SOMETHING = ("AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_DEFAULT_PROFILE",
                        "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE")
_CREDENTIAL_SETTINGS = frozenset({"aws_access_key_id", "aws_secret_access_key",
                                  "aws_session_token", "aws_security_token"})


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
    """The settings of the active profile ({} if it has none), as botocore merges them: the
    config file's section, then the credentials file's section of the same name, which may
    only hold keys here. ``None`` (ask botocore) if a file cannot be read or parsed as
    botocore would, the profile was named and does not exist, or ``default`` is defined
    twice in the config file (``[default]`` and ``[profile default]``)."""
    named = env.get("AWS_DEFAULT_PROFILE") or env.get("AWS_PROFILE")
    name = named or "default"
    config = _read(env.get("AWS_CONFIG_FILE") or "~/.aws/config")
    creds = _read(env.get("AWS_SHARED_CREDENTIALS_FILE") or "~/.aws/credentials")
    if config is None or creds is None:
        return None
    titles = [t for t in ((name, f"profile {name}") if name == "default"
                          else (f"profile {name}",)) if config.has_section(t)]
    if len(titles) > 1:
        return None
    section = {k.lower(): v for k, v in config.items(titles[0])} if titles else {}
    if creds.has_section(name):
        if {k.lower() for k, _ in creds.items(name)} - _CREDENTIAL_SETTINGS:
            return None  # botocore merges these into the profile
        if not titles:
            titles = [name]
    if named and not titles:
        return None  # botocore: ProfileNotFound
    return section


def _read(path: str) -> configparser.RawConfigParser | None:
    """The INI file at ``path`` (``~`` and ``$VAR`` expanded; empty if it does not exist),
    or ``None`` if it cannot be read or a nested value (``s3 =`` then indented
    ``key = value`` lines) is malformed: botocore would fail on the whole file."""
    path = os.path.expandvars(os.path.expanduser(path))
    parser = configparser.RawConfigParser()
    if not os.path.isfile(path):
        return parser
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, OSError, UnicodeDecodeError):
        return None
    for title in parser.sections():
        for _, value in parser.items(title):
            if value.startswith("\n") and any(
                    line.strip() and "=" not in line for line in value.splitlines()):
                return None
    return parser
