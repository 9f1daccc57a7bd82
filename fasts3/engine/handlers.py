"""What a worker does for each task kind: one S3 request (plus local file I/O) per call.

Each handler is a coroutine run on the worker's event loop. It takes ``(transport, task,
progress)`` -- an :class:`~fasts3.engine.aiotransport.AsyncTransport`, the task (whose
``args`` is the kind's typed record from ``tasks.py``) and a callable counting bytes moved --
and returns a small value for the parent (a :class:`~fasts3.engine.tasks.GetResult` for a
GET, a ``dict`` otherwise), or raises :class:`~fasts3.engine.transport.HTTPFailure` /
``NetworkFailure`` / ``OSError``. Retries happen around these calls
(``retry.run_with_retries_async``, from ``worker.py``).
"""

from __future__ import annotations

import base64
import errno
import hashlib
import logging
import os
import re
from collections.abc import Awaitable, Callable
from typing import Any

from . import checksums, files, framing, orphans, s3xml
from .aiotransport import Answer, AsyncTransport
from .sigv4 import quote_path
from .tasks import (
    CopyArgs,
    CopySource,
    DeleteArgs,
    GetArgs,
    GetPlan,
    GetResult,
    HeadArgs,
    ListArgs,
    MpuAbortArgs,
    MpuAbortKeyArgs,
    MpuCompleteArgs,
    MpuCreateArgs,
    MpuPartArgs,
    PartCopyArgs,
    PutArgs,
    Task,
)
from .transport import HTTPFailure, LocalFileError, NetworkFailure

Progress = Callable[[int], None]
log = logging.getLogger("fasts3.worker")
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
_KEEP = ("content-type", "content-length", "etag", "last-modified", "x-amz-version-id",
         "x-amz-server-side-encryption", "x-amz-server-side-encryption-aws-kms-key-id",
         "x-amz-storage-class", "content-encoding", "cache-control", "content-disposition")


def info_headers(headers: dict[str, str]) -> dict[str, str]:
    """The response headers the parent needs to describe an object."""
    return {k: v for k, v in headers.items() if k in _KEEP or k.startswith("x-amz-meta-")}


def _version_query(vid: str | None) -> dict[str, str] | None:
    return {"versionId": vid} if vid else None


async def get(tr: AsyncTransport, task: Task, progress: Progress) -> GetResult:
    """(Ranged) GET into a file; the arguments are a :class:`~fasts3.engine.tasks.GetArgs`.

    The first request checks that the download fits in the free space of the file's directory
    (``tr.space``: else ``OSError(ENOSPC)``) and creates the file: a small download that
    arrives whole in an unnamed file (``files.create_unnamed``), else the temp file
    (``files.create``; grown to its final size only when parts will follow). A response
    holding the whole object is verified against the object's checksum when
    ``tr.verify_checksums`` (see ``checksums.py``) before the file gets its final name. A
    first answer that parts will follow is announced (``tr.announce``, a
    :class:`~fasts3.engine.tasks.GetPlan`) once its file exists, before its body is read;
    a retry of that request is pinned to the announced ETag (``tr.pinned``), as the parts
    are, and does not announce again.
    """
    a: GetArgs = task.args  # type: ignore[assignment]
    headers = {}
    if a.range:
        headers["range"] = a.range
    if a.if_match:
        headers["if-match"] = f'"{a.if_match}"'
    elif a.first and tr.pinned.get(task.id):  # a retry after its parts were asked for:
        headers["if-match"] = f'"{tr.pinned[task.id]}"'  # their version, or 412
    if a.first and tr.verify_checksums != "off":
        headers.update(checksums.REQUEST_HEADERS)
    query = _version_query(a.version_id)
    try:
        resp = await tr.send("GET", task.bucket, task.key, query, headers)
    except HTTPFailure as e:
        if e.status != 416 or not a.whole:
            raise
        headers.pop("range")  # an empty object has no byte 0: fetch it whole
        resp = await tr.send("GET", task.bucket, task.key, query, headers)
    announce = tr.announce

    def announced(plan: GetPlan) -> None:
        if announce is not None and task.id not in tr.pinned:  # once per task
            tr.pinned[task.id] = plan.etag or ""
            announce(task.id, plan)

    try:
        return await _get_body(tr, a, resp, headers.get("range"), progress, announced)
    finally:
        resp.drop()  # a no-op once the body was read


