"""``fasts3 rm``, ``fasts3 server`` and ``fasts3 bench``."""

from __future__ import annotations

import argparse
import itertools
import os
import subprocess
import sys

from ..signals import Terminated
from .common import EXIT_ERROR, EXIT_OK, Filters, Output, UsageError, is_s3, open_engine
from .expand import iter_s3
from .transfer import CHUNK, Job, Runner, Stats


def cmd_rm(args: argparse.Namespace, out: Output) -> int:
    """Delete objects with batched DeleteObjects requests (1000 keys per request), page by
    page as the listing arrives: memory holds one page, and deleting starts at once."""
    for url in args.urls:
        if not is_s3(url):
            raise UsageError(f"{url} is not an s3:// URL (rm only deletes objects)")
    with open_engine(args) as engine:
        runner = Runner(engine, out, "delete", dry_run=args.dry_run)
        stats = Stats()
        progress = engine.new_progress("delete", 0)
        try:
            found = iter_s3(engine, args.urls, args.recursive, Filters(args.filters), args.raw)
            while chunk := list(itertools.islice(found, CHUNK)):
                stats.add(runner.run([Job(src.location) for src in chunk], progress))
        finally:
            progress.close()
        runner.summary(stats)
    return stats.exit_code()


def cmd_server(args: argparse.Namespace, out: Output) -> int:
    """Run an embedded S3-compatible server until Ctrl-C / SIGTERM (both exit 0)."""
    try:
        return _serve(args, out)
    except Terminated:  # before or after the banner: the server is stopped by its `with`
        return EXIT_OK


def _serve(args: argparse.Namespace, out: Output) -> int:
    from .. import local

    try:
        if args.kind == "moto":
            srv = local.start_moto()
        else:
            srv = local.start_seaweedfs(args.data_dir)
    except local.LocalS3Error as e:
        out.error({"error": str(e), "code": "ServerFailed"}, str(e))
        return EXIT_ERROR
    with srv:
        for name in args.bucket:
            srv.create_bucket(name)
        env = srv.env()
        if out.json:
            out.result({"kind": srv.kind, "endpoint_url": srv.endpoint_url,
                        "access_key": srv.access_key, "secret_key": srv.secret_key,
                        "region": srv.region, "pid": srv.pid, "buckets": args.bucket,
                        "env": env}, None)
        else:
            example = f"s3://{args.bucket[0]}/" if args.bucket else "s3://BUCKET/"
            lines = [
                f"{srv.kind} S3 server running at {srv.endpoint_url} (pid {srv.pid})",
                f"  access key: {srv.access_key}",
                f"  secret key: {srv.secret_key}",
                f"  region:     {srv.region}",
                *(f"  bucket:     s3://{b}" for b in args.bucket),
                "",
                "# in another shell:",
                *(f"export {k}={v}" for k, v in env.items()),
                f"fasts3 ls {example}",
                "",
                "Ctrl-C to stop (data is removed unless --data-dir was given).",
            ]
            sys.stdout.write("\n".join(lines) + "\n")
        sys.stdout.flush()
        if not srv.wait():
            out.error({"error": "server exited", "code": "ServerExited"},
                      f"the {srv.kind} server exited unexpectedly (log: {srv.data_dir})")
            return EXIT_ERROR
    return EXIT_OK


def repo_root() -> str:
    """The source checkout holding this package (where ``bench/`` lives)."""
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def cmd_bench(args: argparse.Namespace, out: Output) -> int:
    """Run the benchmark harness (``python -m bench``) from the source checkout."""
    if out.json:
        raise UsageError("bench prints the harness's own report (and writes bench/RESULTS.md); "
                         "--json does not apply")
    root = repo_root()
    if not os.path.isfile(os.path.join(root, "bench", "__main__.py")):
        raise UsageError("the bench harness ships with the source checkout (bench/), not with "
                         f"the installed package; not found under {root}")
    argv = list(args.bench_args)
    if argv[:1] == ["--"]:
        argv = argv[1:]
    env = dict(os.environ)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    proc = subprocess.run([sys.executable, "-m", "bench", *argv], cwd=root, env=env,
                          check=False)
    return proc.returncode if proc.returncode >= 0 else 128 - proc.returncode

