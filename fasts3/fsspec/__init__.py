"""fasts3 as an fsspec filesystem: ``pd.read_parquet("fasts3://bucket/key")`` and friends.

Installing ``fasts3[fsspec]`` registers the protocol ``fasts3`` through fsspec's entry point
(``fsspec.specs``), so pandas, pyarrow and dask find it by URL; ``storage_options`` use
s3fs's names (``key``, ``secret``, ``token``, ``anon``, ``endpoint_url``,
``client_kwargs``, ``requester_pays``, ``profile``) plus fasts3's own (``config``, ...): see
:mod:`fasts3.fsspec.options`. :func:`register_s3` makes fasts3 serve ``s3://`` URLs too.

Modules: ``core.py`` (the filesystem: paths, listings, info, open, buckets), ``transfer.py``
(the batched ``cat``/``get``/``put``/``copy``/``rm``), ``files.py`` (the file objects),
``options.py`` (storage options and the shared S3 contexts).
"""

from __future__ import annotations

try:
    import fsspec
except ImportError as e:  # pragma: no cover - depends on the install
    raise ImportError("fasts3.fsspec needs fsspec: pip install 'fasts3[fsspec]'") from e

from .core import FastS3FileSystem

__all__ = ["FastS3FileSystem", "register_s3"]


def register_s3() -> None:
    """Serve ``s3://`` and ``s3a://`` URLs with fasts3 in this process (instead of s3fs).

    Opt-in and process-wide: call it before the first ``s3://`` URL is opened. Filesystem
    instances already created for those protocols are not replaced.
    """
    for protocol in ("s3", "s3a"):
        fsspec.register_implementation(protocol, FastS3FileSystem, clobber=True)
