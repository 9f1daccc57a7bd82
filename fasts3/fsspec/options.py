"""Storage options -> ``S3(...)`` keyword arguments, and the long-lived S3 contexts behind
filesystem instances.

Storage options use s3fs's names where they overlap, so switching from ``s3://`` (s3fs) to
``fasts3://`` is a protocol change:

=====================  ==========================================================
option                 becomes
=====================  ==========================================================
``key``                ``session_vars["aws_access_key_id"]``
``secret``             ``session_vars["aws_secret_access_key"]``
``token``              ``session_vars["aws_session_token"]``
``anon``               ``anonymous``
``endpoint_url``       ``endpoint_url``
``client_kwargs``      ``endpoint_url`` and ``region_name`` (-> ``region``) are taken
                       out; the rest goes to ``client_params``
``config_kwargs``      ``client_params["config"] = botocore.config.Config(**...)``
``requester_pays``     ``requester_pays``
``profile``            ``profile``
``s3_additional_kwargs``  ``ServerSideEncryption`` -> ``encryption``, ``SSEKMSKeyId`` ->
                       ``kms_key_id``, ``StorageClass`` -> ``storage_class``,
                       ``RequestPayer="requester"`` -> ``requester_pays``
``default_block_size`` block size of files opened for reading (bytes)
=====================  ==========================================================

fasts3's own: ``config`` (a :class:`~fasts3.TransferConfig` or a dict of its fields),
``tmproot`` (default: the system temp dir), ``progress`` (default ``False``), ``role``,
``region``, ``addressing_style``, ``encryption``, ``kms_key_id``, ``storage_class``,
``session_vars``, ``client_params``. Any other option raises :class:`TypeError` naming it.

**Contexts.** fsspec caches one filesystem instance per thread and set of options; the
instances of one process that share options share one :class:`~fasts3.S3` context (one worker
pool, safe to use from several threads), created on first use and closed by
:func:`close_context` (``fs.close()``) or at interpreter exit. A child made by ``fork()`` never
uses or closes the contexts it inherited (their workers and temp directories belong to the
parent); it makes its own.
"""

from __future__ import annotations

import atexit
import os
import tempfile
import threading
from typing import Any

from ..api import S3
from ..config import TransferConfig

#: Options fsspec's own base class understands (listing cache settings and friends).
FSSPEC_OPTIONS = ("use_listings_cache", "listings_expiry_time", "max_paths", "asynchronous",
                  "loop")
_PASSTHROUGH = ("role", "region", "addressing_style", "encryption", "kms_key_id",
                "storage_class", "requester_pays", "profile", "endpoint_url", "progress",
                "tmproot")
_EXTRA_KWARGS = {"ServerSideEncryption": "encryption", "SSEKMSKeyId": "kms_key_id",
                 "StorageClass": "storage_class"}
DEFAULT_BLOCK_SIZE = 256 * 1024


def s3_kwargs(options: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """Map storage options onto ``S3(...)`` keyword arguments (see the module docstring).

    Returns ``(kwargs, read_block_size)``. Raises :class:`TypeError` for an unknown option
    and :class:`ValueError` for an unsupported value.
    """
    opts = dict(options)
    out: dict[str, Any] = {"tmproot": tempfile.gettempdir(), "progress": False}
    svars = dict(opts.pop("session_vars", None) or {})
    for name, var in (("key", "aws_access_key_id"), ("secret", "aws_secret_access_key"),
                      ("token", "aws_session_token")):
        value = opts.pop(name, None)
        if value is not None:
            svars[var] = value
    if svars:
        out["session_vars"] = svars
    if opts.pop("anon", False):
        out["anonymous"] = True
    params = dict(opts.pop("client_params", None) or {})
    params.update(opts.pop("client_kwargs", None) or {})
    if "endpoint_url" in params:
        out["endpoint_url"] = params.pop("endpoint_url")
    if "region_name" in params:
        out["region"] = params.pop("region_name")
    config_kwargs = opts.pop("config_kwargs", None)
    if config_kwargs:
        from botocore.config import Config

        params["config"] = Config(**config_kwargs)
    if params:
        out["client_params"] = params
    for name, value in (opts.pop("s3_additional_kwargs", None) or {}).items():
        if name == "RequestPayer" and value == "requester":
            out["requester_pays"] = True
        elif name in _EXTRA_KWARGS:
            out[_EXTRA_KWARGS[name]] = value
        else:
            raise ValueError(f"fasts3: s3_additional_kwargs[{name!r}] is not supported "
                             f"(supported: RequestPayer, {', '.join(_EXTRA_KWARGS)})")
    config = opts.pop("config", None)
    if isinstance(config, dict):
        config = TransferConfig.from_env(**config)
    if config is not None:
        if not isinstance(config, TransferConfig):
            raise ValueError("fasts3: config must be a TransferConfig or a dict of its fields")
        out["config"] = config
    block_size = int(opts.pop("default_block_size", None) or DEFAULT_BLOCK_SIZE)
    for name in _PASSTHROUGH:
        if name in opts:
            value = opts.pop(name)
            if value is not None:
                out[name] = value
    if opts:
        raise TypeError(f"fasts3: unknown storage option(s) {sorted(opts)}; see "
                        "fasts3.fsspec.options for the supported ones")
    return out, block_size


# -- shared contexts -----------------------------------------------------------------------
_lock = threading.Lock()
_contexts: dict[str, S3] = {}


def context(token: str, kwargs: dict[str, Any]) -> S3:
    """The S3 context for ``token`` in this process, created from ``kwargs`` on first use."""
    with _lock:
        s3 = _contexts.get(token)
        if s3 is None:
            s3 = S3(**kwargs)
            _contexts[token] = s3
        return s3


def close_context(token: str) -> None:
    """Close the context for ``token`` (stops its workers, removes its temp dir), if any.
    The next use of a filesystem with these options makes a new one."""
    with _lock:
        s3 = _contexts.pop(token, None)
    if s3 is not None:
        s3.close()


def _close_all() -> None:
    with _lock:
        contexts = list(_contexts.values())
        _contexts.clear()
    for s3 in contexts:
        try:
            s3.close()
        except Exception:  # noqa: BLE001 - interpreter exit: close the others anyway
            pass


class _Inherited:
    """What an S3 context inherited through ``fork()`` becomes in the child: an object without
    ``close()`` or finalizer, so the child can never stop the parent's workers or delete its
    temp directory."""


def _forget_inherited() -> None:
    global _lock
    _lock = threading.Lock()  # another thread may have held it at fork time
    for s3 in _contexts.values():
        s3.__class__ = _Inherited  # type: ignore[assignment]
    _contexts.clear()


atexit.register(_close_all)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_inherited)
