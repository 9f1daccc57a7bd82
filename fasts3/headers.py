"""HTTP headers <-> object info: user metadata encoding, and what an S3Object reports.

User metadata is written as Metaflow writes it: the whole dict as JSON in one header,
``x-amz-meta-metaflow-user-attributes``, so names keep their case and values their JSON types
(``{"Epoch": 12}`` reads back as such), and ``metaflow.S3`` reads what fasts3 wrote (and the
reverse). S3 limits user metadata to 2 KB (names plus values, UTF-8): a larger dict raises
:class:`~fasts3.errors.S3InvalidObject` before anything is sent.

On the way back, plain ``x-amz-meta-<name>`` headers written by other tools are read too
(lower-case names, string values; RFC 2047 ``=?UTF-8?B?...?=`` values, as S3 returns
non-ASCII ones, are decoded) and merged with the JSON attributes, which win on a clash. An
object without user metadata reports ``None``, as in Metaflow.

:class:`PutOptions` are the other headers an upload may set: a canned ACL, Cache-Control,
Content-Encoding and Content-Disposition (checked here, before anything is sent).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from typing import Any, NamedTuple

from .engine.s3xml import parse_http_date
from .errors import S3InvalidObject

META = "x-amz-meta-"
METAFLOW_ATTRS = "metaflow-user-attributes"
MAX_METADATA_BYTES = 2048
_RFC2047 = re.compile(r"^=\?utf-8\?b\?([A-Za-z0-9+/=]*)\?=$", re.I)
ENCRYPTION_VALUES = ("AES256", "aws:kms", "aws:kms:dsse")
CANNED_ACLS = ("private", "public-read", "public-read-write", "authenticated-read",
               "aws-exec-read", "bucket-owner-read", "bucket-owner-full-control")
_HEADER_VALUE = re.compile(r"[\x20-\x7e\t]+")


class PutOptions(NamedTuple):
    """Headers of a new object besides its type, metadata and encryption. ``None`` leaves a
    header out. ``acl`` is a canned ACL (:data:`CANNED_ACLS`); the others are sent as given
    (printable ASCII: S3 returns them on GET and HEAD)."""

    acl: str | None = None
    cache_control: str | None = None
    content_encoding: str | None = None
    content_disposition: str | None = None

    def over(self, defaults: PutOptions) -> PutOptions:
        """These options, each unset one taken from ``defaults``."""
        return PutOptions(*(mine if mine is not None else theirs
                            for mine, theirs in zip(self, defaults, strict=True)))

    @classmethod
    def of(cls, item: Any) -> PutOptions:
        """The options an :class:`~fasts3.S3PutObject` (or any object) carries as fields."""
        return cls(*(getattr(item, name, None) for name in cls._fields))

    def headers(self, url: str | None = None) -> dict[str, str]:
        """The HTTP headers; raises :class:`S3InvalidObject` (naming ``url``) for an unknown
        canned ACL or a value that is not a non-empty str of printable ASCII."""
        out = {}
        for name, header, value in zip(self._fields, _PUT_HEADERS, self, strict=True):
            if value is None:
                continue
            if not isinstance(value, str) or not _HEADER_VALUE.fullmatch(value):
                raise S3InvalidObject(f"{name} must be a non-empty str of printable ASCII, not "
                                      f"{value!r:.80}", url=url)
            if name == "acl" and value not in CANNED_ACLS:
                raise S3InvalidObject(f"acl must be a canned ACL, one of {CANNED_ACLS}, not "
                                      f"{value!r:.80}", url=url)
            out[header] = value
        return out


_PUT_HEADERS = ("x-amz-acl", "cache-control", "content-encoding", "content-disposition")


def metadata_headers(metadata: Mapping[str, Any] | None, url: str) -> dict[str, str]:
    """The ``x-amz-meta-metaflow-user-attributes`` header holding ``metadata`` as JSON (none
    for an empty dict). Raises :class:`S3InvalidObject` for a non-str name, a value JSON
    cannot encode, or more than 2 KB in all (S3's limit)."""
    if not metadata:
        return {}
    if not isinstance(metadata, Mapping):
        raise S3InvalidObject(f"metadata must be a dict, not {type(metadata).__name__}", url=url)
    for name in metadata:
        if not isinstance(name, str) or not name:
            raise S3InvalidObject(f"Invalid metadata name {name!r}: give a non-empty str",
                                  url=url)
    try:
        text = json.dumps(dict(metadata))  # ASCII only: safe in an HTTP header
    except (TypeError, ValueError) as e:
        raise S3InvalidObject(f"metadata must be JSON-encodable: {e}", url=url) from None
    size = len(METAFLOW_ATTRS) + len(text)
    if size > MAX_METADATA_BYTES:
        raise S3InvalidObject(f"User metadata is {size} bytes encoded; S3 allows "
                              f"{MAX_METADATA_BYTES} (2 KB) per object", url=url,
                              code="MetadataTooLarge")
    return {META + METAFLOW_ATTRS: text}


def put_headers(
    content_type: str, metadata: Mapping[str, Any] | None, encryption: str | None, url: str,
    options: PutOptions = PutOptions(),
) -> dict[str, str]:
    """All headers of an upload: content type, metadata, server-side encryption and the
    :class:`PutOptions`."""
    headers = {"content-type": content_type}
    headers.update(metadata_headers(metadata, url))
    headers.update(options.headers(url))
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
    """User metadata from response headers: plain ``x-amz-meta-*`` values with Metaflow's
    JSON attributes merged over them; ``{}`` if there is none."""
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
    mtime = parse_http_date(headers.get("last-modified"))
    return {
        "content_type": headers.get("content-type"),
        "metadata": metadata_of(headers) or None,
        "last_modified": float(mtime) if mtime is not None else None,
        "encryption": headers.get("x-amz-server-side-encryption"),
        "version_id": headers.get("x-amz-version-id"),
        "etag": (headers.get("etag") or "").strip('"') or None,
    }
