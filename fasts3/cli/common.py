"""Shared pieces of the ``fasts3`` command: exit codes, output (text or JSON lines), sizes,
wildcards and ``--include``/``--exclude`` filters, and the S3 client built from the options.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..api import S3
    from ..engine.engine import Engine

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_PARTIAL = 3
EXIT_BROKEN_PIPE = 141
EXIT_INTERRUPTED = 130

WILDCARD_CHARS = "*?["
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class UsageError(Exception):
    """The command line asks for something impossible (exit code 2)."""


def is_s3(location: str) -> bool:
    return location.startswith("s3://")


def has_wildcard(text: str) -> bool:
    return any(c in text for c in WILDCARD_CHARS)


def safe(text: str) -> str:
    """``text`` for a terminal: control characters shown as escapes."""
    return _CONTROL.sub(lambda m: repr(m.group(0))[1:-1], text)


def human(n: int | None) -> str:
    """``1536`` -> ``"1.5 KiB"`` (binary units; bytes below 1 KiB)."""
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if value < 1024 or unit == "PiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def iso_time(epoch: float | None) -> str:
    """Epoch seconds as ``YYYY-MM-DD HH:MM:SS`` (UTC), or ``-``."""
    if epoch is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(epoch))


def glob_regex(pattern: str) -> re.Pattern[str]:
    """Compile a key wildcard: ``*`` and ``?`` stay within one ``/`` segment, ``**`` crosses
    segments (``a/**/b`` also matches ``a/b``), ``[...]`` is a character class."""
    out, i, n = [], 0, len(pattern)
    while i < n:
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[" and _class_end(pattern, i) > 0:
            j = _class_end(pattern, i)
            body = pattern[i + 1:j].replace("\\", "\\\\")
            if body.startswith("!"):
                body = "^" + body[1:]
            elif body.startswith("^"):
                body = "\\" + body
            out.append("[" + body + "]")
            i = j + 1
        else:
            out.append(re.escape(c))
            i += 1
    return re.compile("".join(out) + r"\Z", re.S)


def _class_end(pattern: str, i: int) -> int:
    """Index of the ``]`` closing the class opened at ``i``, or -1."""
    j = i + 1
    if pattern[j:j + 1] == "!":
        j += 1
    if pattern[j:j + 1] == "]":
        j += 1
    return pattern.find("]", j)


def wildcard_base(key: str) -> tuple[str, str]:
    """``(list_prefix, rel_base)`` for a key with a wildcard: the literal text before the
    first wildcard, and the ``/``-ended directory part of it (results are named relative to
    that)."""
    first = min(key.index(c) for c in WILDCARD_CHARS if c in key)
    prefix = key[:first]
    return prefix, prefix[: prefix.rfind("/") + 1]


class Filters:
    """``--include``/``--exclude`` patterns, applied in order; the last one that matches a
    relative path decides (everything is included when nothing matches). Patterns use
    shell wildcards where ``*`` also matches ``/``."""

    def __init__(self, rules: Sequence[tuple[str, str]] | None) -> None:
        self.rules = list(rules or [])

    def __bool__(self) -> bool:
        return bool(self.rules)

    def included(self, rel: str) -> bool:
        keep = True
        for kind, pattern in self.rules:
            if fnmatch.fnmatchcase(rel, pattern):
                keep = kind == "include"
        return keep


class FilterAction(argparse.Action):
    """Collects ``--include``/``--exclude`` into one ordered list of ``(kind, pattern)``."""

    def __call__(self, parser, namespace, values, option_string=None):  # noqa: D102
        rules = list(getattr(namespace, self.dest, None) or [])
        rules.append(("include" if option_string == "--include" else "exclude", values))
        setattr(namespace, self.dest, rules)


class Output:
    """Where results go. Text: one readable line per result on stdout (``-q`` hides them),
    errors on stderr, a summary on stderr. ``--json``: one JSON object per line on stdout,
    errors included (``"ok": false``), no summary. With ``data_on_stdout`` (the command
    writes an object's bytes there: ``cat``, ``cp s3://b/k -``, ``zip get ... -``) results
    and JSON records go to stderr instead."""

    def __init__(self, json_mode: bool = False, quiet: bool = False,
                 data_on_stdout: bool = False) -> None:
        self.json = json_mode
        self.quiet = quiet
        self.data_on_stdout = data_on_stdout

    @property
    def _records(self) -> Any:
        return sys.stderr if self.data_on_stdout else sys.stdout

    def _write_json(self, obj: dict[str, Any]) -> None:
        try:
            line = json.dumps(obj, ensure_ascii=False, sort_keys=False)
            self._records.write(line + "\n")
        except UnicodeEncodeError:
            self._records.write(json.dumps(obj) + "\n")

    def result(self, obj: dict[str, Any], text: str | None) -> None:
        """One successful result."""
        if self.json:
            self._write_json(obj)
        elif text is not None and not self.quiet:
            self._records.write("\n".join(safe(line) for line in text.split("\n")) + "\n")

    def error(self, obj: dict[str, Any], text: str) -> None:
        """One failed result (always shown)."""
        if self.json:
            self._write_json(dict(obj, ok=False))
        else:
            sys.stderr.write("fasts3: " + safe(text) + "\n")

    def text(self, line: str) -> None:
        """A line for humans on stdout (text mode only; hidden by ``-q``)."""
        if not self.json and not self.quiet:
            self._records.write(safe(line) + "\n")

    def note(self, text: str) -> None:
        """A summary or remark for humans (stderr; hidden by ``-q`` and ``--json``)."""
        if not self.json and not self.quiet:
            sys.stderr.write(text + "\n")

    def flush(self) -> None:
        self._records.flush()


def error_fields(e: BaseException) -> dict[str, Any]:
    """JSON fields describing an exception."""
    message = getattr(e, "message", None) or str(e)
    return {"error": message, "code": getattr(e, "code", None) or type(e).__name__}


def _client_options(args: argparse.Namespace, uploads: bool) -> dict[str, Any]:
    """Connection (and, for commands that create objects, upload) options from the command
    line, as :class:`fasts3.S3` keyword arguments."""
    kwargs: dict[str, Any] = dict(
        endpoint_url=args.endpoint_url, role=args.role, region=args.region,
        profile=args.profile, anonymous=args.no_sign_request,
        requester_pays=args.requester_pays, addressing_style=args.addressing_style)
    if uploads:
        kwargs.update(encryption=getattr(args, "sse", None),
                      kms_key_id=getattr(args, "sse_kms_key_id", None),
                      storage_class=getattr(args, "storage_class", None))
        kwargs.update((name, getattr(args, name, None)) for name in PUT_FLAGS)
    return kwargs


PUT_FLAGS = ("acl", "cache_control", "content_encoding", "content_disposition")
"""The put options of ``cp``/``sync`` (``--acl``, ``--cache-control``, ...)."""


def check_put_flags(args: argparse.Namespace, kind: str) -> None:
    """Put options only make sense for uploads: raise :class:`UsageError` if one is given
    to a download or a server-side copy (which keeps the source's headers)."""
    given = ["--" + name.replace("_", "-") for name in PUT_FLAGS
             if getattr(args, name, None) is not None]
    if given and kind != "upload":
        raise UsageError(f"{', '.join(given)} only apply to uploads (local files or stdin "
                         f"to s3://), not to a {kind}")


def open_client(args: argparse.Namespace) -> S3:
    """An :class:`fasts3.S3` (no root: full ``s3://`` URLs) configured from the options, for
    commands that use the public API (``cat``, ``zip``)."""
    from ..api import S3

    return S3(tmproot=tempfile.gettempdir(), progress=False if args.quiet else None,
              **_client_options(args, uploads=False))


def open_engine(args: argparse.Namespace, tmproot: str | None = None,
                uploads: bool = False) -> Engine:
    """An :class:`~fasts3.engine.engine.Engine` configured from the options, for commands
    that run ops themselves (``cp``, ``sync``, ``rm``, ``ls``, ``info``).

    ``tmproot`` is where downloads are staged (the destination, so the final rename is
    atomic); default: the system temp directory.
    """
    from ..config import TransferConfig
    from ..engine.engine import Engine

    return Engine.from_options(TransferConfig.from_env(), False if args.quiet else None,
                               tmproot or tempfile.gettempdir(),
                               _client_options(args, uploads))


def umask() -> int:
    """The process umask (read without changing it for long)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
