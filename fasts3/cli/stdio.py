"""``fasts3 cp`` with ``-``: one object to stdout, or stdin to one object.

* ``fasts3 cp s3://b/k -`` streams the object to stdout with sequential range reads
  (``S3.open``'s reader, read ahead on several connections); nothing is written to disk.
* ``fasts3 cp - s3://b/k`` uploads stdin through the streaming writer (``fasts3.writer``):
  multipart with parts in parallel as stdin arrives, bounded memory and disk; the object
  appears only when stdin ends. Ctrl-C, SIGTERM or a failure abort the upload.

When stdout carries the data, the result record (and any error) goes to stderr, as JSON with
``--json`` (``Output.data_on_stdout``); uploads report on stdout like other copies.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from ..engine.plan import HeadOp
from ..errors import S3Error, S3NotFound
from ..urls import split_url
from .common import (
    EXIT_ERROR,
    EXIT_OK,
    Output,
    UsageError,
    check_put_flags,
    error_fields,
    has_wildcard,
    human,
    is_s3,
    open_engine,
)

CHUNK = 1 << 20
READAHEAD = 64 << 20  # bytes fetched ahead of stdout on ``threads`` connections
READ_THREADS = 8


def uses_stdio(args: argparse.Namespace) -> bool:
    """Whether a ``cp`` command line names ``-`` (stdin or stdout)."""
    return "-" in args.paths


def cp_stdio(args: argparse.Namespace, out: Output) -> int:
    """``cp SRC -`` or ``cp - DEST`` (see the module doc)."""
    *sources, dest = args.paths
    if len(sources) != 1:
        raise UsageError("'-' copies one stream: give exactly one SOURCE and one DEST")
    src = sources[0]
    if src == dest:
        raise UsageError("one side of a copy with '-' must be an s3:// URL")
    for given, flag in ((args.recursive, "-r"), (args.filters, "--include/--exclude"),
                        (args.dask_scheduler, "--dask-scheduler")):
        if given:
            raise UsageError(f"{flag} does not apply to a copy with '-'")
    if src == "-":
        if not is_s3(dest):
            raise UsageError("cp - DEST uploads stdin: DEST must be an s3:// URL")
        if args.version_id:
            raise UsageError("--version-id is for a download")
        bucket, key = split_url(dest)
        if not key or key.endswith("/"):
            raise UsageError(f"{dest}: give the full key of the object to create")
        check_put_flags(args, "upload")
        return _upload_stdin(args, out, dest)
    if not is_s3(src):
        raise UsageError("cp SOURCE - writes an object to stdout: SOURCE must be an s3:// URL")
    if not split_url(src)[1] or (not args.raw and has_wildcard(split_url(src)[1])):
        raise UsageError(f"{src}: '-' takes one object (no bucket, no wildcards; --raw takes "
                         "*, ? and [ literally)")
    if args.no_overwrite:
        raise UsageError("--no-overwrite does not apply to stdout")
    check_put_flags(args, "download")
    return _download_stdout(args, out, src)


# -- stdout -------------------------------------------------------------------------------
def _download_stdout(args: argparse.Namespace, out: Output, url: str) -> int:
    from ..seekable import open_object

    record: dict[str, Any] = {"op": "download", "source": url, "dest": "-"}
    if args.dry_run:
        out.result(dict(record, dry_run=True), f"(dry run) download: {url} -> -")
        return EXIT_OK
    started = time.monotonic()
    written = 0
    stdout = sys.stdout.buffer
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    try:
        with open_engine(args) as engine:
            with open_object(engine, url, version_id=args.version_id, readahead=READAHEAD,
                             cache_size=2 * READAHEAD, block_size=CHUNK,
                             threads=READ_THREADS) as f:
                while n := f.readinto(buf):
                    stdout.write(view[:n])
                    written += n
        stdout.flush()
    except S3Error as e:  # stdout has data: the record goes to stderr (Output.data_on_stdout)
        out.error(dict(record, size=written, **error_fields(e)),
                  f"download failed: {url}: {e.message}" + (f" [{e.code}]" if e.code else ""))
        return EXIT_ERROR
    secs = max(time.monotonic() - started, 1e-6)
    out.result(dict(record, ok=True, size=written),
               f"download: {url} -> - ({human(written)} in {secs:.1f} s)")
    return EXIT_OK


# -- stdin --------------------------------------------------------------------------------
def _upload_stdin(args: argparse.Namespace, out: Output, url: str) -> int:
    from ..opening import open_writer

    record: dict[str, Any] = {"op": "upload", "source": "-", "dest": url}
    if args.dry_run:
        out.result(dict(record, dry_run=True), f"(dry run) upload: - -> {url}")
        return EXIT_OK
    started = time.monotonic()
    stdin: Any = sys.stdin.buffer
    read = getattr(stdin, "readinto1", None) or stdin.readinto  # what has arrived, <= 1 MiB
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    with open_engine(args, uploads=True) as engine:
        if args.no_overwrite and _exists(engine, url):
            out.result(dict(record, ok=True, skipped=True), f"skip (exists): {url}")
            return EXIT_OK
        with open_writer(engine, url) as f:
            while n := read(buf):
                f.write(view[:n])
        size = f.size
    secs = max(time.monotonic() - started, 1e-6)
    out.result(dict(record, ok=True, size=size), f"upload: - -> {url}")
    out.note(f"uploaded 1 object, {human(size)} in {secs:.1f} s ({human(int(size / secs))}/s)")
    return EXIT_OK


def _exists(engine: Any, url: str) -> bool:
    bucket, key = split_url(url)
    op = HeadOp(url, bucket, key, return_missing=True)
    try:
        engine.run([op], "info")
    except S3NotFound:
        return False
    return op.result is not None
