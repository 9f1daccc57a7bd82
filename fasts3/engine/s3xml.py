"""The few S3 XML documents the engine reads and writes: errors, listings, multipart uploads,
batch deletes. Parsing is namespace-agnostic (S3-compatible servers differ)."""

from __future__ import annotations

import calendar
import time
import xml.etree.ElementTree as ET
from urllib.parse import unquote_plus


def escape(text: str) -> str:
    """``&``, ``<`` and ``>`` as XML entities (what ``xml.sax.saxutils.escape`` does, without
    importing ``urllib.request`` into every worker)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _same(text: str) -> str:
    return text


def _children(elem: ET.Element) -> dict[str, str]:
    return {_local(c.tag): (c.text or "") for c in elem}


def parse_error(data: bytes) -> tuple[str | None, str | None]:
    """``(code, message)`` from an S3 ``<Error>`` body; ``(None, None)`` if there is none."""
    if not data or b"<" not in data:
        return None, None
    try:
        root = ET.fromstring(data)
    except ET.ParseError:
        return None, data[:200].decode("utf-8", "replace")
    fields = _children(root)
    return fields.get("Code"), fields.get("Message")


_MONTHS = {m: i for i, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug",
                                        "Sep", "Oct", "Nov", "Dec"), 1)}


def parse_http_date(text: str | None) -> int | None:
    """RFC 7231 date (``Last-Modified``) to epoch seconds."""
    if not text:
        return None
    parts = text.split()  # "Mon, 01 Dec 2025 14:29:01 GMT": fast path, no strptime
    if len(parts) == 6 and parts[5] == "GMT" and parts[2] in _MONTHS:
        try:
            hh, mm, ss = parts[4].split(":")
            return calendar.timegm((int(parts[3]), _MONTHS[parts[2]], int(parts[1]),
                                    int(hh), int(mm), int(ss), 0, 0, 0))
        except ValueError:
            pass
    try:
        return calendar.timegm(time.strptime(text, "%a, %d %b %Y %H:%M:%S GMT"))
    except ValueError:
        return None


def parse_iso_date(text: str | None) -> int | None:
    """ISO 8601 (``2024-01-02T03:04:05.000Z``) to epoch seconds."""
    if not text:
        return None
    try:
        return calendar.timegm(time.strptime(text[:19], "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return None


def _url_encoded(root: ET.Element) -> bool:
    """Whether a listing's keys are URL-encoded (the server honoured ``encoding-type=url``;
    one that ignores it sends keys as they are, and no ``EncodingType``)."""
    return any(_local(c.tag) == "EncodingType" and (c.text or "").strip().lower() == "url"
               for c in root)


def parse_list(data: bytes) -> dict:
    """A ListObjectsV2 page: ``{"objects": [(key, size, last_modified, etag)],
    "prefixes": [prefix], "next": continuation token or None, "truncated": bool}`` (a
    truncated page without a token is the caller's to reject).

    Keys and prefixes are URL-decoded (form style: S3 writes a space as ``+``) when the page
    says ``EncodingType=url`` (listings ask for it: XML 1.0 cannot carry keys with control
    characters). The continuation token is opaque and passed back as received, as botocore
    does."""
    root = ET.fromstring(data)
    objects: list[tuple[str, int, int | None, str]] = []
    prefixes: list[str] = []
    token = None
    truncated = False
    dec = unquote_plus if _url_encoded(root) else _same
    for child in root:
        tag = _local(child.tag)
        if tag == "Contents":
            f = _children(child)
            objects.append(
                (dec(f.get("Key", "")), int(f.get("Size", "0") or 0),
                 parse_iso_date(f.get("LastModified")), f.get("ETag", "").strip('"'))
            )
        elif tag == "CommonPrefixes":
            prefixes.append(dec(_children(child).get("Prefix", "")))
        elif tag == "NextContinuationToken":
            token = child.text
        elif tag == "IsTruncated":
            truncated = (child.text or "").strip().lower() == "true"
    return {"objects": objects, "prefixes": prefixes, "next": token if truncated else None,
            "truncated": truncated}


def parse_upload_id(data: bytes) -> str:
    """The ``UploadId`` of an InitiateMultipartUploadResult."""
    uid = _children(ET.fromstring(data)).get("UploadId")
    if not uid:
        raise ET.ParseError("No UploadId in the CreateMultipartUpload response")
    return uid


def complete_body(parts: list[tuple]) -> bytes:
    """The CompleteMultipartUpload document for ``[(part_number, etag[, crc32]), ...]``
    (a part's base64 CRC32, when given, is listed as its ``ChecksumCRC32``)."""
    items = "".join(
        f"<Part><PartNumber>{p[0]}</PartNumber><ETag>\"{escape(p[1])}\"</ETag>"
        + (f"<ChecksumCRC32>{escape(p[2])}</ChecksumCRC32>" if len(p) > 2 and p[2] else "")
        + "</Part>"
        for p in sorted(parts)
    )
    return f"<CompleteMultipartUpload>{items}</CompleteMultipartUpload>".encode()


def check_complete(data: bytes) -> tuple[str | None, str | None]:
    """A 200 to CompleteMultipartUpload may still carry an ``<Error>``: ``(code, message)``."""
    if b"<Error>" in data[:512]:
        return parse_error(data)
    return None, None


def delete_body(keys: list[str]) -> bytes:
    """The DeleteObjects document (quiet mode) for up to 1000 keys."""
    items = "".join(f"<Object><Key>{escape(k)}</Key></Object>" for k in keys)
    return f"<Delete><Quiet>true</Quiet>{items}</Delete>".encode()


def parse_delete_errors(data: bytes) -> list[tuple[str, str, str]]:
    """``[(key, code, message)]`` for the keys a DeleteObjects call failed to delete."""
    root = ET.fromstring(data)
    out = []
    for child in root:
        if _local(child.tag) == "Error":
            f = _children(child)
            out.append((f.get("Key", ""), f.get("Code", ""), f.get("Message", "")))
    return out


def parse_uploads(data: bytes) -> dict:
    """A ListMultipartUploads page: ``{"uploads": [(key, upload_id, initiated epoch s)],
    "next": (key_marker, upload_id_marker) or None}``; keys and the key marker URL-decoded
    when the page says ``EncodingType=url``."""
    root = ET.fromstring(data)
    uploads = []
    fields: dict[str, str] = {}
    dec = unquote_plus if _url_encoded(root) else _same
    for child in root:
        tag = _local(child.tag)
        if tag == "Upload":
            f = _children(child)
            uploads.append((dec(f.get("Key", "")), f.get("UploadId", ""),
                            parse_iso_date(f.get("Initiated"))))
        else:
            fields[tag] = child.text or ""
    truncated = fields.get("IsTruncated", "").strip().lower() == "true"
    nxt = (dec(fields.get("NextKeyMarker", "")), fields.get("NextUploadIdMarker", ""))
    return {"uploads": uploads, "next": nxt if truncated and any(nxt) else None}
