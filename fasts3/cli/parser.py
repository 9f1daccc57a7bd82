"""The ``fasts3`` argument parser: global options (accepted before or after the command),
one sub-parser per command with a description and examples."""

from __future__ import annotations

import argparse
import textwrap
from collections.abc import Callable
from typing import Any, NoReturn

from ..headers import CANNED_ACLS
from .common import FilterAction, UsageError


class ParseError(UsageError):
    """The command line does not parse; ``usage`` is the usage text of the (sub)command."""

    def __init__(self, message: str, usage: str, prog: str) -> None:
        super().__init__(message)
        self.usage = usage
        self.prog = prog


class _Parser(argparse.ArgumentParser):
    """Raises :class:`ParseError` instead of printing and exiting, so ``main`` can report it
    as text or (with ``--json``) as one JSON object. Sub-parsers are of this class too."""

    def error(self, message: str) -> NoReturn:
        raise ParseError(message, self.format_usage(), self.prog)

EPILOG = """\
exit codes:
  0    success
  1    error: the command could not do what was asked (details on stderr)
  2    usage error: bad arguments or URLs
  3    partial failure: some objects failed, the others succeeded
  130  interrupted (Ctrl-C)
  141  stdout was closed early (e.g. piped into head)

environment:
  AWS_ENDPOINT_URL_S3, AWS_PROFILE, AWS_REGION, AWS_ACCESS_KEY_ID, ... the usual AWS settings
  FASTS3_PROCESSES, FASTS3_PART_SIZE, ...                           transfer tuning

Run `fasts3 COMMAND --help` for a command's options and examples; docs/CLI.md has more.
"""


