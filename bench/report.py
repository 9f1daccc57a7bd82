"""results.json -> RESULTS.md: machine facts, method, one table per workload and op."""

from __future__ import annotations

from pathlib import Path
from statistics import median

from bench.clients import CLIENTS

METHOD = """\
- **Setup.** Everything runs on this one machine: the server is SeaweedFS (`weed mini` on
  127.0.0.1, plain HTTP), so client and server share the cores and the numbers measure CPU
  efficiency as much as transfer speed. Each workload's random source files are generated once;
  GET rows read objects seeded once with boto3; PUT rows upload the same local files to a fresh
  prefix (deleted after verification).
- **Runs.** Each run is its own Python subprocess (`bench/child.py`). Within a rep the clients
  go round-robin (the starting client rotates from rep to rep); `sync` runs before each run.
- **Time** is measured inside the child around the transfer only: from building the client
  (S3 context, boto3 client, store) to the last byte on disk / last upload acknowledged;
  interpreter start, imports, verification and close (temp-dir cleanup) are outside it.
  **MiB/s** = workload bytes / time.
- **Client CPU** is user+sys seconds of the child's whole process tree over that window:
  getrusage(SELF) and getrusage(CHILDREN) deltas (all threads; reaped subprocesses such as s5cmd
  or metaflow's s3op workers), plus psutil cpu_times of descendants still alive or unreaped at
  the end (e.g. a worker pool closed later); the child is a PR_SET_CHILD_SUBREAPER, so orphans
  stay in its tree. **Proc CPU** is the same tree over the child's whole life (interpreter
  start, imports, verification and close included), from the parent's getrusage(CHILDREN).
  **Server CPU** is the psutil cpu_times delta of the weed process tree over the timed window.
  **Other CPU** is the whole machine's busy CPU in the window minus client and server: load
  from anything else running (a quiet machine shows ~0; large values mean a noisy run).
- **Verification.** A GET is checked in the child: every object on disk with the right size,
  first, middle and last file byte-for-byte equal to the source. A PUT is checked by the parent
  listing the destination prefix (every key, every size). A failed or unverified run counts in
  "runs ok/total" and nowhere else; medians are over the ok runs. "time vs fasts3" is median
  time / fasts3's median time (above 1 = slower than fasts3)."""

COLUMNS = [
    "client", "median time (s)", "median MiB/s", "median client CPU (s)",
    "median server CPU (s)", "median proc CPU (s)", "median other CPU (s)", "time vs fasts3",
    "runs ok/total",
]  # fmt: skip


def _med(runs: list[dict], field: str) -> float | None:
    vals = [r[field] for r in runs if r.get(field) is not None]
    return median(vals) if vals else None


def _f(x: float | None, digits: int = 2) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def table(runs: list[dict]) -> list[str]:
    by_client: dict[str, list[dict]] = {}
    for r in runs:
        by_client.setdefault(r["client"], []).append(r)
    order = [c for c in CLIENTS if c in by_client] + sorted(set(by_client) - set(CLIENTS))
    base = _med([r for r in by_client.get("fasts3", []) if r["ok"]], "seconds")
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for c in order:
        ok = [r for r in by_client[c] if r["ok"]]
        t = _med(ok, "seconds")
        ratio = f"{t / base:.2f}×" if t and base else "n/a"
        cpus = [
            _f(_med(ok, f)) for f in ("client_cpu_s", "server_cpu_s", "proc_cpu_s", "other_cpu_s")
        ]
        cells = [c, _f(t), _f(_med(ok, "mib_s"), 1), *cpus, ratio, f"{len(ok)}/{len(by_client[c])}"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _failures(runs: list[dict]) -> list[str]:
    seen, out = set(), []
    for r in runs:
        if r["ok"]:
            continue
        err = (r.get("error") or "?").strip().splitlines()[-1][:200]
        if (r["client"], err) not in seen:
            seen.add((r["client"], err))
            out.append(f"- {r['workload']} {r['op']} `{r['client']}`: {err}")
    return out


def render(data: dict) -> str:
    meta, runs = data["meta"], data["runs"]
    pk = meta.get("packages", {})
    out = [
        "# fasts3 benchmark results",
        "",
        "Produced by `python -m bench` (see bench/README.md); raw per-run data in results.json.",
        "",
        "## Machine",
        "",
        f"- date: {meta.get('date')}; git commit {meta.get('git_commit')}",
        f"- CPU: {meta.get('cpu_model')}, {meta.get('cpus_usable')} usable of "
        f"{meta.get('cpus_logical')} logical cores; RAM {meta.get('ram_gib')} GiB",
        f"- Python {meta.get('python')} on {meta.get('platform')}",
        "- packages: " + ", ".join(f"{k} {v}" for k, v in pk.items()),
        f"- s5cmd binary {meta.get('s5cmd_binary')}; weed `{meta.get('weed_binary')}`",
        f"- server started by {meta.get('server')}; reps {meta.get('reps')}"
        + ("; **quick mode (small workloads)**" if meta.get("quick") else ""),
        "",
        "## Method",
        "",
        METHOD,
        "",
    ]
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in runs:
        groups.setdefault((r["workload"], r["op"]), []).append(r)
    for (wid, op), rs in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1] != "get")):
        size = rs[0]["expected_bytes"] / 2**20
        out += [f"## {wid} {op.upper()}: {rs[0]['workload_name']} "
                f"({rs[0]['expected_files']} objects, {size:.0f} MiB)", ""]  # fmt: skip
        out += table(rs) + [""]
    fails = _failures(runs)
    if fails:
        out += ["## Failed runs", ""] + fails + [""]
    return "\n".join(out)


def write(data: dict, path: Path) -> None:
    path.write_text(render(data))
