"""The benchmark's new rows: the stage-and-consume run (bench/stage.py) against a real server,
which rows run for which options (bench/run.py), and how bench/report.py renders the proxy
columns and the status of the stage targets."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import report, stage  # noqa: E402
from bench.run import jobs, parse_args  # noqa: E402
from bench.workloads import FULL, QUICK  # noqa: E402

KiB = 1024


@pytest.fixture
def staged(seaweed, bucket, tmp_path) -> dict:
    """12 x 64 KiB objects under src/ and their local sources: a stage run's config."""
    import boto3

    s3 = boto3.client("s3", endpoint_url=seaweed.endpoint_url, **seaweed.session_vars())
    src = tmp_path / "src"
    src.mkdir()
    names = [f"{i:05d}.bin" for i in range(12)]
    for n in names:
        data = os.urandom(64 * KiB)
        (src / n).write_bytes(data)
        s3.put_object(Bucket=bucket, Key=f"src/{n}", Body=data)
    dest = tmp_path / "dest"
    dest.mkdir()
    sv = seaweed.session_vars()
    return {"bucket": bucket, "src_prefix": "src", "endpoint_url": seaweed.endpoint_url,
            "access_key": sv["aws_access_key_id"], "secret_key": sv["aws_secret_access_key"],
            "region": sv.get("region_name") or "us-east-1", "names": names, "size": 64 * KiB,
            "src_dir": str(src), "dest_dir": str(dest), "window": 3}


@pytest.mark.parametrize("mode", ["iter_get", "get_many"])
def test_stage_run_measures_and_verifies(staged: dict, mode: str) -> None:
    t0 = time.perf_counter()
    with stage.run(dict(staged, mode=mode), t0) as m:
        pass
    assert m["verify_error"] is None
    assert m["files"] == 12 and m["window"] == 3 and m["window_bytes"] == 3 * 64 * KiB
    assert 0 < m["first_s"] <= m["total_s"] <= time.perf_counter() - t0
    assert m["consume_s"] >= m["consume_nominal_s"] == pytest.approx(12 / 16 * 1e-3)
    if mode == "get_many":
        assert m["download_s"] == m["first_s"]
        assert m["peak_disk_bytes"] >= 12 * 64 * KiB  # sampled when every file is on disk
    else:
        assert "download_s" not in m
        assert m["peak_disk_bytes"] <= (3 + 1) * 64 * KiB  # window + the object held
    assert os.listdir(staged["dest_dir"]) == []  # the S3 context removed its temp dir


def test_stage_run_catches_wrong_content(staged: dict) -> None:
    victim = Path(staged["src_dir"], staged["names"][-1])  # one of the sampled objects
    victim.write_bytes(os.urandom(64 * KiB))
    with stage.run(dict(staged, mode="iter_get"), time.perf_counter()) as m:
        pass
    assert m["verify_error"] == f"content of {victim.name} differs from the source"


def test_consumer_sleeps_one_ms_per_mib(tmp_path: Path) -> None:
    size = 256 * KiB
    f = tmp_path / "o"
    f.write_bytes(b"x" * size)
    c = stage.Consumer({"size": size, "src_dir": str(tmp_path), "names": ["a", "b", "c"]})
    for i in range(40):  # 40 x 1/4 MiB = 10 MiB -> 10 ms, paid in >= 1 ms sleeps
        c.take(SimpleNamespace(key=f"k{i}", size=size, path=str(f)))
    c.finish([f"k{i}" for i in range(40)])
    assert c.error is None
    assert 0.010 <= c.spent < 0.060
    c.take(SimpleNamespace(key="k0", size=size, path=str(f)))
    assert c.error == "k0 handed out twice"


