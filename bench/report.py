"""results.json -> RESULTS.md: machine facts, method, one table per workload and op, and for
the stage-and-consume rows one table per workload with the status of issue 15's targets."""

from __future__ import annotations

from pathlib import Path
from statistics import median

from bench.clients import CLIENTS
from bench.workloads import FULL

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
  time / fasts3's median time (above 1 = slower than fasts3).
- **Through the latency proxy** (W4; every row with `--via-proxy`): each run gets its own
  `bench/latency_proxy.py` process between the client and the server (the client's endpoint
  URL is the proxy's), which holds each request's first response byte for the row's delay.
  **Peak in flight** is the most requests the proxy saw at once between a request's head and
  the last byte of its answer; **floor** = requests through the proxy x delay / peak in flight,
  the time the delay alone costs at that concurrency; **proxy CPU** is the proxy process's
  user+sys seconds over the timed window (not in client CPU; subtracted from other CPU);
  **held answers late** is how much later than the delay the proxy released held answers
  (its event loop's backlog: extra latency that client's requests got).
- **Stage and consume** (SC rows, fasts3 only, `bench/stage.py`): `iter_get` hands each
  object to the consumer as it lands; `get_many` downloads all, then the consumer runs. The
  consumer sleeps 1 ms per MiB (batched to >= 1 ms), checks sizes and three sampled objects.
  **First** = time to the first object handed out; **download** = the `get_many` call;
  **total** = last object consumed; **peak disk** = most bytes allocated under the S3 temp
  dir (a 10 ms sampler thread, plus an exact sample when `get_many` returns), max over runs."""

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


PROXY_COLUMNS = ["median peak in flight", "median floor (s)", "median proxy CPU (s)",
                 "held answers late p50 / p99 (ms)"]


def _px(r: dict, field: str) -> float | None:
    return (r.get("proxy") or {}).get(field)


def _floor(r: dict) -> float | None:
    peak, n, delay = _px(r, "peak_in_flight"), _px(r, "requests"), r.get("delay_ms") or 0
    return n * delay / 1e3 / peak if peak and n is not None and delay > 0 else None


def table(runs: list[dict]) -> list[str]:
    by_client: dict[str, list[dict]] = {}
    for r in runs:
        by_client.setdefault(r["client"], []).append(r)
    order = [c for c in CLIENTS if c in by_client] + sorted(set(by_client) - set(CLIENTS))
    base = _med([r for r in by_client.get("fasts3", []) if r["ok"]], "seconds")
    proxied = any(r.get("proxy") for r in runs)
    cols = COLUMNS[:-2] + (PROXY_COLUMNS if proxied else []) + COLUMNS[-2:]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for c in order:
        ok = [r for r in by_client[c] if r["ok"]]
        t = _med(ok, "seconds")
        ratio = f"{t / base:.2f}×" if t and base else "n/a"
        cpus = [
            _f(_med(ok, f)) for f in ("client_cpu_s", "server_cpu_s", "proc_cpu_s", "other_cpu_s")
        ]
        extra = []
        if proxied:
            peaks = [_px(r, "peak_in_flight") for r in ok if _px(r, "peak_in_flight")]
            floors = [f for f in map(_floor, ok) if f is not None]
            late = [_late(ok, q) for q in ("p50", "p99")]
            extra = [_f(median(peaks) if peaks else None, 0),
                     _f(median(floors) if floors else None), _f(_med(ok, "proxy_cpu_s")),
                     f"{_f(late[0], 1)} / {_f(late[1], 1)}"]
        cells = [c, _f(t), _f(_med(ok, "mib_s"), 1), *cpus, *extra, ratio,
                 f"{len(ok)}/{len(by_client[c])}"]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    if proxied:
        lines += ["", _proxy_note(runs)]
    return lines


def _late(runs: list[dict], q: str) -> float | None:
    """Median over runs of how late (ms) the proxy released held answers at quantile q."""
    vals = [v for r in runs if (v := ((r.get("proxy") or {}).get("late_ms") or {}).get(q))
            is not None]  # fmt: skip
    return median(vals) if vals else None


def _proxy_note(runs: list[dict]) -> str:
    """The proxy's own cost: CPU per request and how late it released held answers."""
    px = [r["proxy"] for r in runs if r["ok"] and r.get("proxy") and r["proxy"].get("requests")]
    if not px:
        return "Proxy: no statistics recorded."
    cpu, n = sum(p["cpu_s"] for p in px), sum(p["requests"] for p in px)
    worst = max((p["late_ms"]["max"] or 0 for p in px), default=0)
    busy = max(
        (r["proxy_cpu_s"] / r["seconds"] for r in runs
         if r["ok"] and r.get("proxy_cpu_s") is not None and r.get("seconds")),
        default=0.0,
    )  # fmt: skip
    return (
        f"Proxy ({px[0]['delay_ms']:.0f} ms first-byte delay): {cpu / n * 1e6:.0f} µs of "
        f"proxy CPU per request over {len(px)} runs ({n} requests), at most {busy:.0%} of "
        f"one core in a run; held answers released {_f(_late(runs, 'p50'), 1)} ms late at "
        f"p50 and {_f(_late(runs, 'p99'), 1)} ms at p99 (medians over runs), {worst:.1f} ms "
        "at worst (per client: the \"held answers late\" column)."
    )


STAGE_COLUMNS = [
    "mode", "window (objects)", "median first object (s)", "median download (s)",
    "median total (s)", "median consume (s)", "peak disk (MiB)", "median client CPU (s)",
    "median other CPU (s)", "runs ok/total",
]  # fmt: skip


def stage_table(runs: list[dict]) -> list[str]:
    """The two modes of one stage row, then the status of each target of issue 15."""
    lines = ["| " + " | ".join(STAGE_COLUMNS) + " |", "|" + "---|" * len(STAGE_COLUMNS)]
    ok: dict[str, list[dict]] = {}
    for mode in ("iter_get", "get_many"):
        rs = [r for r in runs if r["op"] == mode]
        if not rs:
            continue
        ok[mode] = good = [r for r in rs if r["ok"]]
        peak = max((r["peak_disk_bytes"] for r in good), default=None)
        window = rs[0].get("window") if mode == "iter_get" else None
        cells = [f"`{mode}`", str(window or "–"), _f(_med(good, "first_s"), 3),
                 _f(_med(good, "download_s")), _f(_med(good, "seconds")),
                 _f(_med(good, "consume_s")), _f(peak / 2**20 if peak is not None else None, 1),
                 _f(_med(good, "client_cpu_s")), _f(_med(good, "other_cpu_s")),
                 f"{len(good)}/{len(rs)}"]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    it, gm = ok.get("iter_get"), ok.get("get_many")
    if not it or not gm:
        return lines + ["", "Targets: need ok runs of both modes."]
    first, dl, total = _med(it, "first_s"), _med(gm, "download_s"), _med(it, "seconds")
    consume = it[0]["consume_nominal_s"]
    bound = max(dl, consume)
    peak, window = max(r["peak_disk_bytes"] for r in it), it[0]["window_bytes"]

    def status(met: bool) -> str:
        return "**met**" if met else "**missed**"

    return lines + [
        "",
        f"- first object: `iter_get` {first:.3f} s = {first / dl:.1%} of the `get_many` "
        f"time ({dl:.2f} s); target < 5 %: {status(first < 0.05 * dl)}",
        f"- total: `iter_get` {total:.2f} s = {total / bound:.2f}× max(download {dl:.2f} s, "
        f"consume {consume:.2f} s); target ≤ 1.10×: {status(total <= 1.1 * bound)}",
        f"- peak disk: `iter_get` {peak / 2**20:.1f} MiB (max over runs) vs window "
        f"{it[0]['window']} × {it[0]['expected_bytes'] // it[0]['expected_files'] / 2**20:g} MiB"
        f" = {window / 2**20:.1f} MiB; target ≤ window: {status(peak <= window)}",
    ]


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
        + ("; **quick mode (small workloads)**" if meta.get("quick") else "")
        + ("; **every row through the latency proxy** (`--via-proxy`)"
           if meta.get("via_proxy") else ""),
        "",
        "## Method",
        "",
        METHOD,
        "",
    ]
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in runs:
        op = "stage" if r.get("kind") == "stage" else r["op"]
        groups.setdefault((r["workload"], op), []).append(r)
    rank = {wid: i for i, wid in enumerate(FULL)}
    for (wid, op), rs in sorted(
        groups.items(), key=lambda kv: (rank.get(kv[0][0], 99), kv[0][0], kv[0][1] != "get")
    ):
        size = rs[0]["expected_bytes"] / 2**20
        title = "stage and consume" if op == "stage" else op.upper()
        delay = rs[0].get("delay_ms") or 0
        via = f", {delay:.0f} ms first-byte latency" if delay else ""
        if not delay and any(r.get("proxy") for r in rs):
            via = ", through the latency proxy without delay (`--via-proxy`)"
        out += [f"## {wid} {title}: {rs[0]['workload_name']} "
                f"({rs[0]['expected_files']} objects, {size:.0f} MiB{via})", ""]  # fmt: skip
        out += (stage_table(rs) if op == "stage" else table(rs)) + [""]
    fails = _failures(runs)
    if fails:
        out += ["## Failed runs", ""] + fails + [""]
    return "\n".join(out)


def write(data: dict, path: Path) -> None:
    """Render ``data`` to ``path``; a hand-written ``ANALYSIS.md`` beside it (where the time
    goes, what would close a missed target) is appended, so a re-render keeps it."""
    text = render(data)
    analysis = path.parent / "ANALYSIS.md"
    if analysis.is_file():
        text += "\n" + analysis.read_text()
    path.write_text(text)
