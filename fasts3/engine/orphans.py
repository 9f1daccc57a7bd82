"""Multipart uploads whose ``UploadId`` the parent never learned, and how to abort them.

A CreateMultipartUpload may succeed at the server while its answer is lost: the connection
resets after the server acted, the worker running it is killed, or the batch is interrupted.
Retrying creates a second upload and the first would linger (and be billed) until a lifecycle
rule removes it. So, when a creation may have happened unseen, the key's uploads are listed
(``ListMultipartUploads`` with ``prefix=key``, exact key matches only) and those initiated
since the first try (minus :data:`CLOCK_SKEW` seconds) are aborted.

``tr`` is the worker's :class:`~fasts3.engine.aiotransport.AsyncTransport`.

Limits: a concurrent uploader of the *same key* that started within that window loses its
upload too (its completion then fails with NoSuchUpload), and a server whose clock lags ours by
more than ``CLOCK_SKEW`` (or that reports no initiation times, as moto does not) hides the
orphan. Both only matter after a failure that already lost an answer.
"""

from __future__ import annotations

import logging
from typing import Any

from . import s3xml
from .transport import HTTPFailure

log = logging.getLogger("fasts3.worker")
CLOCK_SKEW = 5.0


async def list_uploads(tr: Any, bucket: str, key: str) -> list[tuple[str, int | None]]:
    """``[(upload_id, initiated epoch seconds or None)]`` of the uploads of exactly ``key``."""
    out: list[tuple[str, int | None]] = []
    query = {"uploads": "", "prefix": key, "encoding-type": "url"}  # any key survives XML
    for _ in range(1000):  # bounded: at most 1,000,000 uploads of one prefix
        _, _, data = await tr.request("GET", bucket, "", query)
        page = s3xml.parse_uploads(data)
        out.extend((uid, when) for k, uid, when in page["uploads"] if k == key)
        if not page["next"]:
            break
        query = dict(query, **{"key-marker": page["next"][0],
                               "upload-id-marker": page["next"][1]})
    return out


async def abort_since(tr: Any, bucket: str, key: str, since: float,
                keep: str | None = None) -> int:
    """Abort the uploads of ``key`` initiated at or after ``since - CLOCK_SKEW`` (epoch
    seconds), except ``keep``; return how many were aborted."""
    n = 0
    for uid, when in await list_uploads(tr, bucket, key):
        if uid == keep or when is None or when < since - CLOCK_SKEW:
            continue
        try:
            await tr.request("DELETE", bucket, key, {"uploadId": uid})
            n += 1
        except HTTPFailure as e:
            if e.status != 404:
                raise
    if n:
        log.info("aborted %d multipart upload(s) of %s/%s whose creation went unanswered",
                 n, bucket, key)
    return n
