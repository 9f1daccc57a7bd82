"""The ``fasts3`` command: ``cp``, ``sync``, ``ls``, ``info``, ``cat``, ``rm``, ``server``,
``bench`` (and ``zip`` when :mod:`fasts3.zip` is available). See ``docs/CLI.md``.

:func:`main` takes an argument list and returns the exit code (it never calls
``sys.exit``), so tests and other programs can run commands in-process.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from .. import signals
from ..errors import S3Error, S3URLError
from .common import (
    EXIT_BROKEN_PIPE,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    Output,
    UsageError,
    error_fields,
)
from .parser import ParseError, _global_options, build_parser

log = logging.getLogger("fasts3.cli")
_handler: logging.Handler | None = None

__all__ = ["main", "build_parser"]


class _StderrHandler(logging.StreamHandler):
    """Logs to whatever ``sys.stderr`` is at the time (tests swap it)."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def _setup_logging(verbosity: int, quiet: bool) -> None:
    global _handler
    root = logging.getLogger("fasts3")
    if _handler is None:
        _handler = _StderrHandler()
        _handler.setFormatter(logging.Formatter("fasts3: %(levelname)s: %(message)s"))
        root.addHandler(_handler)
    if quiet:
        level = logging.ERROR
    elif verbosity >= 2:
        level = logging.DEBUG
    else:
        level = logging.INFO if verbosity == 1 else logging.WARNING
    root.setLevel(level)
    _handler.setLevel(level)


def _add_zip(sub: Any) -> None:
    """Add ``fasts3 zip ...`` from :mod:`fasts3.zip` if it is there (optional)."""
    try:
        mod = importlib.import_module("fasts3.zip")
    except ImportError as e:
        log.debug("zip commands unavailable: %s", e)
        return
    add = getattr(mod, "add_zip_commands", None)
    run = getattr(mod, "run_zip_command", None)
    if add is None or run is None:
        return
    before = set(sub.choices)
    add(sub)
    for name in set(sub.choices) - before:
        parser = sub.choices[name]
        parser.set_defaults(_fasts3_run=lambda args, out, run=run: _run_zip(run, args, out))
        for p in (parser, *_nested(parser)):  # global options after `zip` and `zip ls`
            _global_options(p, sub=True)


def _nested(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    return [p for a in parser._actions if isinstance(a, argparse._SubParsersAction)
            for p in a.choices.values()]


def _run_zip(run: Callable[..., Any], args: argparse.Namespace, out: Output) -> Any:
    from .common import open_client

    with open_client(args) as s3:
        if args.json:
            from .zipjson import run_zip_json

            return run_zip_json(args, s3, out)
        return run(args, s3)


def _broken_pipe() -> int:
    """stdout's reader went away (``fasts3 ls | head``): stop quietly."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass
    return EXIT_BROKEN_PIPE


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``fasts3`` with ``argv`` (default: ``sys.argv[1:]``); return the exit code.

    Exit codes: 0 success; 1 error (nothing or not everything could be done, see stderr);
    2 usage error; 3 partial failure (some objects failed, the others succeeded);
    130 interrupted (Ctrl-C); 141 stdout closed early; 143 terminated (SIGTERM; the same
    clean-up as Ctrl-C).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_add_zip)
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help or --version (0)
        return e.code if isinstance(e.code, int) else EXIT_USAGE
    except ParseError as e:
        return _usage_error(e, _wants_json(argv), e.prog, e.usage)
    run: Callable[[argparse.Namespace, Output], Any] | None = getattr(args, "_fasts3_run", None)
    if run is None:
        if args.json:
            return _usage_error(UsageError("give a COMMAND"), True, "fasts3")
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    _setup_logging(args.verbose, args.quiet)
    out = Output(json_mode=args.json, quiet=args.quiet, data_on_stdout=_data_on_stdout(args))
    held = signals.hold()  # SIGTERM: the same clean-up as Ctrl-C, then exit 143
    try:
        code = run(args, out)
        out.flush()
        return int(code or 0)
    except signals.Terminated:
        _stopped(out, "terminated", "Terminated")
        return signals.EXIT_TERMINATED
    except (UsageError, S3URLError) as e:
        return _usage_error(e, args.json, f"fasts3 {args.command}")
    except S3Error as e:
        out.error(dict(url=e.url, **error_fields(e)), str(e))
        return EXIT_ERROR
    except KeyboardInterrupt:
        _stopped(out, "interrupted", "Interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return _broken_pipe()
    except OSError as e:
        out.error(error_fields(e), f"{e.strerror or e}"
                  + (f": {e.filename}" if getattr(e, "filename", None) else ""))
        return EXIT_ERROR
    finally:
        signals.release(held)


def _data_on_stdout(args: argparse.Namespace) -> bool:
    """Whether the command writes an object's bytes to stdout (records then go to stderr)."""
    if args.command == "cat":
        return True
    if args.command == "cp":
        return args.paths[-1:] == ["-"]
    return args.command == "zip" and getattr(args, "dest", None) == "-"


def _wants_json(argv: Sequence[str]) -> bool:
    """Whether ``--json`` is among the options (before a ``--`` that ends them)."""
    end = argv.index("--") if "--" in argv else len(argv)
    return "--json" in argv[:end]


def _usage_error(e: BaseException, json_mode: bool, prog: str, usage: str = "") -> int:
    """Report a usage error: one JSON object on stdout with ``--json``, else the usage and
    the message on stderr. Returns exit code 2."""
    message = getattr(e, "message", None) or str(e)
    url = getattr(e, "url", None)
    if json_mode:
        record = {"ok": False, "error": message, "code": "UsageError", "command": prog}
        if url:
            record["url"] = url
        sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")
        sys.stdout.flush()
    else:
        sys.stderr.write(usage + f"{prog}: error: {message}" + (f" ({url})" if url else "")
                         + "\n")
    return EXIT_USAGE


def _stopped(out: Output, what: str, code: str) -> None:
    """Ctrl-C or SIGTERM ended the command: say so (as a JSON record with ``--json``)."""
    if out.json:
        out.error({"error": what, "code": code}, what)
        out.flush()
    else:
        sys.stderr.write(f"fasts3: {what}\n")
