"""``fasts3 zip ls|get --json``: the zip commands' results as JSON lines (``fasts3.zip``
prints text; this module reads the same archive through its API and reports records)."""

from __future__ import annotations

import argparse
import fnmatch
from typing import Any

from ..errors import S3NotFound
from .common import EXIT_OK, Output, UsageError


def run_zip_json(args: argparse.Namespace, s3: Any, out: Output) -> int:
    """``zip ls``: one record per member (``name``, ``size``, ``compressed``, ``method``,
    ``modified``); ``zip get``: one record per extracted path. ``zip get ... -`` writes a
    member's bytes to stdout, so it takes no ``--json``."""
    from ..zip import _METHODS, zip_get, zip_ls

    if args.zip_command == "ls":
        for zi in zip_ls(s3, args.url):
            y, mo, d, h, mi, sec = zi.date_time
            out.result({"name": zi.filename, "size": zi.file_size,
                        "compressed": zi.compress_size,
                        "method": _METHODS.get(zi.compress_type, str(zi.compress_type)),
                        "modified": f"{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{sec:02}"}, None)
        return EXIT_OK
    if args.dest == "-":
        raise UsageError("zip get ... - writes the member's bytes to stdout: no --json")
    names = [zi.filename for zi in zip_ls(s3, args.url)]
    chosen = [args.member] if args.member in names else \
        [n for n in names if fnmatch.fnmatchcase(n, args.member)]
    if not chosen:
        raise S3NotFound(f"No member matches {args.member!r}", args.url, "NoSuchMember")
    for path in zip_get(s3, args.url, args.dest, chosen):
        out.result({"op": "extract", "source": args.url, "dest": path, "ok": True}, None)
    return EXIT_OK
