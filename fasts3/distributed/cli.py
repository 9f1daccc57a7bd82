"""``fasts3 cp -r s3://bucket/prefix DEST --dask-scheduler ADDRESS``: the command-line face
of :func:`fasts3.distributed.stage`.

DEST is a directory (the same path on every worker's machine) or an ``s3://`` prefix
(server-side copies). One source prefix with ``-r``; ``--include``/``--exclude`` apply to
the names relative to it. Each object gives one result line (``--json``: one object per
line, with the worker and checksum); the exit code is 0 (all staged), 3 (some failed) or 1
(all failed).
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

from ..cli.common import EXIT_ERROR, EXIT_OK, EXIT_PARTIAL, Output, UsageError, human, is_s3
from . import cp_with_dask
from .manifest import OK


def cp_dask(args: argparse.Namespace, out: Output) -> int:
    """Run ``fasts3 cp`` on the Dask cluster at ``args.dask_scheduler``."""
    from ..cli.common import Filters, has_wildcard

    try:
        import distributed  # noqa: F401
    except ImportError:
        raise UsageError("--dask-scheduler needs Dask: pip install 'fasts3[dask]'") from None
    *sources, dest = args.paths
    if len(sources) != 1 or not args.recursive or not is_s3(sources[0]):
        raise UsageError("--dask-scheduler stages one s3:// prefix: "
                         "fasts3 cp -r s3://bucket/prefix DEST --dask-scheduler ADDRESS")
    source = sources[0]
    unsupported = [flag for flag, on in (("--dry-run", args.dry_run),
                                         ("--no-overwrite", args.no_overwrite),
                                         ("--version-id", args.version_id),
                                         ("wildcards", not args.raw and has_wildcard(source)))
                   if on]
    if unsupported:
        raise UsageError(f"--dask-scheduler does not support {', '.join(unsupported)}")
    filters = Filters(args.filters)
    kind = "copy" if is_s3(dest) else "download"
    opts: dict[str, Any] = dict(
        endpoint_url=args.endpoint_url, role=args.role, region=args.region,
        profile=args.profile, anonymous=args.no_sign_request,
        requester_pays=args.requester_pays, addressing_style=args.addressing_style,
        progress=False if args.quiet or args.json else None, strict=False)
    if kind == "copy":
        opts.update(encryption=getattr(args, "sse", None),
                    kms_key_id=getattr(args, "sse_kms_key_id", None),
                    storage_class=getattr(args, "storage_class", None))
    else:
        dest = os.path.abspath(dest)
    if filters:
        opts["select"] = lambda obj: filters.included(obj.rel)
    started = time.monotonic()
    manifest = cp_with_dask(source, dest, args.dask_scheduler, **opts)
    for e in manifest:
        rec = {"op": kind, "source": e.url, "dest": e.dest, "size": e.size,
               "worker": e.worker, "checksum": e.checksum}
        if e.status == OK:
            out.result(dict(rec, ok=True), f"{kind}: {e.url} -> {e.dest}")
        else:
            out.error(dict(rec, error=e.error or e.status, code=e.status),
                      f"{kind} failed: {e.url}: {e.error or e.status}")
    ok, failed = len(manifest.ok), len(manifest.failed)
    workers = len({e.worker for e in manifest.ok})
    verb = "copied" if kind == "copy" else "downloaded"
    out.note(f"{ok} {verb}, {failed} failed, {human(manifest.total_bytes)} by {workers} "
             f"Dask worker(s) in {time.monotonic() - started:.1f}s")
    if not failed:
        return EXIT_OK
    return EXIT_PARTIAL if ok else EXIT_ERROR
