"""fasts3: move data between S3 and this machine as fast as the machine and network allow.

Public names: :class:`S3`, :class:`S3Object`, :class:`S3GetObject`, :class:`S3PutObject`,
:class:`RangeInfo`, :class:`TransferConfig` and the errors. They are imported lazily so that
worker processes (which import ``fasts3.engine``) never pay for boto3.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from .errors import (
    S3AccessDenied,
    S3CertificateError,
    S3Error,
    S3InvalidObject,
    S3InvalidRange,
    S3NetworkError,
    S3NoCredentials,
    S3NotFound,
    S3ObjectChanged,
    S3ProtocolError,
    S3RetriesExhausted,
    S3TransientError,
    S3URLError,
)

if TYPE_CHECKING:
    from .api import S3
    from .config import TransferConfig
    from .objects import RangeInfo, S3GetObject, S3Object, S3PutObject

logging.getLogger("fasts3").addHandler(logging.NullHandler())

__version__ = "0.1.0"
__all__ = [
    "S3", "S3Object", "S3GetObject", "S3PutObject", "RangeInfo", "TransferConfig",
    "S3Error", "S3NotFound", "S3AccessDenied", "S3InvalidRange", "S3URLError",
    "S3InvalidObject", "S3TransientError", "S3RetriesExhausted", "S3ObjectChanged",
    "S3NetworkError", "S3CertificateError", "S3ProtocolError", "S3NoCredentials",
]

_LAZY = {
    "S3": ".api",
    "TransferConfig": ".config",
    "S3Object": ".objects",
    "S3GetObject": ".objects",
    "S3PutObject": ".objects",
    "RangeInfo": ".objects",
}


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'fasts3' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
