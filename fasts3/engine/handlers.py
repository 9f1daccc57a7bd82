"""What a worker does for each task kind: one S3 request (plus local file I/O) per call.

Each handler takes ``(transport, task, progress)`` and returns a small ``dict`` for the parent,
or raises :class:`~fasts3.engine.transport.HTTPFailure` / ``NetworkFailure`` / ``OSError``.
Retries happen around these calls, in ``worker.py``.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import logging
import os
import re
from collections.abc import Callable

from . import checksums, orphans, s3xml
from .sigv4 import quote_path
from .tasks import Task
from .transport import HTTPFailure, LocalFileError, NetworkFailure, Transport

Progress = Callable[[int], None]
log = logging.getLogger("fasts3.worker")
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
_KEEP = ("content-type", "content-length", "etag", "last-modified", "x-amz-version-id",
         "x-amz-server-side-encryption", "x-amz-server-side-encryption-aws-kms-key-id",
         "x-amz-storage-class", "content-encoding", "cache-control", "content-disposition")


def info_headers(headers: dict[str, str]) -> dict[str, str]:
    """The response headers the parent needs to describe an object."""
    return {k: v for k, v in headers.items() if k in _KEEP or k.startswith("x-amz-meta-")}


def _version_query(task: Task) -> dict[str, str] | None:
    vid = task.args.get("version_id")
    return {"versionId": vid} if vid else None


def get(tr: Transport, task: Task, progress: Progress) -> dict:
    """Ranged GET into a file.

    args: ``range`` (Range header or None), ``path`` (file written), ``base`` (object offset of
    the file's byte 0; None = learn it from the response), ``want_end`` (exclusive object offset
    the whole download stops at; None = the object's end), ``first`` (this request sizes and
    creates the file), ``whole`` (the range is ours, not the user's: on 416 fetch without it),
    ``final`` (rename ``path`` here if this request completes the download), ``if_match``,
    ``part`` (with ``whole`` and no range: keep at most this many bytes of a larger object,
    then close the connection; the parent fetches the rest as ranged parts).

    The first request checks that the download fits in the free space of ``path``'s directory
    (else ``OSError(ENOSPC)``). A response holding the whole object is verified against the
    object's checksum when ``tr.verify_checksums`` (see ``checksums.py``) before the file is
    renamed into place.
    """
    a = task.args
    first = bool(a.get("first"))
    headers = {}
    if a.get("range"):
        headers["range"] = a["range"]
    if a.get("if_match"):
        headers["if-match"] = f'"{a["if_match"]}"'
    if first and tr.verify_checksums != "off":
        headers.update(checksums.REQUEST_HEADERS)
    query = _version_query(task)
    try:
        resp = tr.send("GET", task.bucket, task.key, query, headers)
    except HTTPFailure as e:
        if e.status != 416 or not a.get("whole"):
            raise
        headers.pop("range")  # an empty object has no byte 0: fetch it whole
        resp = tr.send("GET", task.bucket, task.key, query, headers)
    h = resp.headers
    length = int(h.get("content-length", "0"))
    m = _CONTENT_RANGE.match(h.get("content-range", "")) if resp.status == 206 else None
    if m:
        start = int(m.group(1))
        total = int(m.group(3)) if m.group(3) != "*" else None
    else:
        start, total = 0, length
    base = a.get("base")
    if base is None:
        base = start
    want_end = a.get("want_end")
    end = total if want_end is None else min(want_end, total if total is not None else want_end)
    keep = length
    if first and not m and a.get("part") and length > a["part"]:
        keep = a["part"]  # the rest of this body is abandoned with its connection
    digest = None
    if first and tr.verify_checksums != "off" and start == 0 and keep == total:
        digest = checksums.for_download(h, tr.verify_checksums)
    try:
        if first:
            _check_space(a["path"], end - base)
            fd = os.open(a["path"], os.O_WRONLY | os.O_CREAT, 0o600)
        else:
            if a.get("expect") and (start, length) != tuple(a["expect"]):
                tr.read_all(task.bucket, resp)
                raise NetworkFailure("BadRange", f"asked for {a['expect']}, got {(start, length)}")
            fd = os.open(a["path"], os.O_WRONLY)
        try:
            if first:
                os.ftruncate(fd, max(0, end - base))
            tr.read_into_file(task.bucket, resp, fd, start - base, keep, progress, digest)
        finally:
            os.close(fd)
        if keep < length:
            tr.discard(task.bucket)
    except OSError as e:
        tr.discard(task.bucket)  # the body was not (fully) read: drop the connection
        if e.errno == errno.ENOSPC and not e.filename:
            raise OSError(errno.ENOSPC, "No space left on device", a["path"]) from None
        raise
    if digest is not None:
        digest.verify()
    complete = first and start + keep >= end
    if complete and a.get("final"):
        os.replace(a["path"], a["final"])
    out = {"start": start, "length": keep, "total": total, "base": base, "end": end,
           "complete": complete}
    if first:
        out["headers"] = info_headers(h)
    return out


def _check_space(path: str, need: int) -> None:
    """Raise ``OSError(ENOSPC)`` if ``path``'s directory has less than ``need`` bytes free."""
    if need <= 0:
        return
    directory = os.path.dirname(path) or "."
    st = os.statvfs(directory)
    free = st.f_bavail * st.f_frsize
    if free < need:
        raise OSError(errno.ENOSPC, f"Not enough free space for this object ({need} bytes "
                      f"needed, {free} free)", directory)


def head(tr: Transport, task: Task, progress: Progress) -> dict:
    """HEAD an object. args: ``version_id``."""
    resp = tr.send("HEAD", task.bucket, task.key, _version_query(task))
    resp.raw.read()
    return {"headers": info_headers(resp.headers)}


def _open_source(a: dict) -> tuple[int | None, int, int]:
    if a.get("path") is None:
        return None, 0, len(a["body"])
    fd = os.open(a["path"], os.O_RDONLY)
    return fd, a.get("offset", 0), a["length"]


def _upload(tr: Transport, task: Task, query: dict | None, headers: dict, progress: Progress):
    a = task.args
    fd, offset, length = _open_source(a)
    try:
        sums = checksums.upload_headers(tr.upload_checksums, a.get("body"), fd, offset, length)
        if sums:
            headers = dict(headers, **sums)
        if fd is None:
            status, h, _ = tr.request("PUT", task.bucket, task.key, query, headers, body=a["body"])
        else:
            status, h, _ = tr.request("PUT", task.bucket, task.key, query, headers,
                                      body_file=(fd, offset, length))
    except LocalFileError as e:  # name the file: the worker reports it as LocalIOError
        raise OSError(e.errno, e.strerror, a.get("path")) from None
    finally:
        if fd is not None:
            os.close(fd)
    progress(length)
    return h, sums


def put(tr: Transport, task: Task, progress: Progress) -> dict:
    """Single-request PUT. args: ``body`` or ``path``/``offset``/``length``, ``headers``."""
    h, _ = _upload(tr, task, None, task.args.get("headers") or {}, progress)
    return {"etag": h.get("etag", "").strip('"'), "version_id": h.get("x-amz-version-id")}


def _retried(a: dict) -> bool:
    """Whether an earlier try of this task may have reached the server unanswered."""
    return bool(a.get("attempt") or a.get("rerun"))


def mpu_create(tr: Transport, task: Task, progress: Progress) -> dict:
    """Start a multipart upload. args: ``headers`` (content type, metadata, encryption),
    ``part_checksums`` (the parts will be uploaded with checksums: declare the algorithm),
    ``since`` (wall time of the first try: on a retry, uploads of this key created since then
    by lost tries are aborted, see ``orphans.py``)."""
    a = task.args
    headers = dict(a.get("headers") or {})
    if a.get("part_checksums") and tr.upload_checksums == "crc32":
        # our uploaded parts carry CRC32s, and S3 wants that declared up front (copied parts
        # do not, so copies never ask for it)
        headers["x-amz-checksum-algorithm"] = "CRC32"
    _, _, data = tr.request("POST", task.bucket, task.key, {"uploads": ""}, headers)
    upload_id = s3xml.parse_upload_id(data)
    if _retried(a) and a.get("since") is not None:
        try:
            orphans.abort_since(tr, task.bucket, task.key, a["since"], keep=upload_id)
        except (HTTPFailure, NetworkFailure) as e:
            if e.transient:
                # Retry the whole creation: the next try searches again from the first try's
                # time, which also covers the upload this try just made.
                raise
            log.warning("could not look for orphaned uploads of %s/%s: %s", task.bucket,
                        task.key, e)
    return {"upload_id": upload_id}


def mpu_part(tr: Transport, task: Task, progress: Progress) -> dict:
    """Upload one part. args: ``upload_id``, ``part``, ``path``, ``offset``, ``length``."""
    a = task.args
    h, sums = _upload(tr, task, {"partNumber": str(a["part"]), "uploadId": a["upload_id"]},
                      {}, progress)
    return {"part": a["part"], "etag": h.get("etag", "").strip('"'),
            "checksum": sums.get("x-amz-checksum-crc32")}


def mpu_complete(tr: Transport, task: Task, progress: Progress) -> dict:
    """Finish a multipart upload. args: ``upload_id``, ``parts`` ([(number, etag)]), ``size``
    (total bytes: if a retry finds the upload gone because a lost try completed it, an object
    of that size at the key counts as success)."""
    a = task.args
    body = s3xml.complete_body(a["parts"])
    try:
        _, h, data = tr.request("POST", task.bucket, task.key, {"uploadId": a["upload_id"]},
                                {"content-type": "application/xml",
                                 "content-md5": checksums.content_md5(body)}, body=body)
    except HTTPFailure as e:
        if e.status == 404 and _retried(a) and a.get("size") is not None:
            resp = tr.send("HEAD", task.bucket, task.key)
            resp.raw.read()
            if int(resp.headers.get("content-length", -1)) == a["size"]:
                return {"version_id": resp.headers.get("x-amz-version-id")}
        raise
    code, message = s3xml.check_complete(data)
    if code:
        raise HTTPFailure(200, code, message or "CompleteMultipartUpload failed", h)
    return {"version_id": h.get("x-amz-version-id")}


def mpu_abort(tr: Transport, task: Task, progress: Progress) -> dict:
    """Abort a multipart upload (an upload already gone counts as aborted)."""
    try:
        tr.request("DELETE", task.bucket, task.key, {"uploadId": task.args["upload_id"]})
    except HTTPFailure as e:
        if e.status != 404:
            raise
    return {}


def list_page(tr: Transport, task: Task, progress: Progress) -> dict:
    """One ListObjectsV2 page. args: ``prefix``, ``delimiter``, ``token``."""
    a = task.args
    query = {"list-type": "2", "max-keys": "1000", "prefix": a.get("prefix") or "",
             "encoding-type": "url"}  # XML cannot carry every key; s3xml decodes them
    if a.get("delimiter"):
        query["delimiter"] = a["delimiter"]
    if a.get("token"):
        query["continuation-token"] = a["token"]
    _, _, data = tr.request("GET", task.bucket, "", query)
    return s3xml.parse_list(data)


def delete(tr: Transport, task: Task, progress: Progress) -> dict:
    """DeleteObjects for up to 1000 ``keys``; returns the per-key failures."""
    body = s3xml.delete_body(task.args["keys"])
    md5 = base64.b64encode(hashlib.md5(body, usedforsecurity=False).digest()).decode()
    _, _, data = tr.request("POST", task.bucket, "", {"delete": ""},
                            {"content-md5": md5, "content-type": "application/xml"}, body=body)
    return {"errors": s3xml.parse_delete_errors(data)}


_ETAG = re.compile(r"<ETag>(.*?)</ETag>", re.S)


def _copy_source(a: dict) -> str:
    """The ``x-amz-copy-source`` value: ``/bucket/key`` URL-encoded, plus ``?versionId=``."""
    src = quote_path(f"/{a['src_bucket']}/{a['src_key']}")
    if a.get("src_version"):
        src += "?versionId=" + quote_path(a["src_version"])
    return src


def _copy_result(data: bytes, headers: dict[str, str]) -> str:
    """The ETag of a CopyObjectResult/CopyPartResult; a 200 carrying ``<Error>`` raises."""
    if b"<Error>" in data[:512]:
        code, message = s3xml.parse_error(data)
        raise HTTPFailure(200, code or "InternalError", message or "copy failed", headers)
    m = _ETAG.search(data.decode("utf-8", "replace"))
    if not m:
        raise NetworkFailure("ShortBody", "copy response without an ETag")
    return m.group(1).replace("&quot;", "").replace("&#34;", "").strip('"')


def copy_object(tr: Transport, task: Task, progress: Progress) -> dict:
    """Server-side CopyObject to ``task.bucket/task.key``. args: ``src_bucket``, ``src_key``,
    ``src_version``, ``headers`` (e.g. SSE, storage class; the source's metadata is kept),
    ``size`` (for progress only, may be None)."""
    a = task.args
    headers = dict(a.get("headers") or {})
    headers["x-amz-copy-source"] = _copy_source(a)
    _, h, data = tr.request("PUT", task.bucket, task.key, None, headers)
    etag = _copy_result(data, h)
    progress(a.get("size") or 0)
    return {"etag": etag, "version_id": h.get("x-amz-version-id")}


def mpu_part_copy(tr: Transport, task: Task, progress: Progress) -> dict:
    """UploadPartCopy: one part of a multipart upload copied from a source byte range.
    args: ``upload_id``, ``part``, ``src_bucket``, ``src_key``, ``src_version``, ``offset``,
    ``length`` (bytes of the source)."""
    a = task.args
    headers = {"x-amz-copy-source": _copy_source(a),
               "x-amz-copy-source-range": f"bytes={a['offset']}-{a['offset'] + a['length'] - 1}"}
    query = {"partNumber": str(a["part"]), "uploadId": a["upload_id"]}
    _, h, data = tr.request("PUT", task.bucket, task.key, query, headers)
    etag = _copy_result(data, h)
    progress(a["length"])
    return {"part": a["part"], "etag": etag}


HANDLERS: dict[str, Callable[[Transport, Task, Progress], dict]] = {
    "get": get,
    "head": head,
    "put": put,
    "mpu_create": mpu_create,
    "mpu_part": mpu_part,
    "mpu_complete": mpu_complete,
    "mpu_abort": mpu_abort,
    "mpu_abort_key": orphans.mpu_abort_key,
    "list": list_page,
    "delete": delete,
    "copy": copy_object,
    "mpu_part_copy": mpu_part_copy,
}
