"""Progress for a batch: a tqdm bar (on a TTY), plain log lines (``progress="log"``), or
nothing. Fed by the byte counts workers report and by finished files.

``progress=None`` (the default) means: a bar when stderr is a terminal, else nothing.
``True`` forces the bar, ``False`` turns everything off, ``"log"`` logs one line at most
every ``LOG_INTERVAL`` seconds through the ``fasts3.progress`` logger (INFO).
"""

from __future__ import annotations

import logging
import sys
import time

log = logging.getLogger("fasts3.progress")
LOG_INTERVAL = 5.0
BAR_DELAY = 0.5  # seconds before a bar appears: quick calls stay silent
MiB = float(1 << 20)


def wants_bar(progress: bool | str | None) -> bool:
    if progress is None:
        return sys.stderr.isatty()
    return progress is True


class Progress:
    """Counts bytes and files of one batch; ``total_bytes`` may grow as sizes are learned."""

    def __init__(self, mode: bool | str | None, desc: str, files: int, total_bytes: int = 0):
        self.desc = desc
        self.files_total = files
        self.files_done = 0
        self.bytes_done = 0
        self.total_bytes = total_bytes
        self._bar = None
        self._log = mode == "log"
        self._start = time.monotonic()
        self._last_log = self._start
        if wants_bar(mode):
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total_bytes or None, unit="B", unit_scale=True,
                             unit_divisor=1024, desc=desc, dynamic_ncols=True, leave=True,
                             mininterval=0.2, delay=BAR_DELAY)

    @property
    def active(self) -> bool:
        return self._bar is not None or self._log

    def add_total(self, nbytes: int) -> None:
        """More bytes are known to be coming (e.g. an object's size was just learned)."""
        self.total_bytes += nbytes
        if self._bar is not None:
            self._bar.total = self.total_bytes  # shown at the next (rate-limited) update

    def advance(self, nbytes: int) -> None:
        self.bytes_done += nbytes
        if self._bar is not None:
            self._bar.update(nbytes)
        elif self._log:
            self._maybe_log()

    def file_done(self, *_: object) -> None:
        self.files_done += 1
        if self._bar is not None:
            self._bar.set_postfix_str(f"{self.files_done}/{self.files_total} files",
                                      refresh=False)

    def _maybe_log(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last_log >= LOG_INTERVAL:
            self._last_log = now
            rate = self.bytes_done / MiB / max(now - self._start, 1e-6)
            total = f"/{self.total_bytes / MiB:.1f}" if self.total_bytes else ""
            log.info("%s: %d/%d files, %.1f%s MiB, %.1f MiB/s", self.desc, self.files_done,
                     self.files_total, self.bytes_done / MiB, total, rate)

    def close(self) -> None:
        if self._bar is not None:
            if self.files_done == self.files_total and (self._bar.total or 0) > self._bar.n:
                self._bar.total = self._bar.n  # sizes were estimates; end the bar at 100 %
            self._bar.set_postfix_str(f"{self.files_done}/{self.files_total} files")
            self._bar.close()
            self._bar = None
        elif self._log:
            self._maybe_log(force=True)
