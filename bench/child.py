"""One benchmark run in its own process: `python -m bench.child < config.json`.

The parent (bench.run) writes a JSON config to stdin; this process imports the client, then
measures only the transfer (client construction included, interpreter start and imports not),
verifies a GET's local files, and writes a JSON result to `config["result_path"]`.

CPU accounting (the client's whole process tree, user+sys, over the timed window):
  * this process: getrusage(RUSAGE_SELF) delta (all threads, e.g. boto3 pools, tokio runtime);
  * descendants that exited and were reaped in the window (s5cmd, metaflow's s3op workers,
    a joined process pool): getrusage(RUSAGE_CHILDREN) delta;
  * descendants still alive or not yet reaped (zombies) at the end of the window, e.g. a worker
    pool that is shut down later in close(): psutil cpu_times (user+sys plus their own reaped
    children) of every process below us, minus what each already had at the start.
This process makes itself a child subreaper (prctl PR_SET_CHILD_SUBREAPER), so a descendant
whose parent exits is re-parented here instead of to init and stays visible until counted.
Server CPU is the psutil cpu_times delta of the server's process tree over the same window,
and so is proxy CPU (bench/latency_proxy.py, a process of the parent's, when the row goes
through it); other_cpu_s is the machine's busy CPU in the window minus client, server and
proxy: other load (noise).

A stage row (``cfg["stage"]``, bench/stage.py) is timed the same way; its run yields its own
measurements (time to first object, download, consume, peak disk) and verifies as it consumes.
"""

from __future__ import annotations

import ctypes
import importlib
import json
import os
import resource
import sys
import time
import traceback

import psutil

from bench.server import tree_cpu_seconds

PR_SET_CHILD_SUBREAPER = 36


def _become_subreaper() -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _rusage(who: int) -> float:
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def _system_busy() -> float:
    """Busy CPU seconds of the whole machine (all cores), from /proc/stat via psutil."""
    t = psutil.cpu_times()
    return sum(t) - t.idle - getattr(t, "iowait", 0.0)


def _descendant_cpu() -> dict[tuple[int, float], float]:
    out = {}
    for p in psutil.Process().children(recursive=True):
        try:
            t = p.cpu_times()
            out[(p.pid, p.create_time())] = t.user + t.system + t.children_user + t.children_system
        except psutil.NoSuchProcess:
            continue
    return out


class CpuWindow:
    """Client-tree and server-tree CPU seconds between start() and stop()."""

    def __init__(self, server_pid: int | None, proxy_pid: int | None = None):
        self.server_pid = server_pid
        self.proxy_pid = proxy_pid

    def _server(self) -> float:
        if not self.server_pid:
            return 0.0
        return tree_cpu_seconds(self.server_pid)

    def _proxy(self) -> float:
        return tree_cpu_seconds(self.proxy_pid) if self.proxy_pid else 0.0

    def start(self) -> None:
        self.self0 = _rusage(resource.RUSAGE_SELF)
        self.reaped0 = _rusage(resource.RUSAGE_CHILDREN)
        self.tree0 = _descendant_cpu()
        self.server0 = self._server()
        self.proxy0 = self._proxy()
        self.busy0 = _system_busy()

    def stop(self) -> dict:
        busy = _system_busy() - self.busy0
        server = self._server() - self.server0
        proxy = self._proxy() - self.proxy0
        tree1 = _descendant_cpu()
        self_cpu = _rusage(resource.RUSAGE_SELF) - self.self0
        reaped = _rusage(resource.RUSAGE_CHILDREN) - self.reaped0
        # Live at the end: count what they burned since the start (0 if born later).
        live = sum(v - self.tree0.get(k, 0.0) for k, v in tree1.items())
        # Alive at the start and reaped since: RUSAGE_CHILDREN holds their whole life.
        live -= sum(v for k, v in self.tree0.items() if k not in tree1)
        client = self_cpu + reaped + live
        return {
            "client_cpu_s": client,
            "client_cpu_self_s": self_cpu,
            "client_cpu_children_s": reaped + live,
            "descendants_alive_at_end": len(tree1),
            "server_cpu_s": server,
            "proxy_cpu_s": proxy if self.proxy_pid else None,
            # busy CPU of everything else on the machine in the window: noise if large
            "other_cpu_s": max(0.0, busy - client - server - proxy),
        }


def verify_get(cfg: dict, paths: dict[str, str]) -> tuple[int, int, str | None]:
    """(files, bytes, error) of a GET: every object on disk, right size, sampled content."""
    files = nbytes = 0
    missing = [n for n in cfg["names"] if n not in paths]
    for name in cfg["names"]:
        p = paths.get(name)
        if p and os.path.isfile(p):
            files += 1
            nbytes += os.path.getsize(p)
    if missing:
        return files, nbytes, f"{len(missing)} objects not returned, e.g. {missing[0]}"
    if files != len(cfg["names"]) or nbytes != cfg["size"] * len(cfg["names"]):
        return files, nbytes, "file count or total bytes differ from the workload"
    names = cfg["names"]
    for name in {names[0], names[len(names) // 2], names[-1]}:
        if not _same_content(paths[name], os.path.join(cfg["src_dir"], name)):
            return files, nbytes, f"content of {name} differs from the source"
    return files, nbytes, None


def _same_content(a: str, b: str, block: int = 8 << 20) -> bool:
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x, y = fa.read(block), fb.read(block)
            if x != y:
                return False
            if not x:
                return True


def main() -> int:
    cfg = json.load(sys.stdin)
    result: dict = {"ok": False, "subreaper": _become_subreaper()}
    try:
        if cfg.get("stage"):
            return _stage(cfg, result)
        mod = importlib.import_module(f"bench.clients.{cfg['client']}_client")
        op = getattr(mod, cfg["op"])
        window = CpuWindow(cfg.get("server_pid"), cfg.get("proxy_pid"))
        window.start()
        t0 = time.perf_counter()
        with op(cfg) as paths:
            result["seconds"] = time.perf_counter() - t0
            result.update(window.stop())
            if cfg["op"] == "get":
                files, nbytes, err = verify_get(cfg, paths)
                result.update(files=files, bytes=nbytes, verify_error=err, ok=err is None)
            else:
                result["ok"] = True  # the parent verifies PUTs by listing
    except BaseException as exc:  # noqa: BLE001 - any failure is a failed row, never a crash
        _failed(result, exc)
    return _write(cfg, result)


def _stage(cfg: dict, result: dict) -> int:
    try:
        from bench import stage  # imports fasts3 before the window

        window = CpuWindow(cfg.get("server_pid"), cfg.get("proxy_pid"))
        window.start()
        t0 = time.perf_counter()
        with stage.run(cfg, t0) as measured:
            result["seconds"] = time.perf_counter() - t0
            result.update(window.stop())
            result.update(measured)
            result["ok"] = measured["verify_error"] is None
    except BaseException as exc:  # noqa: BLE001 - any failure is a failed row, never a crash
        _failed(result, exc)
    return _write(cfg, result)


def _failed(result: dict, exc: BaseException) -> None:
    result["error"] = f"{type(exc).__name__}: {exc}"
    result["traceback"] = traceback.format_exc()[-4000:]


def _write(cfg: dict, result: dict) -> int:
    with open(cfg["result_path"], "w") as f:
        json.dump(result, f)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
