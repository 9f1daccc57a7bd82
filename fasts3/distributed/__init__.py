"""Stage a dataset across a Dask cluster (extra ``dask``: ``pip install 'fasts3[dask]'``).

:func:`stage` lists the source once on the client, plans shards balanced by bytes, runs each
shard as a Dask task that drives the fasts3 engine on its worker, shows one progress bar for
all workers, and returns a :class:`Manifest` with one entry per object::

    from fasts3.distributed import stage
    manifest = stage("s3://bucket/dataset", "/scratch/dataset", "tcp://scheduler:8786")

* ``dest`` a local directory: every worker downloads its shards to that (absolute) path on
  its own machine, keys mapped with :func:`fasts3.urls.local_path_for_key`. Files appear
  only when complete (temp name in ``dest/.fasts3-staging/<job>`` + rename), so a re-run
  shard (Dask ``retries=``, or a lost worker) leaves complete files only.
* ``dest`` an ``s3://`` prefix: server-side copies (``fasts3.manage``: CopyObject, or
  UploadPartCopy for large objects), spread over the workers the same way.

Progress: each task publishes cumulative ``[shard, attempt, bytes, files]`` events on a
per-job Dask event topic; the client keeps the largest count per shard (so a re-run shard is
not counted twice) and feeds a :class:`fasts3.progress.Progress` bar.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from ..config import TransferConfig
from ..progress import Progress
from ..urls import SCHEME, make_root
from .manifest import FAILED, MISSING, Manifest, ManifestEntry, StagingError
from .plan import (
    Shard,
    SourceObject,
    check_destinations,
    default_shard_count,
    destination,
    list_source,
    plan_shards,
)
from .shard import ShardFailed, ShardSpec, finish_job, run_shard

log = logging.getLogger("fasts3.distributed")
POLL_SECONDS = 0.1

__all__ = [
    "stage", "cp_with_dask", "Manifest", "ManifestEntry", "StagingError", "ShardFailed",
    "SourceObject", "Shard", "list_source", "plan_shards",
]


def stage(
    source: str | Iterable[str],
    dest: str,
    client: Any = None,
    *,
    endpoint_url: str | None = None,
    role: str | None = None,
    session_vars: dict[str, Any] | None = None,
    client_params: dict[str, Any] | None = None,
    config: TransferConfig | None = None,
    shards: int | None = None,
    retries: int = 2,
    checksum: str | None = "etag",
    base: str | None = None,
    select: Callable[[SourceObject], bool] | None = None,
    progress: bool | str | None = None,
    strict: bool = True,
    **s3_options: Any,
) -> Manifest:
    """Copy every object of ``source`` to ``dest`` using the workers of a Dask cluster.

    Args:
        source: ``"s3://bucket[/prefix]"`` (everything under it, keys relative to it) or an
            iterable of object URLs (keys relative to ``base`` if given, else to their
            bucket; missing objects get status ``"missing"``).
        dest: a local directory (the same absolute path on every worker; a relative path is
            made absolute on the client) or an ``s3://`` prefix (server-side copy).
        client: a ``distributed.Client``, a scheduler address (a client is opened and closed
            here), or ``None`` for the current default client.
        endpoint_url, role, session_vars, client_params: connection keywords of
            :class:`fasts3.S3`, used on the client (listing) and in every task. Credentials
            given in ``session_vars`` travel to the workers; otherwise each worker uses its
            own credential chain.
        s3_options: more :class:`fasts3.S3` keywords (``region``, ``profile``,
            ``anonymous``, ``requester_pays``, ``addressing_style``, ``encryption``,
            ``kms_key_id``, ``storage_class``), used the same way on every worker.
        config: the engine's :class:`TransferConfig` inside each task (``None``: each
            worker's ``FASTS3_*`` environment and defaults, its usable cores divided among
            its task threads unless ``FASTS3_PROCESSES`` is set). With several Dask worker
            processes per machine, lower ``processes`` so they do not oversubscribe it.
        shards: number of shards (default: 4 per worker thread, at most 256 MiB each, at
            most one per object).
        retries: how often Dask re-runs a shard that raised (a lost worker's shards are
            rescheduled by Dask regardless, up to its ``allowed-failures``).
        select: keep only the listed objects for which ``select(obj)`` is true (e.g. a
            filter on ``obj.rel``).
        checksum: ``"etag"`` (the ETag of what was read), ``"md5"`` (hex MD5 of the written
            file; local destinations only) or ``None``.
        progress: as for :class:`fasts3.S3` (``None``: a bar on a TTY; ``"log"``; bool).
        strict: raise :class:`StagingError` (carrying the manifest) if any object was not
            staged; with ``False`` inspect ``manifest.failed`` instead.

    Returns:
        A :class:`Manifest`: one entry per object, in listing (or input) order.

    Raises:
        S3URLError: a bad URL, or a key that cannot be mapped to ``dest`` (nothing is sent).
        S3NotFound: the bucket does not exist.
        StagingError: with ``strict``, after every shard finished, if some object was not
            staged.
    """
    if checksum not in (None, "etag", "md5"):
        raise ValueError("checksum must be 'etag', 'md5' or None")
    if dest.startswith(SCHEME):
        make_root(dest)
        if checksum == "md5":
            raise ValueError("checksum='md5' needs a local destination")
    else:
        dest = os.path.abspath(os.path.expanduser(dest))
    connect = dict(endpoint_url=endpoint_url, role=role, session_vars=session_vars,
                   client_params=client_params, **s3_options)
    if not isinstance(source, str):
        source = list(source)
    objects, missing = list_source(source, connect, config, base)
    if select is not None:
        objects = [o for o in objects if select(o)]
    check_destinations(dest, objects)
    order = {url: i for i, url in enumerate(source if isinstance(source, list)
                                            else [o.url for o in objects])}
    dask_client, own = _client(client)
    try:
        entries = _run(dask_client, objects, dest, connect, config, shards, retries, checksum,
                       progress)
    finally:
        if own:
            dask_client.close()
    for obj in missing:
        entries.append(ManifestEntry(obj.url, _dest_or_blank(dest, obj.rel), 0,
                                     status=MISSING, error="object does not exist"))
    entries.sort(key=lambda e: order.get(e.url, len(order)))
    manifest = Manifest(entries)
    log.info("staged %d of %d objects (%d bytes) to %s", len(manifest.ok), len(manifest),
             manifest.total_bytes, dest)
    if strict:
        manifest.raise_for_status()
    return manifest


def cp_with_dask(src: str | Iterable[str], dest: str, scheduler: Any,
                 **opts: Any) -> Manifest:
    """``fasts3 cp SRC DEST --dask-scheduler ADDRESS``: :func:`stage` with ``scheduler`` (an
    address or a ``distributed.Client``); ``opts`` are :func:`stage`'s keywords."""
    return stage(src, dest, scheduler, **opts)


