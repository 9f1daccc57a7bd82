"""Downloads that start while the listing is still running: ``cp -r``/wildcard sources from
S3 to a directory, and ``sync`` from S3 to a directory.

Each listing page (``fasts3.streaming.listing_feed``) is turned into download ops as it
arrives, at most ``window`` of them ahead of what is finished, so the first files land before
the listing ends and memory is bounded by the window, not by the number of keys. Every
finished download is moved into place at once (an interrupt keeps completed files).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..engine.listing import ListRequest
from ..engine.plan import GetOp
from ..streaming import default_window, listing_feed
from .transfer import Job, Runner, Stats

ToJob = Callable[[str, str, "int | None", "str | None", "float | None", Stats], "Job | None"]
"""``to_job(listed_url, url, size, etag, mtime, stats)``: the job for one listed object, or
``None`` to skip it (after reporting it in ``stats`` if it failed)."""


def stream_downloads(runner: Runner, requests: list[ListRequest], to_job: ToJob) -> Stats:
    """Run the downloads of every object the listing ``requests`` find that ``to_job``
    accepts; return the counts. A listing failure is raised (typed) after the downloads in
    flight are finished and placed."""
    stats = Stats()
    jobs_of: dict[int, Job] = {}

    def make(listed: str, url: str, size: int | None, etag: str | None,
             mtime: float | None) -> Any:
        job = to_job(listed, url, size, etag, mtime, stats)
        if job is None:
            return None
        if runner.dry_run:
            runner.report_dry(stats, job)
            return None
        op = runner.plan(stats, job, etag)
        if op is not None:
            jobs_of[id(op)] = job
        return op

    engine = runner.engine
    prog = engine.new_progress(runner.kind, 0)
    try:
        with engine.stream(listing_feed(requests, make), runner.kind, progress=prog,
                           window=default_window(engine.config),
                           on_unclaimed=GetOp.discard) as ops:
            for op in ops:
                job = jobs_of.pop(id(op), None)
                if job is not None:
                    runner.settle(stats, job, op)
                    runner.out.flush()
    finally:
        prog.close()
    return stats