async def _get_body(tr: AsyncTransport, a: GetArgs, resp: Answer, rng: str | None,
                    progress: Progress,
                    announce: Callable[[GetPlan], None] = lambda plan: None) -> GetResult:
    h = resp.headers
    first = a.first
    length = framing.body_length(resp, resp.drop)  # None: chunked, read to its end
    framing.check_range_honoured(resp, rng, length, resp.drop)
    m = _CONTENT_RANGE.match(h.get("content-range", "")) if resp.status == 206 else None
    if m:
        start = int(m.group(1))
        total = int(m.group(3)) if m.group(3) != "*" else None
    else:
        start, total = 0, length
    base = a.base
    if base is None:
        base = start
    want_end = a.want_end
    end = total if want_end is None else min(want_end, total if total is not None else want_end)
    keep = length
    if first and not m and a.part and length is not None and length > a.part:
        keep = a.part  # the rest of this body is abandoned with its connection
    digest = None
    if first and tr.verify_checksums != "off" and start == 0 and keep == total:
        digest = checksums.for_download(h, tr.verify_checksums)
    unnamed = False
    try:
        if first:
            size = max(0, end - base) if end is not None else 0
            whole = end is None or (keep is not None and start + keep >= end)
            fd = -1
            if whole and a.final and keep is not None and keep <= files.UNNAMED_MAX:
                fd = files.create_unnamed(a.final, size, tr.space)  # -1: not supported
                unnamed = fd >= 0
            if fd < 0:
                fd = files.create(a.path, size, preallocate=not whole, space=tr.space)
            if not whole and keep is not None and end is not None:
                # Parts follow: the parent may ask for them now (the file exists), not
                # after this answer's body.
                announce(GetPlan(start, keep, base, end, h.get("etag", "").strip('"') or None))
        else:
            if a.expect and (start, length) != tuple(a.expect):
                resp.drop()  # never read an unexpected body
                raise NetworkFailure("BadRange", f"asked for {a.expect}, got {(start, length)}")
            fd = files.open_part(a.path)
        try:
            got = await tr.read_into_file(resp, fd, start - base, keep, progress, digest)
            if keep is None:  # a chunked whole object: its size is what arrived
                keep = length = total = end = got
            if end is None:
                raise NetworkFailure("BadResponse", "the answer does not give the object's "
                                     "size")
            if digest is not None:
                digest.verify()
            complete = first and start + keep >= end
            if complete and a.final:
                with tr.commit_gate():
                    if unnamed:
                        files.commit_unnamed(fd, a.final, a.path)
                    else:
                        files.commit(a.path, a.final)
        finally:
            os.close(fd)  # an unnamed file not linked to its name vanishes with its fd
    except OSError as e:
        resp.drop()  # the body was not (fully) read: drop the connection
        if e.errno == errno.ENOSPC and not e.filename:
            raise OSError(errno.ENOSPC, "No space left on device", a.path) from None
        raise
    return GetResult(start, keep, total, base, end, complete,
                     info_headers(h) if first or start == 0 else None)


async def head(tr: AsyncTransport, task: Task, progress: Progress) -> dict:
    """HEAD an object (:class:`~fasts3.engine.tasks.HeadArgs`)."""
    a: HeadArgs = task.args  # type: ignore[assignment]
    resp = await tr.send("HEAD", task.bucket, task.key, _version_query(a.version_id))
    await tr.read_all(resp)  # none: ends the exchange
    if "content-length" not in resp.headers:  # S3 always sends it: the size is unknown
        raise NetworkFailure("UnframedResponse", "HEAD answer without Content-Length",
                             transient=False)
    return {"headers": info_headers(resp.headers)}


async def _upload(tr: AsyncTransport, task: Task, query: dict | None, headers: dict,
            body: bytes | None, path: str | None, offset: int, length: int,
            progress: Progress) -> tuple[dict[str, str], dict[str, str]]:
    """Send ``body``, or ``length`` bytes of the file ``path`` at ``offset``, with the
    configured upload checksum; return the response headers and the checksum headers sent."""
    fd = None if path is None else os.open(path, os.O_RDONLY)
    if fd is None:
        length = len(body or b"")
    try:
        sums = checksums.upload_headers(tr.upload_checksums, body, fd, offset, length)
        if sums:
            headers = dict(headers, **sums)
        if fd is None:
            status, h, _ = await tr.request("PUT", task.bucket, task.key, query, headers,
                                      body=body or b"")
        else:
            status, h, _ = await tr.request("PUT", task.bucket, task.key, query, headers,
                                      body_file=(fd, offset, length))
    except LocalFileError as e:  # name the file: the worker reports it as LocalIOError
        raise OSError(e.errno, e.strerror, path) from None
    finally:
        if fd is not None:
            os.close(fd)
    progress(length)
    return h, sums