def _client(client: Any) -> tuple[Any, bool]:
    try:
        import distributed
    except ImportError:
        raise ImportError("fasts3.distributed needs Dask: pip install 'fasts3[dask]'") from None
    if client is None:
        return distributed.get_client(), False
    if isinstance(client, str):
        return distributed.Client(client), True
    return client, False


def _dest_or_blank(dest: str, rel: str) -> str:
    try:
        return destination(dest, rel)
    except Exception:  # noqa: BLE001 - a missing object's destination is informational
        return ""


def _run(client: Any, objects: list[SourceObject], dest: str, connect: dict[str, Any],
         config: TransferConfig | None, n_shards: int | None, retries: int,
         checksum: str | None, progress: bool | str | None) -> list[ManifestEntry]:
    if not objects:
        return []
    slots = sum(client.nthreads().values())
    plan = plan_shards(objects, n_shards or default_shard_count(objects, slots))
    job = uuid.uuid4().hex[:12]
    topic = f"fasts3-stage-{job}"
    specs = [ShardSpec(job, s.index, s.objects, dest, connect, config, checksum, topic)
             for s in plan]
    log.info("staging %d objects (%d bytes) in %d shards on %d worker threads (job %s)",
             len(objects), sum(s.nbytes for s in plan), len(plan), slots, job)
    tracker = _Tracker(progress, len(objects), sum(s.nbytes for s in plan))
    client.subscribe_topic(topic, tracker.on_event)
    futures = client.map(run_shard, specs, key=[f"fasts3-shard-{job}-{s.index}" for s in plan],
                         retries=retries, pure=False)
    pending = dict(zip(futures, plan, strict=True))
    results: dict[int, list[ManifestEntry]] = {}
    try:
        while pending:
            done = [f for f in pending if f.done()]
            for f in done:
                shard = pending.pop(f)
                results[shard.index] = _collect(f, shard, dest)
                tracker.shard_done(shard.index, results[shard.index])
            tracker.refresh()
            if pending and not done:
                time.sleep(POLL_SECONDS)
    except BaseException:
        client.cancel(list(pending))
        raise
    finally:
        tracker.close()
        _unsubscribe(client, topic)
        _finish(client, dest, job)
    return [e for s in plan for e in results[s.index]]


