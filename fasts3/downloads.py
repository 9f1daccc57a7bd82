"""Download preparation: a user's request for one object -> a
:class:`~fasts3.engine.plan.GetOp` staged in the engine's temp directory (the mirror of
``uploads.py``). Validation happens here, before anything is sent."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .engine.plan import GetOp
from .errors import S3URLError
from .headers import info_of
from .objects import RangeInfo, S3GetObject, S3Object
from .urls import split_url

if TYPE_CHECKING:
    from .engine.engine import Engine


def get_op(engine: Engine, url: str, request: object = None, return_missing: bool = False,
           size: int | None = None, etag: str | None = None) -> GetOp:
    """The op downloading ``url`` into the engine's temp directory. ``request`` may be an
    :class:`~fasts3.S3GetObject` (or any object with ``offset``/``length``/``version_id``)
    giving a range or version; a plain key string means the whole object. ``size`` and
    ``etag`` come from a listing (they let a large object be fetched in parts at once).
    Raises :class:`~fasts3.errors.S3URLError` for a bucket URL or a malformed range."""
    rng = None
    version = None
    if request is not None and not isinstance(request, str):
        req = S3GetObject(url, getattr(request, "offset", 0) or 0,
                          getattr(request, "length", None), getattr(request, "version_id", None))
        if req.offset or req.length is not None:
            rng = (req.offset, req.length)
        version = req.version_id
    bucket, key = split_url(url)
    if not key:
        raise S3URLError("A bucket is not an object; give a key", url=url)
    final, temp = engine.new_paths(key)
    return GetOp(url, bucket, key, final, temp, engine.config.part_size, rng, return_missing,
                 version, size=size, etag=etag)


def result_of(op: GetOp, prefix: str | None, root: str | None,
              return_info: bool) -> S3Object:
    """The :class:`~fasts3.S3Object` of a finished download: ``key`` relative to ``prefix``
    (a missing object's to ``root``). Without ``return_info`` only the version and ETag are
    filled in and ``range_info`` is ``None`` (Metaflow's contract: ``has_info`` is False)."""
    if op.missing:
        return S3Object(op.url, root, exists=False)
    info = info_of(op.headers) if return_info else {}
    if not return_info:
        info["version_id"] = op.headers.get("x-amz-version-id")
        info["etag"] = (op.headers.get("etag") or "").strip('"') or None
    rinfo = RangeInfo(op.total if op.total is not None else op.length, op.start_offset,
                      op.length) if return_info else None
    return S3Object(op.url, prefix, path=op.final, size=op.length, exists=True,
                    range_info=rinfo, has_info=return_info, **info)