class _Formatter(argparse.HelpFormatter):
    """Wraps prose paragraphs to the terminal; keeps indented blocks (examples) as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        paras = []
        for para in text.split("\n\n"):
            if any(line.startswith(" ") for line in para.splitlines()):
                paras.append("\n".join(indent + line for line in para.splitlines()))
            else:
                paras.append(textwrap.fill(" ".join(para.split()), width,
                                           initial_indent=indent, subsequent_indent=indent,
                                           break_on_hyphens=False, break_long_words=False))
        return "\n\n".join(paras)


def _global_options(p: argparse.ArgumentParser, sub: bool) -> None:
    """The options every command takes. On sub-parsers their defaults are suppressed so a
    value given before the command is not reset."""

    def default(value: Any) -> Any:
        return argparse.SUPPRESS if sub else value

    g = p.add_argument_group("connection options")
    g.add_argument("--endpoint-url", metavar="URL", default=default(None),
                   help="S3-compatible endpoint (default: AWS_ENDPOINT_URL_S3, else AWS)")
    g.add_argument("--profile", metavar="NAME", default=default(None),
                   help="AWS config/credentials profile")
    g.add_argument("--region", metavar="NAME", default=default(None),
                   help="AWS region (default: from the profile/environment)")
    g.add_argument("--no-sign-request", action="store_true", default=default(False),
                   help="send anonymous (unsigned) requests, for public buckets")
    g.add_argument("--requester-pays", action="store_true", default=default(False),
                   help="agree to pay for requests to requester-pays buckets")
    g.add_argument("--addressing-style", choices=("auto", "path", "virtual"),
                   default=default(None),
                   help="bucket in the path or in the host name (default: auto)")
    g.add_argument("--role", metavar="ARN", default=default(None),
                   help="assume this IAM role through STS (refreshed automatically)")
    o = p.add_argument_group("output options")
    o.add_argument("--json", action="store_true", default=default(False),
                   help="print one JSON object per result line")
    o.add_argument("-q", "--quiet", action="store_true", default=default(False),
                   help="print only errors; no progress bar")
    o.add_argument("-v", "--verbose", action="count", default=default(0),
                   help="log more (-vv: debug)")


def _filters(p: argparse.ArgumentParser) -> None:
    p.add_argument("--include", metavar="PATTERN", dest="filters", action=FilterAction,
                   default=[], help="include names matching PATTERN (may repeat)")
    p.add_argument("--exclude", metavar="PATTERN", dest="filters", action=FilterAction,
                   help="exclude names matching PATTERN (may repeat; the last matching "
                        "--include/--exclude wins; * also matches /)")


def _upload_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("upload options")
    g.add_argument("--sse", choices=("AES256", "aws:kms", "aws:kms:dsse"),
                   help="server-side encryption of new objects")
    g.add_argument("--sse-kms-key-id", metavar="KEY",
                   help="KMS key id/ARN for new objects (implies --sse aws:kms)")
    g.add_argument("--storage-class", metavar="CLASS",
                   help="storage class of new objects, e.g. STANDARD_IA, INTELLIGENT_TIERING")
    g.add_argument("--acl", choices=CANNED_ACLS, metavar="ACL",
                   help="canned ACL of uploaded objects: " + ", ".join(CANNED_ACLS))
    g.add_argument("--cache-control", metavar="VALUE",
                   help="Cache-Control of uploaded objects, e.g. 'max-age=3600'")
    g.add_argument("--content-encoding", metavar="VALUE",
                   help="Content-Encoding of uploaded objects, e.g. gzip")
    g.add_argument("--content-disposition", metavar="VALUE",
                   help="Content-Disposition of uploaded objects, e.g. 'attachment'")


def _command(sub: Any, name: str, run: Callable, summary: str, description: str,
             examples: str, usage: str | None = None) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=summary, description=description, usage=usage,
                       epilog="examples:\n" + examples,
                       formatter_class=_Formatter)
    p.set_defaults(_fasts3_run=run)
    return p


def build_parser(extend: Callable[[Any], None] | None = None) -> argparse.ArgumentParser:
    """The full parser; ``extend(subparsers)`` may add more commands (``fasts3 zip``)."""
    from .. import __version__
    from .cmd_browse import cmd_cat, cmd_info, cmd_ls
    from .cmd_tools import cmd_bench, cmd_rm, cmd_server
    from .cmd_transfer import cmd_cp, cmd_sync

    parser = _Parser(
        prog="fasts3", formatter_class=_Formatter, epilog=EPILOG,
        description="Move data between S3 and this machine as fast as the machine and the "
                    "network allow.")
    parser.add_argument("--version", action="version", version=f"fasts3 {__version__}")
    _global_options(parser, sub=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")

    def add(name: str, run: Callable, summary: str, description: str, examples: str,
            usage: str | None = None) -> argparse.ArgumentParser:
        p = _command(sub, name, run, summary, description, examples, usage)
        _global_options(p, sub=True)
        return p

    p = add("cp", cmd_cp, "copy objects and files (download, upload, S3-to-S3)",
            "Copy S3 objects to local files, local files to S3, or objects to other keys "
            "(server side, the bytes never leave S3).\n\n"
            "With several sources, -r or a wildcard, DEST is a directory or key prefix and "
            "each result is named\nrelative to its source; otherwise DEST ending in / is a "
            "directory/prefix and anything else the target\nname. Wildcards: * and ? within "
            "one path segment, ** across segments, [abc] a character class.\n"
            "Downloads appear atomically (staged, then renamed) and get the object's "
            "Last-Modified as mtime.",
            "  fasts3 cp s3://bucket/data/file.csv .\n"
            "  fasts3 cp -r s3://bucket/data/ ./data\n"
            "  fasts3 cp 's3://bucket/logs/2024-*/*.gz' ./logs --exclude '*debug*'\n"
            "  fasts3 cp -r ./results s3://bucket/run-42/ --storage-class STANDARD_IA\n"
            "  fasts3 cp *.parquet s3://bucket/tables/\n"
            "  fasts3 cp -r s3://bucket/a/ s3://other-bucket/b/\n"
            "  fasts3 cp --version-id 3HL4kqtJ s3://bucket/key old-version.bin\n",
            usage="fasts3 cp [options] SOURCE [SOURCE ...] DEST")
    p.add_argument("paths", nargs="+", metavar="PATH", help="sources, then the destination")
    p.add_argument("-r", "--recursive", action="store_true",
                   help="copy everything under each source directory/prefix")
    _filters(p)
    p.add_argument("-n", "--no-overwrite", action="store_true",
                   help="leave existing destination files/objects alone")
    p.add_argument("--dry-run", action="store_true", help="show what would be copied")
    p.add_argument("--raw", action="store_true", help="take *, ? and [ in URLs literally")
    p.add_argument("--version-id", metavar="ID", help="copy this version of the object")
    p.add_argument("--dask-scheduler", metavar="ADDRESS",
                   help="stage one -r s3:// prefix across the workers of this Dask cluster "
                        "(needs fasts3[dask]; see fasts3.distributed)")
    _upload_options(p)

    p = add("sync", cmd_sync, "make a destination match a source directory/prefix",
            "Copy what is new or changed from SRC to DEST (directories or key prefixes; one "
            "side must be S3).\n\nUnchanged means same size and the source not newer than "
            "the destination (whole seconds);\n--size-only compares sizes only; --checksum "
            "also compares contents (local MD5 against the ETag).\n--delete removes "
            "destination entries missing from the source (filters apply to both sides).",
            "  fasts3 sync ./site s3://bucket/site --delete\n"
            "  fasts3 sync s3://bucket/models ./models --exclude '*.tmp'\n"
            "  fasts3 sync --checksum --dry-run ./data s3://bucket/data\n"
            "  fasts3 sync s3://bucket/v1 s3://bucket/v2\n",
            usage="fasts3 sync [options] SRC DEST")
    p.add_argument("src", metavar="SRC", help="local directory or s3:// prefix")
    p.add_argument("dest", metavar="DEST", help="local directory or s3:// prefix")
    p.add_argument("--delete", action="store_true",
                   help="delete destination entries that are not in the source")
    p.add_argument("--dry-run", action="store_true", help="show what would be done")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--checksum", action="store_true",
                     help="compare contents (MD5/ETag) of same-size entries")
    how.add_argument("--size-only", action="store_true", help="compare sizes only")
    _filters(p)
    _upload_options(p)

    p = add("ls", cmd_ls, "list buckets, a prefix, or everything under it",
            "List one level under each URL (prefixes shown as DIR), or with -r every object "
            "under it.\nWithout a URL, list the buckets. A URL that is itself an object "
            "lists that object.\nSizes are human-readable (--bytes for exact); a total "
            "line ends the listing.",
            "  fasts3 ls\n"
            "  fasts3 ls s3://bucket/\n"
            "  fasts3 ls -r s3://bucket/data --bytes\n"
            "  fasts3 ls 's3://bucket/logs/*.gz'\n"
            "  fasts3 ls -r s3://bucket/ --json | jq .size\n",
            usage="fasts3 ls [options] [URL ...]")
    p.add_argument("urls", nargs="*", metavar="URL")
    p.add_argument("-r", "--recursive", action="store_true", help="list every object under")
    p.add_argument("--bytes", action="store_true", help="exact sizes in bytes")
    p.add_argument("--raw", action="store_true", help="take *, ? and [ in URLs literally")
    _filters(p)

    p = add("info", cmd_info, "show an object's size, times, ETag, version, metadata",
            "HEAD each object and show what S3 knows about it (no download).",
            "  fasts3 info s3://bucket/data/file.csv\n"
            "  fasts3 info --json s3://bucket/a s3://bucket/b\n"
            "  fasts3 info --version-id 3HL4kqtJ s3://bucket/key\n",
            usage="fasts3 info [options] URL [URL ...]")
    p.add_argument("urls", nargs="+", metavar="URL")
    p.add_argument("--version-id", metavar="ID", help="describe this version")

    p = add("cat", cmd_cat, "write objects to stdout",
            "Download objects (or a byte range) and write them to stdout, one after another.",
            "  fasts3 cat s3://bucket/config.json\n"
            "  fasts3 cat s3://bucket/big.log --offset 1000 --length 200\n"
            "  fasts3 cat s3://bucket/big.log --length -1024    # the last KiB\n"
            "  fasts3 cat s3://bucket/data.csv.gz | gunzip | head\n",
            usage="fasts3 cat [options] URL [URL ...]")
    p.add_argument("urls", nargs="+", metavar="URL")
    p.add_argument("--offset", type=int, default=0, metavar="N", help="start at byte N")
    p.add_argument("--length", type=int, default=None, metavar="N",
                   help="read N bytes (negative: the last -N bytes)")
    p.add_argument("--version-id", metavar="ID", help="read this version")

    p = add("rm", cmd_rm, "delete objects (batched, 1000 per request)",
            "Delete objects. With -r, everything under each prefix; wildcards select "
            "objects. Keys are\ndeleted with DeleteObjects requests of up to 1000 keys, in "
            "parallel. Deleting a missing key succeeds.",
            "  fasts3 rm s3://bucket/tmp/file.bin\n"
            "  fasts3 rm -r s3://bucket/tmp/ --dry-run\n"
            "  fasts3 rm 's3://bucket/logs/*.tmp'\n"
            "  fasts3 rm -r s3://bucket/run-41/ --exclude '*.json'\n",
            usage="fasts3 rm [options] URL [URL ...]")
    p.add_argument("urls", nargs="+", metavar="URL")
    p.add_argument("-r", "--recursive", action="store_true",
                   help="delete everything under each prefix")
    p.add_argument("--dry-run", action="store_true", help="show what would be deleted")
    p.add_argument("--raw", action="store_true", help="take *, ? and [ in URLs literally")
    _filters(p)

    p = add("server", cmd_server, "run a local S3 server to try things out",
            "Start an embedded S3-compatible server on 127.0.0.1 (SeaweedFS, or moto with "
            "--kind moto),\nprint its endpoint, credentials and the environment exports "
            "that point fasts3 and other\nAWS tools at it, and run until Ctrl-C.",
            "  fasts3 server --bucket demo\n"
            "  fasts3 server --kind moto --json\n"
            "  fasts3 server --data-dir ./s3data --bucket demo    # keeps the data\n",
            usage="fasts3 server [--kind {seaweedfs,moto}] [--bucket NAME] [--data-dir DIR]")
    p.add_argument("--kind", choices=("seaweedfs", "moto"), default="seaweedfs",
                   help="which server (default: seaweedfs)")
    p.add_argument("--bucket", action="append", default=[], metavar="NAME",
                   help="create this bucket (may repeat)")
    p.add_argument("--data-dir", metavar="DIR",
                   help="keep SeaweedFS data here (default: a temp dir removed on exit)")

    p = add("bench", cmd_bench, "run the benchmark harness (source checkout only)",
            "Run the side-by-side benchmark harness (`python -m bench` from the source "
            "checkout).\nEverything after `bench` is passed to it; use `fasts3 bench -- "
            "--help` for its options.",
            "  fasts3 bench -- --help\n"
            "  fasts3 bench -- --quick\n",
            usage="fasts3 bench [-- ARGS ...]")
    p.add_argument("bench_args", nargs=argparse.REMAINDER, metavar="ARGS",
                   help="arguments for python -m bench")

    if extend is not None:
        extend(sub)
    return parser
