"""TransferConfig: how many processes, how many requests in flight, part sizes, retries.

Defaults come from the machine (psutil: usable cores, available memory). Every field can be
overridden by a keyword argument or by an environment variable ``FASTS3_<FIELD>`` (upper
case), e.g. ``FASTS3_PROCESSES=4``, ``FASTS3_PART_SIZE=16MiB``. Keyword arguments win over the
environment, which wins over the machine-derived defaults.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
from dataclasses import dataclass, field

MiB = 1 << 20
GiB = 1 << 30
MAX_PARTS = 10_000
MIN_PART_SIZE = 5 * MiB
MAX_PART_SIZE = 5 * GiB
DEFAULT_IN_FLIGHT = 256
REQUEST_MEMORY = 256 << 10

_SIZE_FIELDS = ("part_size", "multipart_threshold", "inline_put_limit")
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*$", re.I)
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": MiB, "g": GiB, "t": 1 << 40}


def parse_size(text: str | int) -> int:
    """Parse ``"8MiB"``, ``"8M"``, ``"8388608"`` (binary units) into bytes."""
    if isinstance(text, int):
        return text
    m = _SIZE.match(str(text))
    if not m:
        raise ValueError(f"Not a size: {text!r}")
    unit = (m.group(2) or "").lower()[:1]
    return int(float(m.group(1)) * _UNITS[unit])


def usable_cores() -> int:
    """Cores this process may run on (CPU affinity aware), at least 1."""
    if hasattr(os, "sched_getaffinity"):  # Linux: no need to import psutil (~10 ms)
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except OSError:
            pass
    try:
        import psutil

        aff = psutil.Process().cpu_affinity()
        if aff:
            return len(aff)
        return psutil.cpu_count() or 1
    except (ImportError, AttributeError, OSError):
        return os.cpu_count() or 1


def available_memory() -> int:
    """Bytes of memory available to new work (``MemAvailable`` of ``/proc/meminfo`` on
    Linux, else psutil), or 4 GiB if unknown."""
    try:
        with open("/proc/meminfo", "rb") as f:  # no psutil import (~10 ms) on Linux
            for line in f:
                if line.startswith(b"MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except (ImportError, OSError):
        return 4 * GiB


def _mode(value: object, true_means: str, allowed: tuple[str, ...], name: str) -> str:
    """Normalise a checksum mode: booleans (and their spellings in env vars) map to
    ``true_means``/``"off"``."""
    if isinstance(value, str):
        low = value.strip().lower()
        value = {"1": True, "true": True, "yes": True, "on": True, "0": False,
                 "false": False, "no": False, "none": False}.get(low, low)
    if value is True:
        return true_means
    if value is False or value is None:
        return "off"
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed} or a bool, not {value!r}")
    return str(value)


@dataclass
class TransferConfig:
    """Tuning knobs of the engine. All sizes are bytes, all times seconds.

    processes: the most worker processes (default: usable cores, at least 2). Workers start
        as the work needs them: one on the first batch, more while the tasks queued exceed
        what the running ones hold, or as large objects' parts arrive (see ``engine/pool.py``).
    max_in_flight: requests in flight over all workers, 1..8192 (default 256: on real S3 a
        small GET waits 10-50 ms for its first byte, so throughput is requests in flight
        divided by that latency). Split evenly over ``processes`` (rounded up); each worker's
        share adapts down on throttling (SlowDown, 503, 429) and back up.
    requests_per_process: requests each worker keeps in flight, 1..1024; when given it
        wins over ``max_in_flight``, which becomes ``processes * requests_per_process``.
        Default: ``max_in_flight`` split over ``processes``. Both fields read back as the
        values in effect.
    part_size: bytes per ranged GET part and per multipart-upload part (grown automatically
        so an upload stays within 10,000 parts); 5 MiB..5 GiB.
    multipart_threshold: objects at least this large are split (GET and PUT).
    max_attempts: attempts per request before :class:`S3RetriesExhausted` (>= 1).
    backoff_base, backoff_max: full-jitter exponential backoff bounds.
    connect_timeout, read_timeout: socket timeouts per request.
    inline_put_limit: ``bytes``/``str`` values up to this size travel to workers in memory;
        larger ones are spilled to the temp root first.
    verify_checksums: check downloads that arrive in one response against the object's
        checksum; a mismatch is retried. ``"fast"`` (default): the server's CRC32
        (``x-amz-checksum-crc32``, which fasts3 uploads carry), ~0.3 s CPU/GiB; ``"all"``:
        also SHA-1/SHA-256 and the MD5 ETag of objects without one, ~1.9 s CPU/GiB;
        ``"off"``. ``True``/``False`` mean ``"all"``/``"off"``.
    upload_checksums: the checksum sent with every upload and part, which S3 verifies
        (a corrupted body is rejected with BadDigest and retried): ``"crc32"`` (default,
        ``x-amz-checksum-crc32``, ~0.3 s CPU/GiB, stored by S3 and returned on download),
        ``"md5"`` (Content-MD5, ~1.9 s CPU/GiB) or ``"off"``. ``True`` means ``"crc32"``.
    inject_failure_rate: fault injection for testing pipelines (Metaflow's
        ``inject_failure_rate``), 0..100: that percentage of request attempts, listings
        excepted, fails with a transient ``InjectedFailure`` before it is sent and goes
        through the normal retry path. Below 100 the last attempt is never injected; at 100
        every attempt fails (``S3RetriesExhausted``). Default 0 (off).
    inject_seed: makes the injected failures deterministic: the same seed fails the same
        attempts of the same requests, whatever the scheduling. ``None``: random.
    """

    processes: int = field(default_factory=lambda: max(2, usable_cores()))
    requests_per_process: int = None  # type: ignore[assignment]  # resolved: an int
    part_size: int = 8 * MiB
    multipart_threshold: int = 16 * MiB
    max_attempts: int = 5
    backoff_base: float = 0.1
    backoff_max: float = 5.0
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    inline_put_limit: int = 1 * MiB
    verify_checksums: str = "fast"
    upload_checksums: str = "crc32"
    inject_failure_rate: int = 0
    inject_seed: int | None = None
    max_in_flight: int = None  # type: ignore[assignment]  # resolved: an int

    def __post_init__(self) -> None:
        self._validate()

    def _validate(self) -> None:
        self.verify_checksums = _mode(self.verify_checksums, "all", ("off", "fast", "all"),
                                      "verify_checksums")
        self.upload_checksums = _mode(self.upload_checksums, "crc32", ("off", "crc32", "md5"),
                                      "upload_checksums")
        if self.processes < 1:
            raise ValueError("processes must be >= 1")
        if self.requests_per_process is None:
            total = DEFAULT_IN_FLIGHT if self.max_in_flight is None else self.max_in_flight
            if not 1 <= total <= 8192:
                raise ValueError("max_in_flight must be in 1..8192")
            self.requests_per_process = -(-total // self.processes)
        if not 1 <= self.requests_per_process <= 1024:
            raise ValueError("requests_per_process must be in 1..1024")
        if not MIN_PART_SIZE <= self.part_size <= MAX_PART_SIZE:
            raise ValueError("part_size must be in 5 MiB..5 GiB")
        if self.multipart_threshold < 1:
            raise ValueError("multipart_threshold must be >= 1")
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        if not 0 <= self.inject_failure_rate <= 100:
            raise ValueError("inject_failure_rate must be in 0..100")
        # Bound memory: a request in flight holds at most ~256 KiB (a body arriving before
        # its file is ready; a TLS connection's buffer); a quarter of what is available.
        budget = available_memory() // 4
        if self.processes * self.requests_per_process * REQUEST_MEMORY > budget:
            self.requests_per_process = max(1, budget // (self.processes * REQUEST_MEMORY))
        self.max_in_flight = self.processes * self.requests_per_process

    @classmethod
    def from_env(cls, **overrides: object) -> TransferConfig:
        """Defaults, then ``FASTS3_*`` environment variables, then ``overrides``."""
        values: dict[str, object] = {}
        for f in dataclasses.fields(cls):
            raw = os.environ.get("FASTS3_" + f.name.upper())
            if raw is None:
                continue
            try:
                if f.name in _SIZE_FIELDS:
                    values[f.name] = parse_size(raw)
                elif f.type == "bool":
                    values[f.name] = raw.strip().lower() in ("1", "true", "yes", "on")
                elif f.type == "str":
                    values[f.name] = raw
                elif f.type in ("int", "int | None"):
                    values[f.name] = int(raw)
                else:
                    values[f.name] = float(raw)
            except ValueError:
                raise ValueError(f"FASTS3_{f.name.upper()}={raw!r} is not valid") from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]

    @property
    def in_flight(self) -> int:
        """Total requests in flight across all worker processes (``max_in_flight``)."""
        return self.processes * self.requests_per_process

    def upload_part_size(self, size: int) -> int:
        """Part size for a multipart upload of ``size`` bytes: ``part_size`` grown (in MiB
        steps) until the upload needs at most 10,000 parts."""
        part = self.part_size
        if size > part * MAX_PARTS:
            part = -(-size // MAX_PARTS)
            part = -(-part // MiB) * MiB
        return min(part, MAX_PART_SIZE)


def attempts_now(config: TransferConfig) -> int:
    """Attempts per request for the next batch: ``config.max_attempts``, unless
    ``fasts3.metaflow.S3_TRANSIENT_RETRY_COUNT`` was changed (as tests patch Metaflow's);
    then that count plus one, for every client of the process."""
    mf = sys.modules.get("fasts3.metaflow")
    patched = mf.patched_attempts() if mf is not None else None
    return patched or config.max_attempts
