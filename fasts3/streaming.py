"""Consume objects as they land: ``S3.iter_get`` and ``S3.iter_recursive``, and the streaming
listing behind them and ``get_recursive``.

An :class:`ObjectStream` yields :class:`~fasts3.S3Object`\\ s as their downloads complete
(completion order, or input order with ``ordered=True``, holding back only what ordering
needs). At most ``window`` objects are downloaded ahead of the consumer: started and not yet
handed out (the window counts objects, not bytes). The file of the object a thread received
is deleted when that same thread asks for the next one, unless ``keep=True`` -- so disk use
stays within ``window`` + one object per consumer thread -- and every file not handed out is
deleted when the stream closes.

A failed object raises its typed error from ``next()`` at its position, after its retries;
the stream stays usable (a later ``next()`` continues with the rest), but a ``for`` loop that
does not catch the error ends there and the stream is closed: ``break``, ``close()``, an
exception or garbage collection cancel what is queued, let what is in flight finish, and leave
no partial file. One stream may be shared by several consumer threads: ``next()`` is
thread-safe. Worker processes (a data loader's, forked) each open their own client and stream
their shard of the keys; a client inherited through ``fork()`` cannot be used in the child.

:func:`listing_feed` lists each prefix page by page (a page of up to 1000 keys is asked for
while the previous one is handed out), so the first objects download before the listing ends
and memory is bounded by two pages plus the window, whatever the number of keys. Sizes and
ETags from the listing let large objects be fetched as ranged parts at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from .config import TransferConfig
from .downloads import get_op, result_of
from .engine.listing import ListRequest, ProbeOp, directory_request
from .engine.plan import GetOp, ListOp
from .engine.stream import Background, Fail, FeedItem
from .errors import S3Error
from .forksafe import Owner
from .objects import S3Object
from .urls import split_url

if TYPE_CHECKING:
    from .engine.engine import Engine
    from .engine.stream import OpStream

ListedMaker = Callable[[str, str, "int | None", "str | None", "float | None"], Any]
"""``make(listed_url, url, size, etag, mtime)`` -> the op downloading one object found by
listing ``listed_url`` (``mtime`` in epoch seconds), or ``None`` to skip it."""


class FailedOp:
    """An item that failed before any request (e.g. a malformed key): it is handed back at
    its position in the stream with its error."""

    missing = False

    def __init__(self, url: str, error: S3Error) -> None:
        self.url = url
        self.error: S3Error | None = error
        self.done = True

    def start(self) -> list:
        return []

    def on_result(self, task: Any, value: Any, error: Any) -> list:
        return []

    def cancel(self) -> list:
        return []


def key_feed(items: Iterable[Any], make: Callable[[Any], Any]) -> Iterator[FeedItem]:
    """One download op per item; an item ``make`` refuses becomes a :class:`FailedOp`."""
    for item in items:
        try:
            yield make(item)
        except S3Error as e:
            yield FailedOp(str(getattr(item, "key", item)), e)


def listing_feed(requests: Iterable[ListRequest], make: ListedMaker) -> Iterator[FeedItem]:
    """The objects each listing request finds (``engine.listing``: a prefix, one level with
    a delimiter; with ``probe`` the object at the request's URL itself, which comes first),
    in listing order, as the ops ``make(listed_url, url, size, etag, mtime)`` returns
    (``None``: skip that object). Directory markers are skipped. Use
    ``engine.listing.directory_request(url, recursive=True)`` for directory semantics
    (``log`` covers ``log/x``, never ``log_other/x``)."""
    for req in requests:
        url = req.url
        bucket, key = split_url(url)
        probe = ProbeOp(url, bucket, key, return_missing=True) if req.probe else None
        if probe is not None:
            yield Background(probe)
        page = ListOp(url, bucket, req.prefix, req.delimiter, one_page=True)
        yield Background(page)
        while True:
            while not page.done:
                yield None
            if page.error is not None:
                return  # the stream raises the failed page's error
            nxt = None
            if page.next_token:
                nxt = ListOp(url, bucket, req.prefix, req.delimiter, page.next_token,
                             one_page=True)
                yield Background(nxt)  # the next page is fetched while this one is handed out
            if probe is not None:
                while not probe.done:
                    yield None
                if probe.probe_error is not None:
                    yield Fail(probe.probe_error)
                    return
                found = probe.found()
                if found is not None:
                    op = make(url, url, found.size, found.etag, found.mtime)
                    if op is not None:
                        yield op
                probe = None
            objects, page.objects = page.objects, []
            for k, size, mtime, etag in objects:
                if k.endswith("/"):  # directory markers are not objects
                    continue
                op = make(url, f"s3://{bucket}/{k}", size, etag or None, mtime)
                if op is not None:
                    yield op
            if nxt is None:
                break
            page = nxt


def default_window(config: TransferConfig, recursive: bool = False) -> int:
    """Objects downloaded ahead of the consumer by default: twice the requests the pool
    keeps in flight (at least 16), so the workers stay busy while the consumer works;
    ``get_recursive`` (which keeps every file anyway) looks four times as far ahead."""
    in_flight = config.processes * config.requests_per_process
    return max(64, 4 * in_flight) if recursive else max(16, 2 * in_flight)


def recursive_stream(engine: Engine, urls: list[str], root: str | None, window: int,
                     ordered: bool, return_info: bool,
                     fail_fast: bool = False) -> tuple[OpStream, Callable[[Any], S3Object]]:
    """The stream of the downloads of every object under ``urls`` (see
    :func:`listing_feed`) and the function that makes a finished op's
    :class:`~fasts3.S3Object`: as in Metaflow, ``key`` is relative to the listed URL (its
    ``prefix``), or with ``return_info`` to the root. Listed URLs are fetched as they are:
    re-resolving them as keys relative to the root would drop the leading "/" of a key such
    as "root//x" and fetch another object."""
    listed_of: dict[int, str] = {}

    def make(listed: str, url: str, size: int | None, etag: str | None,
             mtime: float | None) -> GetOp:
        op = get_op(engine, url, size=size, etag=etag)
        listed_of[id(op)] = listed
        return op

    def result(op: GetOp) -> S3Object:
        listed = listed_of.pop(id(op), None)
        return result_of(op, root if return_info or listed is None else listed, root,
                         return_info)

    requests = [directory_request(url, recursive=True) for url in urls]
    stream = engine.stream(listing_feed(requests, make), "get", window=window, ordered=ordered,
                           fail_fast=fail_fast, on_unclaimed=GetOp.discard)
    return stream, result


class ObjectStream(Iterator[S3Object]):
    """The iterator returned by ``S3.iter_get``/``S3.iter_recursive`` (see the module doc).
    Use it in a ``for`` loop or as a context manager."""

    def __init__(self, ops: Any, result: Callable[[Any], S3Object], keep: bool) -> None:
        self._ops = ops  # an engine.stream.OpStream
        self._result = result
        self._keep = keep
        self._lock = threading.Lock()
        self._held: dict[int, Any] = {}  # thread id -> the op last handed to that thread
        self._owner = Owner()  # in a forked child the files are the parent's

    def __iter__(self) -> ObjectStream:
        return self

    def __next__(self) -> S3Object:
        self._owner.check()
        tid = threading.get_ident()
        with self._lock:
            previous = self._held.pop(tid, None)
        if previous is not None and not self._keep:
            _discard(previous)
        op = next(self._ops)
        if op.error is not None:
            raise op.error
        with self._lock:
            self._held[tid] = op
        return self._result(op)

    def close(self) -> None:
        """Stop: queued downloads are cancelled, those in flight finish; files not handed
        out are deleted, and (unless ``keep``) so are the files last handed out. In a
        process forked from the one that opened it, nothing is stopped or deleted."""
        if not self._owner.here:
            return
        self._ops.close()
        with self._lock:
            held, self._held = list(self._held.values()), {}
        if not self._keep:
            for op in held:
                _discard(op)

    def __enter__(self) -> ObjectStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - never raise from a finalizer
            pass


def _discard(op: Any) -> None:
    if isinstance(op, GetOp):
        op.discard()
