"""The stage-and-consume rows (issue 15): fasts3's ``iter_get`` against ``get_many`` then
consume, run by bench/child.py for the SC workloads.

Both modes open ``S3(s3root=..., tmproot=dest_dir, config=TransferConfig.from_env())`` and hand
every object to the same :class:`Consumer`:

* ``iter_get``: ``with s3.iter_get(names, window=W) as it: for obj in it: consume(obj)``
  (completion order; W = the workload's window, or fasts3's default window when it has none);
* ``get_many``: ``objs = s3.get_many(names)``, then ``for obj in objs: consume(obj)``.

The consumer *sleeps* 1 ms per MiB of the object (a model of a GPU-bound training step or a
pipeline stage that waits on something else: it leaves the CPU to the download; sleeps are
batched so that timer slack does not inflate sub-millisecond ones), checks the object's
size and its file's size, and compares three 64 KiB windows (start, middle, end) of three
sampled objects with the source before moving on (``iter_get`` deletes a file once the
consumer asks for the next object).

Measured from the start of the timed window (the S3 context's construction): time to the
first object handed to the consumer (``get_many``: when it returns), the download time
(``get_many``'s call), the total (last object consumed), the time spent in the consumer,
and the peak disk use: bytes allocated (``st_blocks`` x 512) by every file under the S3
temp dir, sampled by a thread every 10 ms (more rarely if a scan takes longer, so the sampler
stays under ~20 % of a core; ``get_many`` adds one exact sample when it returns).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from fasts3 import S3, TransferConfig
from fasts3.streaming import default_window

MiB = 1 << 20
CONSUME_S_PER_MIB = 0.001
SAMPLE_EVERY_S = 0.01
CHECK = 64 * 1024  # bytes compared per window of a sampled object


def disk_bytes(root: str) -> int:
    """Bytes allocated by every file below ``root`` (0 for files that vanish meanwhile)."""
    total, dirs = 0, [root]
    while dirs:
        try:
            entries = list(os.scandir(dirs.pop()))
        except OSError:
            continue
        for e in entries:
            try:
                if e.is_dir(follow_symlinks=False):
                    dirs.append(e.path)
                else:
                    total += e.stat(follow_symlinks=False).st_blocks * 512
            except OSError:
                continue
    return total


class DiskSampler(threading.Thread):
    """Samples :func:`disk_bytes` of a directory until :meth:`stop`; keeps the peak."""

    def __init__(self, root: str) -> None:
        super().__init__(daemon=True, name="disk-sampler")
        self.root = root
        self.peak = self.samples = 0
        self._halt = threading.Event()

    def sample(self) -> None:
        self.peak = max(self.peak, disk_bytes(self.root))
        self.samples += 1

    def run(self) -> None:
        while not self._halt.is_set():
            t = time.perf_counter()
            self.sample()
            spent = time.perf_counter() - t
            self._halt.wait(max(SAMPLE_EVERY_S, 4 * spent))

    def stop(self) -> None:
        self._halt.set()
        self.join()
        self.sample()


class Consumer:
    """The work done per object: checks, then 1 ms of sleep per MiB (see the module doc)."""

    def __init__(self, cfg: dict) -> None:
        self.size = cfg["size"]
        self.src_dir = cfg["src_dir"]
        names = cfg["names"]
        self.sampled = {names[0], names[len(names) // 2], names[-1]}
        self.seen: set[str] = set()
        self.error: str | None = None
        self.spent = 0.0  # seconds inside take()
        self._owed = 0.0  # sleep not yet taken (paid once it reaches 1 ms)

    def take(self, obj) -> None:
        t0 = time.perf_counter()
        if obj.key in self.seen:
            self._fail(f"{obj.key} handed out twice")
        self.seen.add(obj.key)
        if obj.size != self.size or os.path.getsize(obj.path) != self.size:
            self._fail(f"{obj.key}: size {obj.size}, file {os.path.getsize(obj.path)}")
        elif obj.key in self.sampled and not self._same(obj.key, obj.path):
            self._fail(f"content of {obj.key} differs from the source")
        self._owed += obj.size / MiB * CONSUME_S_PER_MIB
        if self._owed >= 0.001:
            self._pay()
        self.spent += time.perf_counter() - t0

    def finish(self, names: list[str]) -> None:
        """Pay the sleep still owed; check every name was consumed."""
        t0 = time.perf_counter()
        self._pay()
        self.spent += time.perf_counter() - t0
        if len(self.seen) != len(names):
            self._fail(f"consumed {len(self.seen)} objects of {len(names)}")

    def _pay(self) -> None:
        if self._owed > 0:
            t = time.perf_counter()
            time.sleep(self._owed)
            self._owed -= time.perf_counter() - t

    def _same(self, key: str, path: str) -> bool:
        src = os.path.join(self.src_dir, key)
        with open(path, "rb") as a, open(src, "rb") as b:
            for off in {0, max(0, self.size // 2 - CHECK // 2), max(0, self.size - CHECK)}:
                if os.pread(a.fileno(), CHECK, off) != os.pread(b.fileno(), CHECK, off):
                    return False
        return True

    def _fail(self, msg: str) -> None:
        self.error = self.error or msg


@contextmanager
def run(cfg: dict, t0: float) -> Iterator[dict]:
    """One stage-and-consume run (``cfg["mode"]``: ``iter_get`` or ``get_many``), timed from
    ``t0`` (a ``time.perf_counter()`` value); yields its measurements while the S3 context is
    still open (closing it, untimed, removes what is left in the temp dir)."""
    config = TransferConfig.from_env()
    window = cfg.get("window") or default_window(config)
    names = cfg["names"]
    consumer = Consumer(cfg)
    out: dict = {"mode": cfg["mode"], "window": window,
                 "window_bytes": window * cfg["size"],
                 "consume_nominal_s": len(names) * cfg["size"] / MiB * CONSUME_S_PER_MIB}
    with S3(s3root=f"s3://{cfg['bucket']}/{cfg['src_prefix']}",
            endpoint_url=cfg["endpoint_url"], session_vars={
                "aws_access_key_id": cfg["access_key"],
                "aws_secret_access_key": cfg["secret_key"],
                "region_name": cfg["region"]},
            tmproot=cfg["dest_dir"], progress=False, config=config) as s3:  # fmt: skip
        sampler = DiskSampler(s3.tmpdir)
        sampler.start()
        try:
            if cfg["mode"] == "iter_get":
                with s3.iter_get(names, window=window) as it:
                    for obj in it:
                        if "first_s" not in out:
                            out["first_s"] = time.perf_counter() - t0
                        consumer.take(obj)
            elif cfg["mode"] == "get_many":
                objs = s3.get_many(names)
                out["download_s"] = out["first_s"] = time.perf_counter() - t0
                sampler.sample()  # every file is on disk now: the peak, exactly
                for obj in objs:
                    consumer.take(obj)
            else:
                raise ValueError(f"unknown stage mode {cfg['mode']!r}")
            consumer.finish(names)
            out["total_s"] = time.perf_counter() - t0
        finally:
            sampler.stop()
        out.update(consume_s=consumer.spent, peak_disk_bytes=sampler.peak,
                   disk_samples=sampler.samples, files=len(consumer.seen),
                   bytes=len(consumer.seen) * cfg["size"], verify_error=consumer.error)
        yield out
