"""Metaflow's names for fasts3's classes, so a flow switches by changing one import::

    from fasts3.metaflow import S3, S3GetObject, MetaflowS3NotFound   # was: from metaflow ...

Every name is the fasts3 class itself (no wrappers): ``S3``, ``S3Object``, ``S3GetObject``,
``S3PutObject``, ``RangeInfo`` and the exceptions

=============================  ===============================================
Metaflow                       fasts3 (also a subclass of)
=============================  ===============================================
``MetaflowS3Exception``        :class:`~fasts3.errors.S3Error` (base of all)
``MetaflowS3NotFound``         :class:`~fasts3.errors.S3NotFound` (FileNotFoundError)
``MetaflowS3AccessDenied``     :class:`~fasts3.errors.S3AccessDenied` (PermissionError)
``MetaflowS3URLException``     :class:`~fasts3.errors.S3URLError` (ValueError)
``MetaflowS3InvalidObject``    :class:`~fasts3.errors.S3InvalidObject` (TypeError)
``MetaflowS3InvalidRange``     :class:`~fasts3.errors.S3InvalidRange`
=============================  ===============================================

One difference follows: in fasts3 every error is an ``S3Error``, so
``except MetaflowS3Exception`` also catches a not-found (in Metaflow they are siblings).

:data:`S3_TRANSIENT_RETRY_COUNT` is read each time a transfer starts: assigning it (as
Metaflow's own tests patch Metaflow's) sets the attempts of every fasts3 client in the
process to that count plus one; left at its initial value, each client's
``TransferConfig.max_attempts`` (default 5, ``FASTS3_MAX_ATTEMPTS``) decides.
"""

from __future__ import annotations

import dataclasses

from .api import S3
from .config import TransferConfig
from .errors import (
    S3AccessDenied,
    S3Error,
    S3InvalidObject,
    S3InvalidRange,
    S3NotFound,
    S3URLError,
)
from .objects import RangeInfo, S3GetObject, S3Object, S3PutObject

MetaflowS3Exception = S3Error
MetaflowS3NotFound = S3NotFound
MetaflowS3AccessDenied = S3AccessDenied
MetaflowS3URLException = S3URLError
MetaflowS3InvalidObject = S3InvalidObject
MetaflowS3InvalidRange = S3InvalidRange

_DEFAULT_ATTEMPTS: int = next(int(f.default) for f in dataclasses.fields(TransferConfig)  # type: ignore[arg-type]
                              if f.name == "max_attempts")

#: Retries of a transiently failed request after its first attempt. Initially fasts3's default
#: (``TransferConfig.max_attempts - 1``); a different value applies to every client from its
#: next transfer on.
S3_TRANSIENT_RETRY_COUNT: int = _DEFAULT_ATTEMPTS - 1
_INITIAL_RETRY_COUNT = S3_TRANSIENT_RETRY_COUNT

__all__ = [
    "S3", "S3Object", "S3GetObject", "S3PutObject", "RangeInfo", "S3_TRANSIENT_RETRY_COUNT",
    "MetaflowS3Exception", "MetaflowS3NotFound", "MetaflowS3AccessDenied",
    "MetaflowS3URLException", "MetaflowS3InvalidObject", "MetaflowS3InvalidRange",
]


def patched_attempts() -> int | None:
    """Attempts per request implied by :data:`S3_TRANSIENT_RETRY_COUNT` if it was changed,
    else ``None``. Raises ``ValueError`` for a value that is not an int >= 0."""
    count = S3_TRANSIENT_RETRY_COUNT
    if count == _INITIAL_RETRY_COUNT:
        return None
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise ValueError(f"S3_TRANSIENT_RETRY_COUNT must be an int >= 0, not {count!r}")
    return count + 1
