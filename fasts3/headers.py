"""HTTP headers <-> object info: user metadata encoding, and what an S3Object reports.

User metadata is stored as ordinary ``x-amz-meta-<name>`` headers, so every S3 tool sees it.
Names are lower-cased (S3 does so anyway); values HTTP cannot carry verbatim (non-ASCII, line
breaks, leading/trailing whitespace) are RFC 2047 encoded (``=?UTF-8?B?...?=``, as S3 itself
does for non-ASCII) and decoded on the way back. Objects written by
Metaflow keep their metadata as JSON in ``x-amz-meta-metaflow-user-attributes``; that header is
decoded and merged transparently.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from typing import Any

from .engine.s3xml import parse_http_date
from .errors import S3InvalidObject

META = "x-amz-meta-"
METAFLOW_ATTRS = "metaflow-user-attributes"
_TOKEN = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
_RFC2047 = re.compile(r"^=\?utf-8\?b\?([A-Za-z0-9+/=]*)\?=$", re.I)
ENCRYPTION_VALUES = ("AES256", "aws:kms", "aws:kms:dsse")


def metadata_headers(metadata: Mapping[str, Any] | None, url: str) -> dict[str, str]:
    """``x-amz-meta-*`` headers for ``metadata``; raises S3InvalidObject for bad names."""
    out: dict[str, str] = {}
    for name, value in (metadata or {}).items():
        if not isinstance(name, str) or not _TOKEN.match(name):
            raise S3InvalidObject(f"Invalid metadata name {name!r}", url=url)
        text = value if isinstance(value, str) else json.dumps(value)
        # Encode what HTTP would not carry verbatim: non-ASCII, line breaks, leading or
        # trailing whitespace (servers strip it), and text that itself looks encoded.
        if (not text.isascii() or any(c in text for c in "\r\n") or text != text.strip()
                or _RFC2047.match(text)):
            text = "=?UTF-8?B?" + base64.b64encode(text.encode()).decode() + "?="
        out[META + name.lower()] = text
    return out


def put_headers(
    content_type: str, metadata: Mapping[str, Any] | None, encryption: str | None, url: str
) -> dict[str, str]:
    """All headers of an upload: content type, metadata, server-side encryption."""
    headers = {"content-type": content_type}
    headers.update(metadata_headers(metadata, url))
    if encryption:
        if encryption not in ENCRYPTION_VALUES:
            raise S3InvalidObject(f"encryption must be one of {ENCRYPTION_VALUES}", url=url)
        headers["x-amz-server-side-encryption"] = encryption
    return headers


def _decode(value: str) -> str:
    m = _RFC2047.match(value)
    if m:
        try:
            return base64.b64decode(m.group(1)).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return value
    return value


def metadata_of(headers: Mapping[str, str]) -> dict[str, Any]:
    """User metadata from response headers (Metaflow's JSON attributes merged in)."""
    out: dict[str, Any] = {}
    attrs = None
    for name, value in headers.items():
        if name.startswith(META):
            short = name[len(META):]
            if short == METAFLOW_ATTRS:
                attrs = value
            else:
                out[short] = _decode(value)
    if attrs:
        try:
            decoded = json.loads(_decode(attrs))
            if isinstance(decoded, dict):
                out.update(decoded)
        except ValueError:
            out[METAFLOW_ATTRS] = attrs
    return out


def info_of(headers: Mapping[str, str]) -> dict[str, Any]:
    """S3Object keyword arguments describing an object, from its response headers."""
    return {
        "content_type": headers.get("content-type"),
        "metadata": metadata_of(headers),
        "last_modified": parse_http_date(headers.get("last-modified")),
        "encryption": headers.get("x-amz-server-side-encryption"),
        "version_id": headers.get("x-amz-version-id"),
        "etag": (headers.get("etag") or "").strip('"') or None,
    }
