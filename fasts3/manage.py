"""Managing objects in place: batched deletes and server-side copies, on the engine's pool.

* :func:`delete_urls` — DeleteObjects requests of up to 1000 keys each (per bucket), all in
  parallel. Deleting a key that does not exist succeeds (S3 semantics).
* :func:`copy_ops` / :func:`copy_urls` — CopyObject below ``multipart_threshold`` (default:
  S3's 5 GiB limit), UploadPartCopy parts above it; the bytes never leave S3 (see
  ``engine/copy_plan.py``).

``S3.delete_many``/``S3.copy_many`` resolve keys and call these; the ``fasts3`` command uses
them with ``fail_fast=False`` to report per-object results.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from .engine.copy_plan import MAX_COPY_SIZE, CopyOp
from .engine.plan import DeleteOp
from .errors import S3Error, S3URLError, error_from_response
from .urls import split_url

if TYPE_CHECKING:
    from .engine.engine import Engine, ProgressSink

DELETE_BATCH = 1000
CopyItem = tuple[str, str, "int | None", "str | None"]
"""``(source URL, destination URL, source size or None, source version or None)``."""


def delete_urls(engine: Engine, urls: Sequence[str], fail_fast: bool = False,
                progress: ProgressSink | None = None) -> list[tuple[str, S3Error | None]]:
    """Delete full ``s3://`` URLs; return ``[(url, error or None)]`` in input order. Raises
    :class:`~fasts3.errors.S3URLError` for a bucket URL before anything is sent."""
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
    engine.run(ops, "delete", fail_fast=fail_fast, progress=progress)
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


def copy_ops(engine: Engine, items: Iterable[CopyItem], overwrite: bool = True,
             multipart_threshold: int | None = None,
             part_size: int | None = None) -> list[CopyOp]:
    """CopyOps for :data:`CopyItem` items, with the engine's upload options (encryption,
    KMS key, storage class) applied to the new objects. Raises
    :class:`~fasts3.errors.S3URLError` for a URL without a key."""
    headers = engine.uploads.headers()
    threshold = MAX_COPY_SIZE if multipart_threshold is None else multipart_threshold
    if threshold < 1:
        raise ValueError("multipart_threshold must be >= 1")
    ops = []
    for src, dst, size, version in items:
        sbucket, skey = split_url(src)
        dbucket, dkey = split_url(dst)
        if not skey or not dkey:
            raise S3URLError("A copy needs an object key on both sides",
                             url=src if not skey else dst)
        ops.append(CopyOp(dst, dbucket, dkey, src, sbucket, skey, size, version, headers,
                          overwrite, threshold, part_size))
    return ops


def copy_urls(engine: Engine, items: Iterable[CopyItem], overwrite: bool = True,
              multipart_threshold: int | None = None,
              part_size: int | None = None) -> list[tuple[str, str]]:
    """Run server-side copies of :data:`CopyItem` items (see ``S3.copy_many``); return
    ``[(source_url, destination_url)]`` of what was copied, in input order. The first
    failure is raised as a typed :class:`~fasts3.errors.S3Error` (the rest is cancelled)."""
    ops = copy_ops(engine, items, overwrite, multipart_threshold, part_size)
    engine.run(ops, "copy")
    return [(op.src_url, op.url) for op in ops if op.copied]
