"""Runs batches of ops for one :class:`~fasts3.S3` context: resolves the connection and starts
the worker pool on first use, refreshes credentials before each batch, shows progress, and turns
failed ops into the one exception the caller sees."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from .config import TransferConfig, attempts_now
from .engine.pool import Pool
from .errors import S3Error, S3RetriesExhausted
from .progress import Progress

log = logging.getLogger("fasts3")


class Batches:
    """The engine behind one S3 context (lazy: nothing starts until the first batch)."""

    def __init__(self, config: TransferConfig, progress: bool | str | None,
                 connect_args: dict[str, Any]) -> None:
        self.config = config
        self.progress = progress
        self._connect_args = connect_args
        self._connection = None
        self._pool: Pool | None = None
        self._credentials = None
        self._retry: tuple | None = None
        self._closed = False

    @property
    def connection(self):
        """The resolved :class:`~fasts3.session.Connection` (created on first use)."""
        if self._connection is None:
            from .session import Connection

            self._connection = Connection(**self._connect_args)
        return self._connection

    def pool(self) -> Pool:
        if self._closed:
            raise S3Error("This S3 client is closed", code="Closed")
        conn = self.connection
        creds = conn.credentials()
        cfg = self.config
        retry = (attempts_now(cfg), cfg.backoff_base, cfg.backoff_max)
        if self._pool is not None and self._retry != retry:
            self._pool.close()  # S3_TRANSIENT_RETRY_COUNT was patched: new workers
            self._pool = None
        if self._pool is None:
            init = {
                "endpoint": conn.endpoint,
                "credentials": creds,
                "connect_timeout": cfg.connect_timeout,
                "read_timeout": cfg.read_timeout,
                "retry": retry,
                "verify_checksums": cfg.verify_checksums,
                "upload_checksums": cfg.upload_checksums,
                "inject": (cfg.inject_failure_rate, cfg.inject_seed),
            }
            self._pool = Pool(init, cfg.processes, cfg.requests_per_process)
            self._retry = retry
            self._pool.credentials_source = conn.credentials
        elif creds != self._credentials:
            self._pool.set_credentials(creds)
        self._credentials = creds
        return self._pool

    def run(self, ops: Sequence[Any], desc: str, total_bytes: int = 0) -> None:
        """Run ``ops``; raise a failure as its typed error: the first in input order among
        the ops that failed before the batch was cancelled (ops cancelled because of it are
        not reported, even if they would have failed too).

        Transient failures that exhausted their retries are raised together as one
        :class:`S3RetriesExhausted` naming every URL that gave up.
        """
        if not ops:
            return
        pool = self.pool()
        prog = Progress(self.progress, desc, len(ops), total_bytes)
        try:
            pool.run(ops, prog.advance if prog.active else None,
                     prog.file_done if prog.active else None,
                     on_total=prog.add_total if prog.active and not total_bytes else None)
        finally:
            prog.close()
        raise_first(ops)

    def close(self) -> None:
        self._closed = True
        if self._pool is not None:
            self._pool.close()
            self._pool = None


def raise_first(ops: Sequence[Any]) -> None:
    errors = [op.error for op in ops if op.error is not None and op.error.code != "Cancelled"]
    if not errors:
        if any(op.error is not None for op in ops):
            raise next(op.error for op in ops if op.error is not None)
        return
    exhausted = [e for e in errors if isinstance(e, S3RetriesExhausted)]
    if exhausted and len(exhausted) == len(errors):
        first = exhausted[0]
        urls = [e.url for e in exhausted if e.url]
        more = f" (and {len(urls) - 1} more)" if len(urls) > 1 else ""
        raise S3RetriesExhausted(first.message + more, first.url, first.code, first.status,
                                 urls=urls)
    raise errors[0]