def test_disk_bytes_counts_allocated_bytes_recursively(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a").write_bytes(b"x" * 100_000)
    (tmp_path / "b").write_bytes(b"y" * 8192)
    assert 108_192 <= stage.disk_bytes(str(tmp_path)) < 108_192 + 3 * 4096


def test_which_rows_run() -> None:
    a = parse_args(["--quick"])
    assert a.workloads == list(FULL) == ["W1", "W2", "W3", "W4", "W5", "SC1", "SC2"]
    todo = [(w.wid, op, tuple(c)) for w, op, c in jobs([QUICK[x] for x in a.workloads], a)]
    assert ("W4", "get", tuple(a.clients)) in todo and ("W4", "put", tuple(a.clients)) not in todo
    assert ("W5", "put", tuple(a.clients)) in todo
    assert [(w, op) for w, op, c in todo if w == "SC2"] == [("SC2", "iter_get"),
                                                            ("SC2", "get_many")]
    rep1 = jobs([QUICK["SC1"]], a, rep=1)
    assert [op for _, op, _ in rep1] == ["get_many", "iter_get"]  # the first mode alternates
    no_fasts3 = parse_args(["--clients", "boto3", "--workloads", "SC1,W4"])
    assert [(w.wid, op) for w, op, _ in jobs([FULL["SC1"], FULL["W4"]], no_fasts3)] == [
        ("W4", "get")]
    puts = parse_args(["--ops", "put", "--workloads", "W4,SC1"])
    assert jobs([FULL["W4"], FULL["SC1"]], puts) == []
    assert FULL["W4"].src_prefix == FULL["W1"].src_prefix == FULL["SC1"].src_prefix
    assert QUICK["W4"].src_prefix == QUICK["W1"].src_prefix != FULL["W1"].src_prefix
    assert (FULL["W5"].count, FULL["W5"].size, QUICK["W5"].count) == (20_000, 4 * KiB, 2000)


def _run(**kw) -> dict:
    base = {"rep": 0, "ok": True, "workload_name": "x", "expected_files": 2000,
            "expected_bytes": 2000 * 64 * KiB, "client_cpu_s": 1.0, "server_cpu_s": 1.0,
            "proc_cpu_s": 1.0, "other_cpu_s": 0.0, "mib_s": 1.0}
    return {**base, **kw}


def test_report_w4_columns_and_stage_targets() -> None:
    proxy = {"peak_in_flight": 32, "requests": 2000, "cpu_s": 0.5, "delay_ms": 50.0,
             "late_ms": {"p50": 0.5, "p99": 3.0, "max": 9.0}}
    runs = [
        _run(workload="W4", op="get", client="fasts3", seconds=4.0, delay_ms=50.0,
             proxy=proxy, proxy_cpu_s=0.5),
        _run(workload="SC1", kind="stage", op="iter_get", client="fasts3", seconds=2.1,
             first_s=0.05, consume_s=0.13, consume_nominal_s=0.125, window=64,
             window_bytes=64 * 64 * KiB, peak_disk_bytes=65 * 64 * KiB),
        _run(workload="SC1", kind="stage", op="get_many", client="fasts3", seconds=2.2,
             first_s=2.0, download_s=2.0, consume_s=0.13, consume_nominal_s=0.125,
             window=64, window_bytes=64 * 64 * KiB, peak_disk_bytes=2000 * 64 * KiB),
    ]
    md = report.render({"meta": {}, "runs": runs})
    w4 = md[md.index("## W4"):md.index("## SC1")]
    assert "50 ms first-byte latency" in w4 and "median peak in flight" in w4
    assert "| fasts3 | 4.00 |" in w4
    assert "| 32 | 3.12 | 0.50 | 0.5 / 3.0 |" in w4  # floor: 2000 requests x 50 ms / 32
    assert "250 µs of proxy CPU per request" in w4 and "at most 12% of one core" in w4
    sc = md[md.index("## SC1"):]
    assert "2.5% of the `get_many` time (2.00 s); target < 5 %: **met**" in sc
    assert "1.05× max(download 2.00 s, consume 0.12 s); target ≤ 1.10×: **met**" in sc
    assert "4.1 MiB (max over runs) vs window 64 × 0.0625 MiB = 4.0 MiB" in sc
    assert "target ≤ window: **missed**" in sc
    runs[1]["first_s"] = 0.2
    assert "10.0% of the `get_many` time (2.00 s); target < 5 %: **missed**" in report.render(
        {"meta": {}, "runs": runs})
