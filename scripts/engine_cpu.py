#!/usr/bin/env python
"""Quick A/B measurements of the engine's cost (not the benchmark: one client, no peers).

    PYTHONPATH=$PWD python scripts/engine_cpu.py [--endpoint URL] [--what ctx,w1,w3,w4]
        [--reps 3] [--env FASTS3_X=Y ...] [--profile DIR] [--tmproot DIR] [--code DIR]

Starts an embedded SeaweedFS (or uses ``--endpoint`` with the local server's default keys),
seeds ``perf/w1`` (2000 x 64 KiB), ``perf/w2`` (64 x 8 MiB) and ``perf/w3`` (2 x 512 MiB,
multipart in 8 MiB parts) once, then runs every measurement in a fresh child process (with
``--code DIR``: importing fasts3 from another checkout, for A/B) and prints one JSON line
per run:

* ``ctx``: parent CPU (getrusage SELF) of ``S3(...)`` plus the first small ``get`` -- what
  starting a context costs the calling process -- and its wall time, for the process's first
  context (botocore is imported then) and for a second one (``_warm``).
* ``w1`` / ``w2`` / ``w3``: ``get_many`` of the workload; client CPU = SELF + reaped
  children + live descendants (``bench.child.CpuWindow``), per object and per MiB.
* ``p1``: ``put_files`` of 2000 local 64 KiB files (client CPU as for w1).
* ``w4``: w1 through a proxy adding 50 ms before every answer (``tests/faultproxy.py``, run in
  this parent process so its CPU is not the client's): time and the proxy's peak requests in
  flight.

``--profile DIR`` runs ``py-spy record --gil`` (Python CPU; needs py-spy) on this process and
on every worker as it starts, one ``--format raw`` file each in DIR; with
``ENGINE_CPU_PROFILER=perf``, ``perf record -g`` instead (kernel and native stacks).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.environ.get("PYTHONPATH", ROOT).split(os.pathsep)[0])
sys.path.insert(0, os.path.join(ROOT, "tests"))

KiB, MiB = 1 << 10, 1 << 20
BUCKET = "perf"
W1 = [f"w1/{i:05d}.bin" for i in range(2000)]
W2 = [f"w2/{i:03d}.bin" for i in range(64)]
W3 = [f"w3/{i}.bin" for i in range(2)]


def _kwargs(endpoint: str) -> dict:
    return dict(endpoint_url=endpoint, progress=False,
                session_vars={"aws_access_key_id": "fasts3-local-key",
                              "aws_secret_access_key": "fasts3-local-secret",
                              "region_name": "us-east-1"})


def seed(endpoint: str) -> None:
    import boto3
    from boto3.s3.transfer import TransferConfig
    from botocore.config import Config

    c = boto3.session.Session().client(
        "s3", endpoint_url=endpoint, aws_access_key_id="fasts3-local-key",
        aws_secret_access_key="fasts3-local-secret", region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, signature_version="s3v4"))
    try:
        c.create_bucket(Bucket=BUCKET)
    except c.exceptions.ClientError:
        pass
    have = {}
    for page in c.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        have.update({o["Key"]: o["Size"] for o in page.get("Contents", [])})
    from concurrent.futures import ThreadPoolExecutor

    def put_small(k: str) -> None:
        if have.get(k) != 64 * KiB:
            c.put_object(Bucket=BUCKET, Key=k, Body=os.urandom(64 * KiB))

    with ThreadPoolExecutor(16) as ex:
        list(ex.map(put_small, W1))
    cfg = TransferConfig(multipart_chunksize=8 * MiB, multipart_threshold=8 * MiB,
                         max_concurrency=8)
    def put_medium(k: str) -> None:
        if have.get(k) != 8 * MiB:
            c.put_object(Bucket=BUCKET, Key=k, Body=os.urandom(8 * MiB))

    with ThreadPoolExecutor(4) as ex:
        list(ex.map(put_medium, W2))
    for k in W3:
        if have.get(k) != 512 * MiB:
            with tempfile.NamedTemporaryFile() as f:
                for _ in range(64):
                    f.write(os.urandom(8 * MiB))
                f.flush()
                c.upload_file(f.name, BUCKET, k, Config=cfg)


def _cpu(who: int) -> float:
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def child(spec: dict) -> dict:
    """One measurement, in this (fresh) process."""
    from bench.child import CpuWindow
    from fasts3 import S3

    kw = _kwargs(spec["endpoint"])
    tmp = tempfile.mkdtemp(prefix="engine-cpu-", dir=spec.get("tmproot"))
    what = spec["what"]
    out: dict = {"what": what}
    if what == "ctx":  # the first context of the process (botocore loads), then another
        for name in ("", "_warm"):
            t0, c0 = time.perf_counter(), _cpu(resource.RUSAGE_SELF)
            with S3(s3root=f"s3://{BUCKET}/w1", tmproot=tmp, **kw) as s3:
                s3.get("00000.bin")
                out["parent_cpu_ms" + name] = (_cpu(resource.RUSAGE_SELF) - c0) * 1000
                out["wall_ms" + name] = (time.perf_counter() - t0) * 1000
                pool = s3._engine.pool  # how many workers a single get started
                out["workers" + name] = len(pool.workers()) if pool is not None else 0
        return out
    if what == "p1":  # put_files of 2000 x 64 KiB local files to a fresh prefix
        src = _sources(spec.get("tmproot"))
        window = CpuWindow(None)
        window.start()
        t0 = time.perf_counter()
        with S3(s3root=f"s3://{BUCKET}/p1-{os.getpid()}", tmproot=tmp, **kw) as s3:
            s3.put_files([(os.path.basename(p), p) for p in src])
            out["seconds"] = time.perf_counter() - t0
            out.update(window.stop())
            out.update(_split())
            s3.delete_many([os.path.basename(p) for p in src])
        out["cpu_ms_per_object"] = out["client_cpu_s"] * 1000 / len(src)
        return out
    keys = {"w1": W1, "w2": W2, "w3": W3, "w4": W1}[what]
    window = CpuWindow(None)
    window.start()
    t0 = time.perf_counter()
    with S3(s3root=f"s3://{BUCKET}", tmproot=tmp, **dict(kw, endpoint_url=spec.get(
            "via", spec["endpoint"]))) as s3:
        if spec.get("profile"):
            _profile(s3, spec["profile"], what)
        objs = s3.get_many(keys)
        out["seconds"] = time.perf_counter() - t0
        out.update(window.stop())
        out.update(_split())
        mib = sum(o.size for o in objs) / MiB
        assert mib == {"w1": 125, "w2": 512, "w3": 1024, "w4": 125}[what], mib
    out["cpu_ms_per_object"] = out["client_cpu_s"] * 1000 / len(keys)
    out["cpu_ms_per_mib"] = out["client_cpu_s"] * 1000 / mib
    return out


def _sources(tmproot: str | None) -> list[str]:
    """2000 local files of 64 KiB (made once)."""
    d = os.path.join(tmproot or tempfile.gettempdir(), "engine-cpu-src")
    names = [os.path.join(d, f"{i:05d}.bin") for i in range(2000)]
    if not os.path.exists(os.path.join(d, "complete")):
        os.makedirs(d, exist_ok=True)
        for n in names:
            with open(n, "wb") as f:
                f.write(os.urandom(64 * KiB))
        open(os.path.join(d, "complete"), "w").close()
    return names


def _split() -> dict:
    """User and system CPU seconds of this process and its live descendants (the workers
    are born inside the window, so their whole life is in it)."""
    import psutil

    me = resource.getrusage(resource.RUSAGE_SELF)
    user, system = me.ru_utime, me.ru_stime
    for p in psutil.Process().children(recursive=True):
        try:
            t = p.cpu_times()
        except psutil.NoSuchProcess:
            continue
        user, system = user + t.user, system + t.system
    return {"user_s": user, "sys_s": system}


def _profile(s3, directory: str, what: str) -> None:
    """Run py-spy on every worker of ``s3`` as it starts (the pool grows during the batch),
    and on this process."""
    import threading

    def record(pid: int, name: str) -> None:
        out = os.path.join(directory, f"{what}-{name}")
        if os.environ.get("ENGINE_CPU_PROFILER") == "perf":  # kernel + native stacks
            cmd = ["perf", "record", "-e", "cpu-clock", "-F", "1000", "-g", "-p", str(pid),
                   "-o", out + ".perf"]
        else:  # Python stacks; --gil: only while holding the GIL (CPU in Python)
            cmd = ["py-spy", "record", "--format", "raw", "--rate", "250", "--gil", "-p",
                   str(pid), "-o", out + ".txt"]
        subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def watch() -> None:
        seen: set[int] = set()
        while not s3._engine.closed:
            pool = s3._engine.pool
            for w in pool.workers() if pool is not None else []:
                if w.proc.pid not in seen:
                    seen.add(w.proc.pid)
                    record(w.proc.pid, f"worker-{w.proc.pid}")
            time.sleep(0.005)

    record(os.getpid(), "parent")
    threading.Thread(target=watch, daemon=True).start()
    time.sleep(1.0)


def run_child(spec: dict, env: dict) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)],
                          capture_output=True, text=True, env=env, check=False,
                          cwd=tempfile.gettempdir())  # not a checkout: -m imports from cwd
    if proc.returncode:
        return {"what": spec["what"], "error": proc.stderr[-2000:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--child")
    p.add_argument("--endpoint")
    p.add_argument("--what", default="ctx,w1,w3,w4")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--env", action="append", default=[])
    p.add_argument("--profile")
    p.add_argument("--tmproot")
    p.add_argument("--code", help="import fasts3 from this checkout (A/B against an old one)")
    a = p.parse_args()
    if a.child:
        print(json.dumps(child(json.loads(a.child))))
        return
    server = None
    endpoint = a.endpoint
    if not endpoint:
        from fasts3.local import start_seaweedfs

        server = start_seaweedfs()
        endpoint = server.endpoint_url
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([a.code or ROOT, ROOT]))
    env.update(e.split("=", 1) for e in a.env)
    try:
        seed(endpoint)
        for _ in range(a.reps):
            for what in a.what.split(","):
                spec = {"what": what, "endpoint": endpoint, "profile": a.profile,
                        "tmproot": a.tmproot}
                if what == "w4":
                    from faultproxy import FaultProxy

                    with FaultProxy(endpoint, max_connections=1024) as proxy:
                        proxy.latency = 0.05
                        spec["via"] = proxy.endpoint_url
                        res = run_child(spec, env)
                        res["proxy_max_inflight"] = proxy.stats.max_inflight
                        res["proxy_max_connections"] = proxy.stats.max_connections
                else:
                    res = run_child(spec, env)
                print(json.dumps({k: round(v, 3) if isinstance(v, float) else v
                                  for k, v in res.items()}), flush=True)
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
