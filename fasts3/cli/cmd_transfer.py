"""``fasts3 cp`` and ``fasts3 sync``."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable

from ..engine.engine import Engine
from ..engine.listing import directory_request, run_listings
from ..errors import S3Error
from ..sync import Entry, needs_transfer, plan_sync, scan_local
from ..urls import local_path_for_key, split_url
from .common import (
    Filters,
    Output,
    UsageError,
    check_put_flags,
    has_wildcard,
    is_s3,
    open_engine,
)
from .expand import Listing, check_matched, expand_local, expand_s3, plan_s3
from .stdio import cp_stdio, uses_stdio
from .streamed import stream_downloads
from .transfer import Job, Runner, Stats


def _join_key(prefix: str, rel: str) -> str:
    if not prefix:
        return rel
    return prefix + rel if prefix.endswith("/") else prefix + "/" + rel


def _kind(src_s3: bool, dst_s3: bool) -> str:
    if src_s3 and dst_s3:
        return "copy"
    if src_s3:
        return "download"
    if dst_s3:
        return "upload"
    raise UsageError("one side must be an s3:// URL (use cp/rsync for local copies)")


def cmd_cp(args: argparse.Namespace, out: Output) -> int:
    """Copy objects and files: S3 -> local, local -> S3, S3 -> S3 (server side)."""
    if len(args.paths) < 2:
        raise UsageError("cp needs a SOURCE and a DEST")
    if uses_stdio(args):
        return cp_stdio(args, out)
    if getattr(args, "dask_scheduler", None):
        from ..distributed.cli import cp_dask

        return cp_dask(args, out)
    *sources, dest = args.paths
    kinds = {is_s3(s) for s in sources}
    if len(kinds) > 1:
        raise UsageError("sources must be all s3:// URLs or all local paths")
    src_s3, dst_s3 = kinds.pop(), is_s3(dest)
    kind = _kind(src_s3, dst_s3)
    check_put_flags(args, kind)
    filters = Filters(args.filters)
    wild = not args.raw and any(has_wildcard(split_url(s)[1] if src_s3 else s)
                                for s in sources)
    many = len(sources) > 1 or args.recursive or wild
    if args.version_id and (many or not src_s3):
        raise UsageError("--version-id needs exactly one s3:// object as the source")
    tmproot = None
    if dst_s3:
        dbucket, dkey = split_url(dest)
        as_dir = many or not dkey or dest.endswith("/")
    else:
        as_dir = many or dest.endswith(("/", os.sep)) or os.path.isdir(dest)
        if as_dir and os.path.exists(dest) and not os.path.isdir(dest):
            raise UsageError(f"{dest} is not a directory (several objects are copied)")
        tmproot = dest if as_dir else os.path.dirname(os.path.abspath(dest))

    def target(rel: str) -> str:
        if dst_s3:
            return f"s3://{dbucket}/" + (_join_key(dkey, rel) if as_dir else dkey)
        return local_path_for_key(dest, rel) if as_dir else dest

    with open_engine(args, tmproot, uploads=dst_s3) as engine:
        runner = Runner(engine, out, kind, dry_run=args.dry_run, overwrite=not args.no_overwrite)
        if kind == "download" and not args.version_id:
            direct, listings = plan_s3(sources, args.recursive, args.raw)
            if not direct:  # every source is listed: download while listing
                stats = _streamed_cp(runner, listings, args.recursive, filters, target)
                runner.summary(stats)
                check_matched(listings)
                return stats.exit_code()
        if src_s3:
            found = expand_s3(engine, sources, args.recursive, filters, args.raw)
        else:
            found = expand_local(sources, args.recursive, filters)
        stats, jobs = Stats(), []
        for src in found:
            try:
                jobs.append(Job(src.location, target(src.rel), src.size, args.version_id))
            except S3Error as e:  # a key that cannot be a local file name
                runner.fail(stats, Job(src.location, src.rel), e)
        stats.add(runner.run(jobs))
        runner.summary(stats)
    return stats.exit_code()


def _streamed_cp(runner: Runner, listings: list[Listing], recursive: bool, filters: Filters,
                 target: Callable[[str], str]) -> Stats:
    by_url = {lst.request.url: lst for lst in listings}

    def to_job(listed: str, url: str, size: int | None, etag: str | None,
               mtime: float | None, stats: Stats) -> Job | None:
        lst = by_url[listed]
        rel = lst.rel(url, split_url(url)[1], recursive)
        if rel is None:
            return None
        lst.matched += 1
        if not filters.included(rel):
            return None
        try:
            return Job(url, target(rel), size)
        except S3Error as e:  # a key that cannot be a local file name
            runner.fail(stats, Job(url, rel), e)
            return None

    return stream_downloads(runner, [lst.request for lst in listings], to_job)


# -- sync ----------------------------------------------------------------------------------
def _s3_tree(engine: Engine, url: str, filters: Filters) -> dict[str, Entry]:
    req = directory_request(url, recursive=True)
    req.probe = False  # sync compares what is under the prefix
    run_listings(engine, [req])
    tree = {}
    for e in req.objects:
        rel = e.key[len(req.prefix):]
        if rel and filters.included(rel):
            tree[rel] = Entry(e.size or 0, e.mtime, e.etag, url=e.url)
    return tree


def _local_tree(path: str, filters: Filters, skip: tuple[str, ...]) -> dict[str, Entry]:
    if not os.path.exists(path):
        return {}
    if not os.path.isdir(path):
        raise UsageError(f"{path} is not a directory")
    return {rel: e for rel, e in scan_local(path, skip).items() if filters.included(rel)}


def cmd_sync(args: argparse.Namespace, out: Output) -> int:
    """Make DEST look like SRC: transfer what is new or changed, optionally delete extras."""
    src, dest = args.src, args.dest
    src_s3, dst_s3 = is_s3(src), is_s3(dest)
    kind = _kind(src_s3, dst_s3)
    check_put_flags(args, kind)
    if not src_s3 and not os.path.isdir(src):
        raise UsageError(f"{src} is not a directory")
    filters = Filters(args.filters)
    compare = "checksum" if args.checksum else "size" if args.size_only else "mtime"
    with open_engine(args, None if dst_s3 else dest, uploads=dst_s3) as engine:
        skip = (engine.tmpdir,)
        if kind == "download":
            return _streamed_sync(args, out, engine, _local_tree(dest, filters, skip),
                                  filters, compare)
        src_tree = _s3_tree(engine, src, filters) if src_s3 else \
            _local_tree(src, filters, skip)
        dst_tree = _s3_tree(engine, dest, filters) if dst_s3 else \
            _local_tree(dest, filters, skip)
        plan = plan_sync(src_tree, dst_tree, delete=args.delete, compare=compare)
        if plan.delete and not src_tree:
            _refuse_empty_source(src, len(plan.delete))
        if dst_s3:
            dbucket, dkey = split_url(dest)
            prefix = dkey.rstrip("/") + "/" if dkey else ""

        def target(rel: str) -> str:
            if dst_s3:
                return f"s3://{dbucket}/{prefix}{rel}"
            return local_path_for_key(dest, rel)

        runner = Runner(engine, out, kind, dry_run=args.dry_run)
        stats, jobs = Stats(), []
        for rel in plan.transfer:
            e = src_tree[rel]
            location = e.url or e.path or ""
            try:
                jobs.append(Job(location, target(rel), e.size))
            except S3Error as err:
                runner.fail(stats, Job(location, rel), err)
        stats.add(runner.run(jobs))
        stats.unchanged += plan.unchanged
        runner.summary(stats)
        if plan.delete:
            deleter = Runner(engine, out, "delete", dry_run=args.dry_run)
            dstats = _delete(deleter, [dst_tree[r] for r in plan.delete], dst_s3, out,
                             args.dry_run)
            deleter.summary(dstats)
            stats.add(dstats)
    return stats.exit_code()


def _refuse_empty_source(src: str, doomed: int) -> None:
    raise S3Error(f"The source is empty (or does not exist); refusing to delete all {doomed} "
                  "destination entries (use rm for that)", src, "EmptySource")


def _streamed_sync(args: argparse.Namespace, out: Output, engine: Engine,
                   dst_tree: dict[str, Entry], filters: Filters, compare: str) -> int:
    """S3 -> local sync: each listed object is compared with the local file as its listing
    page arrives, and downloaded at once if it changed; extras are deleted (``--delete``)
    only after the whole listing succeeded."""
    src, dest = args.src, args.dest
    req = directory_request(src, recursive=True)
    req.probe = False  # sync compares what is under the prefix
    seen: set[str] = set()
    runner = Runner(engine, out, "download", dry_run=args.dry_run)

    def to_job(listed: str, url: str, size: int | None, etag: str | None,
               mtime: float | None, stats: Stats) -> Job | None:
        rel = split_url(url)[1][len(req.prefix):]
        if not rel or not filters.included(rel):
            return None
        seen.add(rel)
        if not needs_transfer(Entry(size or 0, mtime, etag, url=url), dst_tree.get(rel),
                              compare):
            stats.unchanged += 1
            return None
        try:
            return Job(url, local_path_for_key(dest, rel), size)
        except S3Error as err:  # a key that cannot be a local file name
            runner.fail(stats, Job(url, rel), err)
            return None

    stats = stream_downloads(runner, [req], to_job)
    runner.summary(stats)
    if args.delete:
        doomed = sorted(rel for rel in dst_tree if rel not in seen)
        if doomed and not seen:
            _refuse_empty_source(src, len(doomed))
        if doomed:
            deleter = Runner(engine, out, "delete", dry_run=args.dry_run)
            dstats = _delete(deleter, [dst_tree[r] for r in doomed], False, out, args.dry_run)
            deleter.summary(dstats)
            stats.add(dstats)
    return stats.exit_code()


def _delete(runner: Runner, entries: list[Entry], remote: bool, out: Output,
            dry_run: bool) -> Stats:
    if remote:
        return runner.run([Job(e.url or "") for e in entries])
    stats = Stats()
    for e in entries:
        path = e.path or ""
        job = Job(path)
        if dry_run:
            stats.ok += 1
            out.result({"op": "delete", "source": path, "dry_run": True},
                       f"(dry run) delete: {path}")
            continue
        try:
            os.unlink(path)
            stats.ok += 1
            out.result({"op": "delete", "source": path, "ok": True}, f"delete: {path}")
        except OSError as err:
            runner.fail(stats, job, S3Error(err.strerror or str(err), path, "LocalIOError"))
    return stats
