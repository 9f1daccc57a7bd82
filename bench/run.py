"""Orchestrator: `python -m bench` / `python bench/run.py`.

Starts the embedded SeaweedFS, seeds the workloads, runs every selected client x workload x op
in its own child process (bench.child), round-robin over clients within each rep (the order
rotates each rep), verifies every run, and writes results.json and RESULTS.md (bench.report).
A row with a first-byte delay (W4), or every transfer row with --via-proxy, runs each client
through its own bench/latency_proxy.py process, started before the child and stopped after it;
the stage rows (SC1, SC2) run fasts3's two modes (bench/stage.py) instead of the clients.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

if __package__ in (None, ""):  # `python bench/run.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import report, server, sysinfo
from bench.clients import CLIENTS
from bench.latency_proxy import LatencyProxy
from bench.workloads import FULL, QUICK, Workload, delete_prefix, ensure_source, list_prefix, seed

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
BUCKET = "fasts3-bench"
OPS = ["get", "put"]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", default=",".join(CLIENTS), help="comma list (%(default)s)")
    p.add_argument("--workloads", default=",".join(FULL), help="comma list (%(default)s)")
    p.add_argument("--ops", default="get,put", help="comma list (%(default)s)")
    p.add_argument("--reps", type=int, default=None, help="reps per row (3; --quick: 1)")
    p.add_argument("--quick", action="store_true", help="small workloads, 1 rep: smoke test")
    p.add_argument("--timeout", type=float, default=900, help="seconds per run before a kill")
    p.add_argument("--work-dir", type=Path, default=BENCH / "work", help="sources, scratch")
    p.add_argument("--out", type=Path, default=None, help="results dir (bench/; --quick: work)")
    p.add_argument(
        "--merge",
        action="store_true",
        help="keep the rows of an existing results.json that this run does not redo",
    )
    p.add_argument(
        "--via-proxy",
        action="store_true",
        help="send every transfer row through the latency proxy (0 ms delay except W4) to "
        "count requests in flight everywhere; adds the proxy's hop to those rows",
    )
    p.add_argument("--report-only", action="store_true", help="re-render RESULTS.md and exit")
    a = p.parse_args(argv)
    a.clients = _pick(a.clients, CLIENTS, "client")
    a.workloads = _pick(a.workloads.upper(), list(FULL), "workload")
    a.ops = _pick(a.ops.lower(), OPS, "op")
    a.reps = a.reps or (1 if a.quick else 3)
    a.out = a.out or (a.work_dir if a.quick else BENCH)
    return a


def _pick(csv: str, allowed: list[str], what: str) -> list[str]:
    items = [x.strip() for x in csv.split(",") if x.strip()]
    bad = [x for x in items if x not in allowed]
    if bad or not items:
        raise SystemExit(f"unknown {what}(s) {bad}; choose from {allowed}")
    return items


def child_env(srv) -> dict[str, str]:
    env = dict(os.environ)
    env.update(srv.env())
    env["METAFLOW_S3_ENDPOINT_URL"] = srv.endpoint_url
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def jobs(workloads: list[Workload], a, rep: int = 0) -> list[tuple[Workload, str, list[str]]]:
    """(workload, op, clients) of one rep, in order. A stage row's ops are fasts3's modes
    (which goes first alternates with the rep); it runs when fasts3 is among the clients and
    get among the ops."""
    out = []
    for w in workloads:
        if w.kind == "stage":
            if "fasts3" in a.clients and "get" in a.ops:
                modes = w.ops[rep % len(w.ops) :] + w.ops[: rep % len(w.ops)]
                out += [(w, mode, ["fasts3"]) for mode in modes]
        else:
            out += [(w, op, a.clients) for op in a.ops if op in w.ops]
    return out


def run_one(srv, env, w: Workload, op: str, client: str, rep: int, a) -> dict:
    run_id = f"{w.wid}-{op}-{client}-r{rep}-{uuid.uuid4().hex[:6]}"
    runs_dir = a.work_dir / "runs"
    scratch, result_path, log_path = (runs_dir / f"{run_id}{s}" for s in ("", ".json", ".log"))
    scratch.mkdir(parents=True)
    cfg = {
        "client": client, "op": op, "bucket": BUCKET, "endpoint_url": srv.endpoint_url,
        "region": srv.region, "access_key": srv.access_key, "secret_key": srv.secret_key,
        "server_pid": srv.pid, "src_prefix": w.src_prefix, "names": w.names(), "size": w.size,
        "src_dir": str(a.work_dir / "src" / w.data_name), "dest_dir": str(scratch),
        "dest_prefix": f"put/{run_id}", "result_path": str(result_path),
    }  # fmt: skip
    if w.kind == "stage":
        cfg.update(stage=True, mode=op, window=w.window)
    rec = {
        "run_id": run_id,
        "rep": rep,
        "workload": w.wid,
        "workload_name": w.name,
        "kind": w.kind,
        "op": op,
        "client": client,
        "expected_files": w.count,
        "expected_bytes": w.total_bytes,
        "delay_ms": w.delay_ms,
    }
    proxy = None
    if w.delay_ms > 0 or (a.via_proxy and w.kind == "transfer"):
        proxy = LatencyProxy(srv.endpoint_url, w.delay_ms / 1e3, runs_dir / f"{run_id}.proxy")
        cfg.update(endpoint_url=proxy.endpoint_url, proxy_pid=proxy.pid)
        env = dict(env, METAFLOW_S3_ENDPOINT_URL=proxy.endpoint_url,
                   AWS_ENDPOINT_URL_S3=proxy.endpoint_url)  # fmt: skip
    try:
        proc = _child(cfg, env, log_path, rec, a)
    finally:
        if proxy is not None:
            rec["proxy"] = proxy.stop()
            rec["peak_in_flight"] = rec["proxy"].get("peak_in_flight")
    child = json.loads(result_path.read_text()) if result_path.exists() else {}
    child.pop("ok", None)
    rec.update(child)
    rec["ok"] = False
    if "error" not in rec and "seconds" in rec:
        if op == "put":
            _verify_put(srv, w, cfg["dest_prefix"], rec)
        else:  # GETs and stage runs verify in the child
            rec["ok"] = proc.returncode == 0 and rec.get("verify_error") is None
    if rec["ok"]:
        rec["mib_s"] = w.total_bytes / rec["seconds"] / 2**20
    else:
        rec.setdefault("error", rec.get("verify_error") or f"child exit {proc.returncode}")
        rec["log_tail"] = log_path.read_text(errors="replace")[-2000:]
    if op == "put":
        delete_prefix(srv.client(), BUCKET, cfg["dest_prefix"] + "/")
    shutil.rmtree(scratch, ignore_errors=True)
    for f in (result_path, log_path):
        f.unlink(missing_ok=True)
    return rec


def _child(cfg: dict, env: dict, log_path: Path, rec: dict, a) -> subprocess.Popen:
    """Run bench.child on cfg (killed after a.timeout); records exit code and proc CPU."""
    os.sync()  # start every run with no dirty page cache left by the previous one
    cpu0 = _children_cpu()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench.child"], stdin=subprocess.PIPE, stdout=log,
            stderr=subprocess.STDOUT, cwd=REPO, env=env, start_new_session=True,
        )  # fmt: skip
        try:
            proc.communicate(json.dumps(cfg).encode(), timeout=a.timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the session this run started, nothing else
            proc.wait()
            rec["error"] = f"timed out after {a.timeout:.0f} s"
    rec["proc_cpu_s"] = _children_cpu() - cpu0
    rec["exit_code"] = proc.returncode
    return proc


def _verify_put(srv, w: Workload, prefix: str, rec: dict) -> None:
    got = list_prefix(srv.client(), BUCKET, prefix + "/")
    rec["files"], rec["bytes"] = len(got), sum(got.values())
    want = {f"{prefix}/{n}": w.size for n in w.names()}
    rec["ok"] = got == want
    if not rec["ok"]:
        rec["verify_error"] = (
            f"listed {len(got)} objects / {rec['bytes']} bytes under {prefix}/, "
            f"want {w.count} / {w.total_bytes}"
        )


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _describe(rec: dict) -> str:
    head = f"rep {rec['rep'] + 1} {rec['workload']} {rec['op']:<3} {rec['client']:<10}"
    if not rec["ok"]:
        return f"{head} FAILED: {rec.get('error', '?')[:300]}"
    line = (
        f"{head} {rec['seconds']:7.2f} s {rec['mib_s']:8.1f} MiB/s  client cpu "
        f"{rec['client_cpu_s']:6.2f} s  server cpu {rec['server_cpu_s']:6.2f} s  "
        f"other {rec.get('other_cpu_s', 0):5.2f} s"
    )
    if rec.get("proxy"):
        px = rec["proxy"]
        line += (
            f"  in flight {px.get('peak_in_flight')}  proxy cpu {px.get('cpu_s', 0):.2f} s"
            f" ({px.get('cpu_us_per_request') or 0:.0f} us/request)"
        )
    if rec.get("kind") == "stage":
        line += (
            f"  first {rec['first_s']:.3f} s  consume {rec['consume_s']:.2f} s  peak disk "
            f"{rec['peak_disk_bytes'] / 2**20:.1f} MiB (window {rec['window']})"
        )
    return line


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    json_path, md_path = a.out / "results.json", a.out / "RESULTS.md"
    if a.report_only:
        report.write(json.loads(json_path.read_text()), md_path)
        print(f"[bench] wrote {md_path}")
        return 0
    sets = QUICK if a.quick else FULL
    workloads = [sets[wid] for wid in a.workloads]
    todo = jobs(workloads, a)
    if not todo:
        raise SystemExit("nothing to run: no workload has one of the selected ops/clients")
    a.work_dir.mkdir(parents=True, exist_ok=True)
    a.out.mkdir(parents=True, exist_ok=True)
    for w in workloads:
        ensure_source(w, a.work_dir / "src")
    old = json.loads(json_path.read_text())["runs"] if a.merge and json_path.exists() else []
    redo = {(w.wid, op, c) for w, op, clients in todo for c in clients}
    runs = [r for r in old if (r["workload"], r["op"], r["client"]) not in redo]
    load1 = os.getloadavg()[0]
    if load1 > 1.0:
        print(f"[bench] warning: load average {load1:.1f}; other work will skew the numbers")
    srv, how = server.start(a.work_dir)
    try:
        srv.create_bucket(BUCKET)
        for w in dict.fromkeys(w for w, op, _ in todo if op != "put"):
            seed(w, a.work_dir / "src" / w.data_name, srv.client(), BUCKET)
        meta = sysinfo.collect(server_how=how, quick=a.quick, reps=a.reps, workloads=workloads)
        meta["via_proxy"] = a.via_proxy
        env = child_env(srv)
        total, n, t_start = a.reps * sum(len(c) for _, _, c in todo), 0, time.time()
        for rep in range(a.reps):
            for w, op, clients in jobs(workloads, a, rep):
                for client in clients[rep % len(clients) :] + clients[: rep % len(clients)]:
                    rec = run_one(srv, env, w, op, client, rep, a)
                    runs.append(rec)
                    n += 1
                    print(f"[bench] {n}/{total} {_describe(rec)}", flush=True)
                    meta["elapsed_s"] = time.time() - t_start
                    _dump(json_path, {"meta": meta, "runs": runs})
    finally:
        srv.stop()
    report.write({"meta": meta, "runs": runs}, md_path)
    print(f"[bench] wrote {json_path} and {md_path}")
    failed = sum(not r["ok"] for r in runs)
    if failed:
        print(f"[bench] {failed} of {len(runs)} runs failed (recorded as such)")
    return 0


def _dump(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)


if __name__ == "__main__":
    sys.exit(main())
