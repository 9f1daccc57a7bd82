"""The S3 server the benchmark talks to, and the CPU it burns.

`start()` prefers `fasts3.local.start_seaweedfs()`. While that module is not available (it is
being written in parallel) it falls back to starting `weed mini` itself with the same shape of
object (endpoint_url, access_key, secret_key, region, pid, env(), client(), create_bucket(),
stop()), so the harness can be developed and smoke-tested on its own.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil


def start(work_dir: Path):
    """Start the embedded SeaweedFS; returns (server, how it was started)."""
    try:
        from fasts3.local import start_seaweedfs
    except ImportError as exc:
        print(f"[bench] fasts3.local unavailable ({exc}); starting weed mini directly")
        return _FallbackWeed(work_dir), "bench.server fallback (weed mini)"
    return start_seaweedfs(), "fasts3.local.start_seaweedfs()"


def tree_cpu_seconds(pid: int) -> float:
    """user+sys CPU seconds of a process and all its live descendants."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += t.user + t.system + t.children_user + t.children_system
    return total


def _free_base_port() -> int:
    """A port P such that P..P+4 and P+10000..P+10004 are free on 127.0.0.1."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base > 55000:
            continue
        ports = [base + i for i in range(5)] + [base + 10000 + i for i in range(5)]
        if all(_port_free(p) for p in ports):
            return base
    raise RuntimeError("no free port range for weed")


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class _FallbackWeed:
    access_key = "benchkey"
    secret_key = "benchsecret"
    region = "us-east-1"

    def __init__(self, work_dir: Path):
        weed = shutil.which("weed") or str(Path(sys.executable).with_name("weed"))
        self._dir = Path(tempfile.mkdtemp(prefix="weed-", dir=work_dir))
        data = self._dir / "data"
        data.mkdir()
        conf = self._dir / "s3.json"
        ident = {
            "name": "admin",
            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "List", "Tagging", "Write"],
        }
        conf.write_text(json.dumps({"identities": [ident]}))
        p = _free_base_port()
        args = [
            weed, "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-master.port={p}", f"-volume.port={p + 1}", f"-filer.port={p + 2}",
            f"-s3.port={p + 3}", "-webdav=false", "-admin.ui=false", f"-admin.port={p + 4}",
            "-s3.port.lance=0", "-s3.port.iceberg=0", "-master.telemetry=false",
            f"-s3.config={conf}",
        ]  # fmt: skip
        self._log = open(self._dir / "weed.log", "wb")  # noqa: SIM115
        self._proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT)
        self.pid = self._proc.pid
        self.endpoint_url = f"http://127.0.0.1:{p + 3}"
        self._wait_ready()

    def _wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        client = self.client()
        while True:
            if self._proc.poll() is not None:
                raise RuntimeError(f"weed exited early; see {self._dir / 'weed.log'}")
            try:
                client.list_buckets()
                return
            except Exception:
                if time.monotonic() > deadline:
                    self.stop()
                    raise
                time.sleep(0.5)

    def session_vars(self) -> dict:
        return {
            "aws_access_key_id": self.access_key,
            "aws_secret_access_key": self.secret_key,
            "region_name": self.region,
        }

    def env(self) -> dict:
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            "AWS_ENDPOINT_URL_S3": self.endpoint_url,
        }

    def client(self):
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            config=Config(retries={"max_attempts": 3}, max_pool_connections=32),
            **self.session_vars(),
        )

    def create_bucket(self, name: str) -> None:
        client = self.client()
        try:
            client.head_bucket(Bucket=name)
        except Exception:
            client.create_bucket(Bucket=name)

    def stop(self) -> None:
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._log.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


if __name__ == "__main__":  # manual check: start, print, stop
    with _FallbackWeed(Path(os.environ.get("TMPDIR", "/tmp"))) as srv:
        print(srv.endpoint_url, srv.pid, tree_cpu_seconds(srv.pid))
