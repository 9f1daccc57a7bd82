"""Deciding what a sync has to do: compare a source tree with a destination tree.

Trees are ``{relative path: Entry}`` maps (``/``-separated), built from a local directory
(:func:`scan_local`) or an S3 listing. :func:`plan_sync` decides which entries to transfer
and, with ``delete``, which destination entries to remove. No I/O except reading local files
for checksums.

Comparison modes:

* ``"mtime"`` (default): transfer when the destination is missing, the sizes differ, or the
  source is newer (whole seconds; S3 keeps seconds). Downloads set the local file's mtime to
  the object's Last-Modified, and an upload's Last-Modified is later than the file's mtime,
  so an unchanged tree transfers nothing the second time.
* ``"size"``: only missing entries and different sizes.
* ``"checksum"``: sizes first, then contents: the MD5 of a local file against the object's
  ETag (a multipart ETag ``"<md5 of part md5s>-<parts>"`` is recomputed for the usual part
  sizes), or ETag against ETag for S3-to-S3. An ETag that cannot be checked (SSE-KMS, unknown
  part size) counts as different.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from .engine.files import is_staging_dir

MiB = 1 << 20
COMPARE_MODES = ("mtime", "size", "checksum")
COMMON_PART_SIZES = (8 * MiB, 5 * MiB, 16 * MiB, 64 * MiB, 15 * MiB, 100 * MiB)


@dataclass(frozen=True)
class Entry:
    """One file or object: ``size`` in bytes, ``mtime`` in epoch seconds (or None),
    ``etag`` (S3, without quotes), ``path`` (local file) or ``url`` (S3 object)."""

    size: int
    mtime: float | None = None
    etag: str | None = None
    path: str | None = None
    url: str | None = None


@dataclass
class SyncPlan:
    """``transfer``: relative paths to copy from source to destination (sorted);
    ``delete``: destination paths to remove (sorted); ``unchanged``: how many were skipped."""

    transfer: list[str] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)
    unchanged: int = 0


def plan_sync(
    src: Mapping[str, Entry],
    dst: Mapping[str, Entry],
    *,
    delete: bool = False,
    compare: str = "mtime",
    same_content: Callable[[Entry, Entry], bool] | None = None,
) -> SyncPlan:
    """What to transfer (and delete) so that ``dst`` matches ``src``.

    ``same_content(src_entry, dst_entry)`` is used by ``compare="checksum"`` (default:
    :func:`same_content_default`). Raises ``ValueError`` for an unknown mode.
    """
    if compare not in COMPARE_MODES:
        raise ValueError(f"compare must be one of {COMPARE_MODES}")
    plan = SyncPlan()
    for rel in sorted(src):
        if needs_transfer(src[rel], dst.get(rel), compare, same_content):
            plan.transfer.append(rel)
        else:
            plan.unchanged += 1
    if delete:
        plan.delete = sorted(rel for rel in dst if rel not in src)
    return plan


def needs_transfer(s: Entry, d: Entry | None, compare: str = "mtime",
                   same_content: Callable[[Entry, Entry], bool] | None = None) -> bool:
    """Whether source entry ``s`` must be copied over destination entry ``d`` (``None``:
    missing) under ``compare`` (see :func:`plan_sync`)."""
    if d is None or s.size != d.size:
        return True
    if compare == "mtime":
        return _newer(s.mtime, d.mtime)
    if compare == "checksum":
        return not (same_content or same_content_default)(s, d)
    return False


def _newer(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is not None or b is None  # unknown times: transfer to be safe
    return int(a) > int(b)


def same_content_default(s: Entry, d: Entry) -> bool:
    """Same bytes? ETag vs ETag, or a local file's MD5 vs an ETag (either direction)."""
    if s.size != d.size:
        return False
    if s.path is not None and d.path is None:
        return etag_matches_file(d.etag, s.path, s.size)
    if d.path is not None and s.path is None:
        return etag_matches_file(s.etag, d.path, d.size)
    if s.path is not None and d.path is not None:
        return file_md5(s.path) == file_md5(d.path)
    return bool(s.etag) and s.etag == d.etag


def file_md5(path: str, offset: int = 0, length: int | None = None) -> str:
    """Hex MD5 of ``length`` bytes of ``path`` from ``offset`` (default: to the end)."""
    md5 = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        f.seek(offset)
        left = length
        while left is None or left > 0:
            chunk = f.read(MiB if left is None else min(MiB, left))
            if not chunk:
                break
            md5.update(chunk)
            if left is not None:
                left -= len(chunk)
    return md5.hexdigest()


def multipart_etag(path: str, size: int, part_size: int) -> str:
    """The ETag S3 gives a multipart upload of ``path`` in ``part_size`` parts."""
    digests = b"".join(
        bytes.fromhex(file_md5(path, off, min(part_size, size - off)))
        for off in range(0, size, part_size)
    )
    n = max(1, -(-size // part_size))
    return f"{hashlib.md5(digests, usedforsecurity=False).hexdigest()}-{n}"


def etag_matches_file(etag: str | None, path: str, size: int,
                      part_sizes: Iterable[int] = COMMON_PART_SIZES) -> bool:
    """Does ``etag`` (unquoted) describe the bytes of the local file ``path``?

    A plain ETag is compared with the file's MD5; a multipart ETag ``"x-N"`` is recomputed
    for each candidate part size that yields ``N`` parts (plus the evenly split size).
    """
    if not etag:
        return False
    etag = etag.strip('"').lower()
    if "-" not in etag:
        return len(etag) == 32 and file_md5(path) == etag
    try:
        parts = int(etag.rsplit("-", 1)[1])
    except ValueError:
        return False
    even = -(-size // parts) if parts else 0
    candidates = list(dict.fromkeys([*part_sizes, -(-even // MiB) * MiB, even]))
    for p in candidates:
        if p > 0 and -(-size // p) == parts and multipart_etag(path, size, p) == etag:
            return True
    return False


def scan_local(root: str, skip: Iterable[str] = ()) -> dict[str, Entry]:
    """Every regular file under ``root`` as ``{relative path: Entry}`` (``/`` separated).

    Symlinks to files are followed; symlinked directories are not entered. Directories in
    ``skip`` (absolute paths, e.g. a temp directory) are left out, and so are fasts3 temp
    directories left behind by a killed process (``engine.files.is_staging_dir``).
    """
    root = os.path.abspath(root)
    skipped = {os.path.abspath(p) for p in skip}
    out: dict[str, Entry] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if os.path.join(dirpath, d) not in skipped
                             and not is_staging_dir(d))
        for name in filenames:
            path = os.path.join(dirpath, name)
            try:
                st = os.stat(path)
            except OSError:
                continue  # vanished or a dangling link
            if not os.path.isfile(path):
                continue
            rel = os.path.relpath(path, root).replace(os.sep, "/")
            out[rel] = Entry(st.st_size, st.st_mtime, path=path)
    return out
