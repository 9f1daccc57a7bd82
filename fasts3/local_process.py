"""Processes behind ``fasts3.local``: free ports on 127.0.0.1, log tails, and stopping a
server's process group (SIGTERM, then SIGKILL after a grace period)."""

from __future__ import annotations

import contextlib
import logging
import os
import random
import signal
import socket
import subprocess
import time

log = logging.getLogger("fasts3.local")

HOST = "127.0.0.1"
GRPC_OFFSET = 10000  # every weed port P also opens a gRPC port at P + 10000
PORT_LOW, PORT_HIGH = 20000, 45000
STOP_GRACE = 10.0


class LocalS3Error(RuntimeError):
    """A local server could not be found, started or reached."""


def pick_ports(n: int, with_grpc: bool) -> tuple[int, ...]:
    """``n`` distinct random free ports on 127.0.0.1 (``with_grpc``: P + 10000 free too),
    outside the ephemeral range if possible, so outgoing connections can't take them first."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range", encoding="ascii") as f:
            eph_lo, eph_hi = (int(x) for x in f.read().split())
    except (OSError, ValueError):
        eph_lo, eph_hi = 32768, 60999
    offsets = (0, GRPC_OFFSET) if with_grpc else (0,)
    window = range(PORT_LOW, PORT_HIGH - offsets[-1])
    pool = [p for p in window if not any(eph_lo <= p + o <= eph_hi for o in offsets)]
    if len(pool) < 100 * n:
        pool = list(window)
    random.shuffle(pool)
    taken: set[int] = set()
    chosen: list[int] = []
    for p in pool:
        want = {p + o for o in offsets}
        if taken.isdisjoint(want) and all(port_free(q) for q in want):
            chosen.append(p)
            taken |= want
            if len(chosen) == n:
                return tuple(chosen)
    raise LocalS3Error(f"no {n} free port(s) in {PORT_LOW}-{PORT_HIGH} on {HOST}")


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((HOST, port))
            return True
        except OSError:
            return False


def tail(path: str, lines: int = 40) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.path.getsize(path) - 16384))
            return "\n".join(f.read().decode("utf-8", "replace").splitlines()[-lines:])
    except OSError as e:
        return f"<no log: {e}>"


def stop_process(proc: subprocess.Popen, kind: str, log_path: str | None) -> bool:
    """SIGTERM the process group led by ``proc``, SIGKILL it if it outlives the grace period.
    Returns True if it had to be killed."""
    if proc.poll() is not None:
        return False  # leader gone and reaped: its group id is no longer ours to signal
    pgid = proc.pid  # start_new_session=True made it a group leader
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    deadline, stuck_since = time.monotonic() + STOP_GRACE, None
    while proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
        # weed mini sometimes hangs for good in its volume server's final HTTP shutdown, after
        # every other component has stopped; by then nothing is lost by killing it.
        if kind == "seaweedfs" and log_path and stuck_since is None and \
                "graceful stop cluster http server" in tail(log_path, 30):
            stuck_since = time.monotonic()
        if stuck_since is not None and time.monotonic() - stuck_since > 1.5:
            break
    killed = proc.poll() is None
    if killed:
        log.info("%s server pid %d still running after SIGTERM; killing it", kind, pgid)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
    log.info("%s server pid %d stopped (exit code %s)", kind, pgid, proc.returncode)
    return killed
