"""Managing objects in place: batched deletes and server-side copies.

Both run on the S3 context's worker pool, like every other batch:

* :func:`delete_many` — DeleteObjects requests of up to 1000 keys each (per bucket), all in
  parallel. Deleting a key that does not exist succeeds (S3 semantics).
* :func:`copy_many` — CopyObject below ``multipart_threshold`` (default: S3's 5 GiB limit),
  UploadPartCopy parts above it; the bytes never leave S3 (see ``engine/copy_plan.py``).

The ``run_ops``/``delete_urls``/``copy_ops`` helpers are what the ``fasts3`` command builds on
to report per-object results instead of stopping at the first failure.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from .batch import raise_first
from .engine.copy_plan import MAX_COPY_SIZE, CopyOp
from .engine.plan import DeleteOp
from .errors import S3Error, S3URLError, error_from_response
from .progress import Progress
from .session import upload_headers
from .urls import key_of, split_url

if TYPE_CHECKING:
    from .api import S3

DELETE_BATCH = 1000


def run_ops(s3: S3, ops: Sequence[Any], desc: str, total_bytes: int = 0,
            fail_fast: bool = True, progress: Progress | None = None) -> None:
    """Run ``ops`` on ``s3``'s worker pool.

    With ``fail_fast`` the first failure cancels the rest and is raised (like every S3
    method); otherwise every op runs to its end and errors stay in ``op.error``. A
    ``progress`` shared by several calls may be given; else one is made for this batch.
    """
    if not ops:
        return
    if fail_fast and progress is None:
        s3._batches.run(ops, desc, total_bytes)
        return
    pool = s3._batches.pool()
    own = progress is None
    prog = progress or Progress(s3._batches.progress, desc, len(ops), total_bytes)
    try:
        pool.run(ops, prog.advance if prog.active else None,
                 prog.file_done if prog.active else None, fail_fast=fail_fast)
    finally:
        if own:
            prog.close()
    if fail_fast:
        raise_first(ops)


# -- deletes -----------------------------------------------------------------------------
def delete_urls(s3: S3, urls: Sequence[str], fail_fast: bool = False,
                progress: Progress | None = None) -> list[tuple[str, S3Error | None]]:
    """Delete full ``s3://`` URLs; return ``[(url, error or None)]`` in input order."""
    by_bucket: dict[str, list[str]] = {}
    for url in urls:
        bucket, key = split_url(url)
        if not key:
            raise S3URLError("Cannot delete a bucket; give a key", url=url)
        by_bucket.setdefault(bucket, []).append(key)
    ops = []
    for bucket, keys in by_bucket.items():
        unique = list(dict.fromkeys(keys))
        for i in range(0, len(unique), DELETE_BATCH):
            chunk = unique[i:i + DELETE_BATCH]
            ops.append(DeleteOp(f"s3://{bucket}/{chunk[0]}", bucket, chunk))
    run_ops(s3, ops, "delete", fail_fast=fail_fast, progress=progress)
    errors: dict[str, S3Error] = {}
    for op in ops:
        for key in op.keys:
            url = f"s3://{op.bucket}/{key}"
            if op.error is not None:
                errors[url] = op.error
        for key, code, message in op.failures:
            url = f"s3://{op.bucket}/{key}"
            errors[url] = error_from_response(0, code, message or "Delete failed", url)
    return [(url, errors.get(url)) for url in urls]


def delete_many(s3: S3, keys: Iterable[Any]) -> list[str]:
    """Delete objects (keys relative to the root, or full URLs without one).

    Sends one DeleteObjects request per 1000 keys of a bucket, all in parallel. Returns the
    URLs deleted, in input order. Keys that could not be deleted raise the first failure as
    a typed :class:`~fasts3.errors.S3Error` after every batch has run (the other keys are
    deleted). Every key is validated before any request is sent.
    """
    urls = [s3._url(key_of(k)) for k in keys]
    results = delete_urls(s3, urls)
    failed = [e for _, e in results if e is not None]
    if failed:
        raise failed[0]
    return urls


# -- copies ------------------------------------------------------------------------------
def copy_ops(s3: S3, items: Iterable[tuple[str, str, int | None, str | None]],
             overwrite: bool = True, multipart_threshold: int = MAX_COPY_SIZE,
             part_size: int | None = None) -> list[CopyOp]:
    """CopyOps for ``(src_url, dst_url, size or None, src_version or None)`` items."""
    headers = upload_headers(s3._encryption, s3._kms_key_id, s3._storage_class)
    if s3._encryption:
        headers["x-amz-server-side-encryption"] = s3._encryption
    if multipart_threshold < 1:
        raise ValueError("multipart_threshold must be >= 1")
    ops = []
    for src, dst, size, version in items:
        sbucket, skey = split_url(src)
        dbucket, dkey = split_url(dst)
        if not skey or not dkey:
            raise S3URLError("A copy needs an object key on both sides",
                             url=src if not skey else dst)
        ops.append(CopyOp(dst, dbucket, dkey, src, sbucket, skey, size, version, headers,
                          overwrite, multipart_threshold, part_size))
    return ops


def copy_many(s3: S3, pairs: Iterable[Any], overwrite: bool = True,
              multipart_threshold: int = MAX_COPY_SIZE,
              part_size: int | None = None) -> list[tuple[str, str]]:
    """Server-side copies of ``(source, destination)`` pairs.

    Keys are relative to the root (or full URLs without one); a source may be an
    :class:`~fasts3.S3GetObject` with ``version_id`` to copy that version. Sources at least
    ``multipart_threshold`` bytes (default and maximum useful value: 5 GiB) are copied with
    UploadPartCopy in parts of ``part_size`` bytes (default 256 MiB, at least 5 MiB). The
    copy keeps the source's content type and metadata; the client's ``encryption``,
    ``kms_key_id`` and ``storage_class`` apply to the new objects. With ``overwrite=False`` an
    existing destination is left alone.

    Returns ``[(source_url, destination_url)]`` of what was copied, in input order; raises
    the first failure as a typed :class:`~fasts3.errors.S3Error` (the rest is cancelled).
    """
    items = []
    for pair in pairs:
        src, dst = pair
        version = getattr(src, "version_id", None)
        items.append((s3._url(key_of(src)), s3._url(key_of(dst)), None, version))
    ops = copy_ops(s3, items, overwrite, multipart_threshold, part_size)
    run_ops(s3, ops, "copy")
    return [(op.src_url, op.url) for op in ops if op.copied]