def _collect(future: Any, shard: Shard, dest: str) -> list[ManifestEntry]:
    try:
        return future.result()
    except Exception as e:  # noqa: BLE001 - a shard's failure becomes its entries' status
        error = f"{type(e).__name__}: {e}"
        log.warning("shard %d failed after its retries: %s", shard.index, error)
        return [ManifestEntry(o.url, _dest_or_blank(dest, o.rel), o.size, status=FAILED,
                              shard=shard.index, error=error) for o in shard.objects]
    finally:
        future.release()


def _unsubscribe(client: Any, topic: str) -> None:
    try:
        client.unsubscribe_topic(topic)
    except Exception as e:  # noqa: BLE001 - best effort
        log.debug("unsubscribe %s: %r", topic, e)


def _finish(client: Any, dest: str, job: str) -> None:
    """On every live worker: close the job's S3 contexts and remove its staging directory
    (a lost worker may have left temp files there; files at destination paths are always
    complete)."""
    try:
        client.run(finish_job, dest, job, on_error="ignore")
    except Exception as e:  # noqa: BLE001 - cleanup is best effort
        log.warning("could not finish job %s on every worker (staging %s): %r", job, dest, e)


class _Tracker:
    """Aggregates per-shard progress events (from the Dask event loop thread) and feeds one
    progress bar (from the caller's thread)."""

    def __init__(self, mode: bool | str | None, files: int, total_bytes: int) -> None:
        self._lock = threading.Lock()
        self._live: dict[int, dict[str, tuple[int, int]]] = {}
        self._final: dict[int, tuple[int, int]] = {}
        self._shown = (0, 0)
        self._progress = Progress(mode, "stage", files, total_bytes)

    def on_event(self, event: Any) -> None:
        try:
            shard, attempt, nbytes, files = event[1]
        except (TypeError, ValueError, IndexError):
            return
        with self._lock:
            self._live.setdefault(int(shard), {})[str(attempt)] = (int(nbytes), int(files))

    def shard_done(self, shard: int, entries: list[ManifestEntry]) -> None:
        with self._lock:
            self._final[shard] = (sum(e.size for e in entries if e.status != FAILED),
                                  len(entries))

    def totals(self) -> tuple[int, int]:
        """``(bytes, files)`` staged so far across all workers."""
        with self._lock:
            nbytes = files = 0
            for shard, attempts in self._live.items():
                if shard not in self._final:
                    nbytes += max(b for b, _ in attempts.values())
                    files += max(f for _, f in attempts.values())
            for b, f in self._final.values():
                nbytes += b
                files += f
        return nbytes, files

    def refresh(self) -> None:
        if not self._progress.active:
            return
        nbytes, files = self.totals()
        shown_bytes, shown_files = self._shown
        if nbytes > shown_bytes:
            self._progress.advance(nbytes - shown_bytes)
        for _ in range(files - shown_files):
            self._progress.file_done()
        self._shown = (max(nbytes, shown_bytes), max(files, shown_files))

    def close(self) -> None:
        self.refresh()
        self._progress.close()
