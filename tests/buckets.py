"""Scratch buckets for tests: created on entry, deleted (best effort) on exit."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

from fasts3.local import LocalS3


def bucket_name(tag: str) -> str:
    """``t-<tag>-<random>``: a valid, unique S3 bucket name that says which test made it."""
    return f"t-{tag}-{uuid.uuid4().hex[:10]}"


@contextlib.contextmanager
def scratch_bucket(server: LocalS3, tag: str) -> Iterator[str]:
    """A fresh bucket on ``server``, deleted with its objects afterwards.

    SeaweedFS gives every bucket its own volume (and deletes non-empty buckets), so deleting
    keeps long sessions bounded; a failed delete (server already gone) is ignored.
    """
    name = bucket_name(tag)
    server.create_bucket(name)
    try:
        yield name
    finally:
        try:
            server.client().delete_bucket(Bucket=name)
        except Exception:  # noqa: BLE001 - cleanup is best effort
            pass