async def put(tr: AsyncTransport, task: Task, progress: Progress) -> dict:
    """Single-request PUT (:class:`~fasts3.engine.tasks.PutArgs`)."""
    a: PutArgs = task.args  # type: ignore[assignment]
    h, _ = await _upload(tr, task, None, a.headers or {}, a.body, a.path, a.offset, a.length,
                   progress)
    return {"etag": h.get("etag", "").strip('"'), "version_id": h.get("x-amz-version-id")}


async def mpu_create(tr: AsyncTransport, task: Task, progress: Progress) -> dict:
    """Start a multipart upload (:class:`~fasts3.engine.tasks.MpuCreateArgs`). On a retry,
    uploads of this key created since the first try by lost tries are aborted (see
    ``orphans.py``)."""
    a: MpuCreateArgs = task.args  # type: ignore[assignment]
    headers = dict(a.headers or {})
    if a.part_checksums and tr.upload_checksums == "crc32":
        # our uploaded parts carry CRC32s, and S3 wants that declared up front (copied parts
        # do not, so copies never ask for it)
        headers["x-amz-checksum-algorithm"] = "CRC32"
    _, _, data = await tr.request("POST", task.bucket, task.key, {"uploads": ""}, headers)
    upload_id = s3xml.parse_upload_id(data)
    if task.retried and a.since is not None:
        try:
            await orphans.abort_since(tr, task.bucket, task.key, a.since, keep=upload_id)
        except (HTTPFailure, NetworkFailure) as e:
            if e.transient:
                # Retry the whole creation: the next try searches again from the first try's
                # time, which also covers the upload this try just made.
                raise
            log.warning("could not look for orphaned uploads of %s/%s: %s", task.bucket,
                        task.key, e)
    return {"upload_id": upload_id}


async def mpu_part(tr: AsyncTransport, task: Task, progress: Progress) -> dict:
    """Upload one part (:class:`~fasts3.engine.tasks.MpuPartArgs`)."""
    a: MpuPartArgs = task.args  # type: ignore[assignment]
    h, sums = await _upload(tr, task, {"partNumber": str(a.part), "uploadId": a.upload_id}, {},
                      None, a.path, a.offset, a.length, progress)
    return {"part": a.part, "etag": h.get("etag", "").strip('"'),
            "checksum": sums.get("x-amz-checksum-crc32")}


async def mpu_complete(tr: AsyncTransport, task: Task, progress: Progress) -> dict:
    """Finish a multipart upload (:class:`~fasts3.engine.tasks.MpuCompleteArgs`)."""
    a: MpuCompleteArgs = task.args  # type: ignore[assignment]
    body = s3xml.complete_body(a.parts)
    try:
        _, h, data = await tr.request("POST", task.bucket, task.key, {"uploadId": a.upload_id},
                                {"content-type": "application/xml",
                                 "content-md5": checksums.content_md5(body)}, body=body)
    except HTTPFailure as e:
        if e.status == 404 and task.retried and a.size is not None:
            resp = await tr.send("HEAD", task.bucket, task.key)
            await tr.read_all(resp)
            if int(resp.headers.get("content-length", -1)) == a.size:
                return {"version_id": resp.headers.get("x-amz-version-id")}
        raise
    code, message = s3xml.check_complete(data)
    if code:
        raise HTTPFailure(200, code, message or "CompleteMultipartUpload failed", h)
    return {"version_id": h.get("x-amz-version-id")}


async def mpu_abort(tr: AsyncTransport, task: Task, progress: Progress) -> dict:
    """Abort a multipart upload (an upload already gone counts as aborted)."""
    a: MpuAbortArgs = task.args  # type: ignore[assignment]
    try:
        await tr.request("DELETE", task.bucket, task.key, {"uploadId": a.upload_id})
    except HTTPFailure as e:
        if e.status != 404:
            raise
    return {}


async def mpu_abort_key(tr: AsyncTransport, task: Task, progress: Progress) -> dict:
    """Abort the uploads of ``task.key`` started since ``since`` (``MpuAbortKeyArgs``)."""
    a: MpuAbortKeyArgs = task.args  # type: ignore[assignment]
    return {"aborted": await orphans.abort_since(tr, task.bucket, task.key, a.since)}


async def list_page(tr: AsyncTransport, task: Task, progress: Progress) -> dict:
    """One ListObjectsV2 page (:class:`~fasts3.engine.tasks.ListArgs`)."""
    a: ListArgs = task.args  # type: ignore[assignment]
    # encoding-type=url: XML 1.0 cannot carry keys with control characters
    query = {"list-type": "2", "max-keys": "1000", "prefix": a.prefix or "",
             "encoding-type": "url"}
    if a.delimiter:
        query["delimiter"] = a.delimiter
    if a.token:
        query["continuation-token"] = a.token
    _, _, data = await tr.request("GET", task.bucket, "", query)
    page = s3xml.parse_list(data)
    if page["truncated"] and not page["next"]:
        # Treating it as the last page would hide objects (and let sync --delete remove
        # their copies): a permanent, typed error instead.
        raise NetworkFailure("TruncatedListing", "listing page marked truncated without a "
                             "continuation token", transient=False)
    return page


async def delete(tr: AsyncTransport, task: Task, progress: Progress) -> dict:
    """DeleteObjects for up to 1000 keys; returns the per-key failures."""
    a: DeleteArgs = task.args  # type: ignore[assignment]
    body = s3xml.delete_body(a.keys)
    md5 = base64.b64encode(hashlib.md5(body, usedforsecurity=False).digest()).decode()
    _, _, data = await tr.request("POST", task.bucket, "", {"delete": ""},
                            {"content-md5": md5, "content-type": "application/xml"}, body=body)
    return {"errors": s3xml.parse_delete_errors(data)}


_ETAG = re.compile(r"<ETag>(.*?)</ETag>", re.S)


def _copy_source(src: CopySource) -> str:
    """The ``x-amz-copy-source`` value: ``/bucket/key`` URL-encoded, plus ``?versionId=``."""
    value = quote_path(f"/{src.bucket}/{src.key}")
    if src.version:
        value += "?versionId=" + quote_path(src.version)
    return value


def _copy_result(data: bytes, headers: dict[str, str]) -> str:
    """The ETag of a CopyObjectResult/CopyPartResult; a 200 carrying ``<Error>`` raises."""
    if b"<Error>" in data[:512]:
        code, message = s3xml.parse_error(data)
        raise HTTPFailure(200, code or "InternalError", message or "copy failed", headers)
    m = _ETAG.search(data.decode("utf-8", "replace"))
    if not m:
        raise NetworkFailure("ShortBody", "copy response without an ETag")
    return m.group(1).replace("&quot;", "").replace("&#34;", "").strip('"')


async def copy_object(tr: AsyncTransport, task: Task, progress: Progress) -> dict:
    """Server-side CopyObject to ``task.bucket/task.key`` (:class:`CopyArgs`; the source's
    metadata is kept)."""
    a: CopyArgs = task.args  # type: ignore[assignment]
    headers = dict(a.headers or {})
    headers["x-amz-copy-source"] = _copy_source(a.source)
    _, h, data = await tr.request("PUT", task.bucket, task.key, None, headers)
    etag = _copy_result(data, h)
    progress(a.size or 0)
    return {"etag": etag, "version_id": h.get("x-amz-version-id")}


async def mpu_part_copy(tr: AsyncTransport, task: Task, progress: Progress) -> dict:
    """UploadPartCopy: one part of a multipart upload copied from a source byte range
    (:class:`~fasts3.engine.tasks.PartCopyArgs`)."""
    a: PartCopyArgs = task.args  # type: ignore[assignment]
    headers = {"x-amz-copy-source": _copy_source(a.source),
               "x-amz-copy-source-range": f"bytes={a.offset}-{a.offset + a.length - 1}"}
    query = {"partNumber": str(a.part), "uploadId": a.upload_id}
    _, h, data = await tr.request("PUT", task.bucket, task.key, query, headers)
    etag = _copy_result(data, h)
    progress(a.length)
    return {"part": a.part, "etag": etag}


HANDLERS: dict[type, Callable[[AsyncTransport, Task, Progress], Awaitable[Any]]] = {
    GetArgs: get,
    HeadArgs: head,
    PutArgs: put,
    MpuCreateArgs: mpu_create,
    MpuPartArgs: mpu_part,
    MpuCompleteArgs: mpu_complete,
    MpuAbortArgs: mpu_abort,
    MpuAbortKeyArgs: mpu_abort_key,
    ListArgs: list_page,
    DeleteArgs: delete,
    CopyArgs: copy_object,
    PartCopyArgs: mpu_part_copy,
}
"""The handler of each task kind, by the type of its arguments."""
