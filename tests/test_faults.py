"""Transfers through a fault-injecting proxy: results stay byte-exact at 0, 10 and 30 % faults
(503 SlowDown, 500, resets before/after headers, truncated bodies, stalls; corrupted bodies on
PUT bodies), and
when retries run out the error names the URLs and nothing partial is left anywhere.
Also the retry policy and the adaptive concurrency (Throttle), alone and through the proxy."""

from __future__ import annotations

import os
import random
import uuid

import pytest
from faultproxy import FaultProxy, MiB, open_uploads, partial_files, quick_config

from fasts3 import S3
from fasts3.engine.retry import RetryPolicy, Throttle
from fasts3.errors import S3RetriesExhausted

# Corrupted bodies are only detectable where the server gives a checksum of what we received:
# whole objects in one response (test_integrity.py). Ranged parts carry none, so "corrupt" is
# kept out of the mixes that download ranges; uploads always carry Content-MD5.
RESPONSE_FAULTS = ("slowdown", "error500", "reset_before", "reset_after", "truncate", "stall",
                   "stall_body")
UPLOAD_FAULTS = RESPONSE_FAULTS + ("corrupt_request",)
# Content-MD5 protects object data; SeaweedFS does not check it on CompleteMultipartUpload's
# XML (AWS does), so only PUT bodies are corrupted.
ONLY_PUT_BODIES = {"corrupt_request": lambda r: r.method == "PUT"}
RATES = [0.0, 0.1, 0.3]


@pytest.fixture
def proxy(seaweed):
    with FaultProxy(seaweed.endpoint_url) as p:
        p.stall_seconds = 3.0  # > read_timeout of quick_config: a stall is a timeout
        yield p


@pytest.fixture(scope="module")
def dataset(seaweed):
    """A bucket with 40 small objects, 2 multipart-sized ones (11 MiB, fetched in 3 ranged
    parts) and one empty object, uploaded without the proxy."""
    name = f"t-faults-{uuid.uuid4().hex[:10]}"
    seaweed.create_bucket(name)
    rnd = random.Random(7)
    data = {f"small/{i:03d}": rnd.randbytes(rnd.randrange(1, 5000)) for i in range(40)}
    data["big/a"] = rnd.randbytes(11 * MiB)
    data["big/b"] = rnd.randbytes(11 * MiB + 12345)
    data["empty"] = b""
    with S3(s3root=f"s3://{name}/d", endpoint_url=seaweed.endpoint_url,
            session_vars=seaweed.session_vars(), progress=False, config=quick_config()) as s3:
        s3.put_many(list(data.items()))
    yield name, data
    try:
        seaweed.client().delete_bucket(Bucket=name)
    except Exception:  # noqa: BLE001 - best effort
        pass


def _check_tmpdir(s3: S3) -> None:
    assert partial_files(s3.tmpdir) == []


@pytest.mark.parametrize("rate", RATES)
def test_get_many_byte_exact_under_faults(dataset, proxy, via, rate):
    name, data = dataset
    proxy.spread(rate, RESPONSE_FAULTS)
    keys = list(data)
    with S3(s3root=f"s3://{name}/d", config=quick_config(), **via) as s3:
        objs = s3.get_many(keys)
        assert [o.key for o in objs] == keys
        for o in objs:
            assert o.blob == data[o.key], o.key
            assert o.size == len(data[o.key])
        _check_tmpdir(s3)
    if rate:
        assert sum(proxy.stats.faults.values()) > 0


@pytest.mark.parametrize("rate", RATES)
def test_get_many_ranges_under_faults(dataset, proxy, via, rate):
    from fasts3 import S3GetObject

    name, data = dataset
    proxy.spread(rate, RESPONSE_FAULTS)
    big = data["big/b"]
    reqs = [S3GetObject("big/b", 3, 6 * MiB), S3GetObject("big/b", 0, -100),
            S3GetObject("big/b", 10 * MiB), S3GetObject("small/001", 1, 2)]
    with S3(s3root=f"s3://{name}/d", config=quick_config(), **via) as s3:
        objs = s3.get_many(reqs)
        assert objs[0].blob == big[3:3 + 6 * MiB]
        assert objs[1].blob == big[-100:]
        assert objs[2].blob == big[10 * MiB:]
        assert objs[3].blob == data["small/001"][1:3]
        _check_tmpdir(s3)


@pytest.mark.parametrize("rate", RATES)
def test_info_many_under_faults(dataset, proxy, via, rate):
    name, data = dataset
    proxy.spread(rate, RESPONSE_FAULTS)
    keys = list(data) + ["missing/x"]
    with S3(s3root=f"s3://{name}/d", config=quick_config(), **via) as s3:
        infos = s3.info_many(keys, return_missing=True)
    assert [i.key for i in infos] == keys
    for i in infos[:-1]:
        assert i.exists and i.size == len(data[i.key])
    assert not infos[-1].exists


@pytest.mark.parametrize("rate", RATES)
def test_listing_under_faults(dataset, proxy, via, rate):
    name, data = dataset
    proxy.spread(rate, RESPONSE_FAULTS)
    with S3(s3root=f"s3://{name}/d", config=quick_config(), **via) as s3:
        rec = s3.list_recursive()
        top = s3.list_paths()
    assert sorted((o.key, o.size) for o in rec) == sorted((k, len(v)) for k, v in data.items())
    assert sorted((o.key.rstrip("/"), o.exists) for o in top) == [
        ("big", False), ("empty", True), ("small", False)]


@pytest.fixture(scope="module")
def many_keys(seaweed):
    """A bucket with 1,100 tiny objects: listing them takes two pages."""
    name = f"t-faults-many-{uuid.uuid4().hex[:10]}"
    seaweed.create_bucket(name)
    with S3(s3root=f"s3://{name}/m", endpoint_url=seaweed.endpoint_url,
            session_vars=seaweed.session_vars(), progress=False, config=quick_config()) as s3:
        s3.put_many([(f"k{i:05d}", str(i)) for i in range(1100)])
    yield name
    try:
        seaweed.client().delete_bucket(Bucket=name)
    except Exception:  # noqa: BLE001 - best effort
        pass


@pytest.mark.parametrize("rate", [0.1, 0.3])
def test_paged_listing_under_faults(many_keys, proxy, via, rate):
    proxy.spread(rate, RESPONSE_FAULTS)
    with S3(s3root=f"s3://{many_keys}/m", config=quick_config(), **via) as s3:
        for _ in range(3):  # each listing is only 2 requests: give the faults a chance
            keys = [o.key for o in s3.list_recursive()]
            assert keys == [f"k{i:05d}" for i in range(1100)]


@pytest.mark.parametrize("rate", RATES)
def test_put_many_under_faults(seaweed, bucket, proxy, via, rate):
    rnd = random.Random(rate)
    items = [(f"s/{i}", rnd.randbytes(rnd.randrange(0, 3000))) for i in range(30)]
    items += [("m/one", rnd.randbytes(11 * MiB)), ("m/two", rnd.randbytes(6 * MiB + 1))]
    proxy.spread(rate, UPLOAD_FAULTS, kind_match=ONLY_PUT_BODIES)
    with S3(s3root=f"s3://{bucket}/up", config=quick_config(inline_put_limit=MiB), **via) as s3:
        done = s3.put_many(items)
        assert [k for k, _ in done] == [k for k, _ in items]
        _check_tmpdir(s3)
    proxy.clear()
    client = seaweed.client()
    for key, value in items:
        body = client.get_object(Bucket=bucket, Key=f"up/{key}")["Body"].read()
        assert body == value, key
    assert open_uploads(client, bucket) == []


def test_put_files_multipart_under_faults(seaweed, bucket, proxy, via, tmp_path):
    paths = []
    for i in range(3):
        p = tmp_path / f"f{i}"
        p.write_bytes(os.urandom(11 * MiB + i))
        paths.append((f"f{i}", str(p)))
    proxy.spread(0.3, UPLOAD_FAULTS, kind_match=ONLY_PUT_BODIES)
    with S3(s3root=f"s3://{bucket}/files", config=quick_config(), **via) as s3:
        s3.put_files(paths)
    proxy.clear()
    client = seaweed.client()
    for key, path in paths:
        body = client.get_object(Bucket=bucket, Key=f"files/{key}")["Body"].read()
        assert body == open(path, "rb").read()
    assert open_uploads(client, bucket) == []


# -- retries exhausted -------------------------------------------------------------------------
def test_get_retries_exhausted_names_urls_and_leaves_nothing(dataset, proxy, via):
    name, data = dataset
    proxy.set_faults(slowdown=1.0)
    keys = [k for k in data if k.startswith("small/")][:10] + ["big/a"]
    with S3(s3root=f"s3://{name}/d", config=quick_config(max_attempts=2), **via) as s3:
        with pytest.raises(S3RetriesExhausted) as ei:
            s3.get_many(keys)
        e = ei.value
        assert e.code == "SlowDown" and e.status == 503
        assert e.urls and set(e.urls) <= {f"s3://{name}/d/{k}" for k in keys}
        assert e.url == e.urls[0]
        assert os.listdir(s3.tmpdir) == []
        proxy.clear()  # the client is still usable afterwards
        assert s3.get("small/000").blob == data["small/000"]


def test_get_multipart_exhausted_midway_leaves_nothing(dataset, proxy, via):
    """The first part arrives, the later ranges all fail: no temp or final file remains."""
    name, _ = dataset
    proxy.set_faults(match=lambda r: r.headers.get("range", "").startswith("bytes=5"),
                     error500=1.0)
    with S3(s3root=f"s3://{name}/d", config=quick_config(max_attempts=2), **via) as s3:
        with pytest.raises(S3RetriesExhausted) as ei:
            s3.get_many(["big/a", "big/b"])
        assert ei.value.code == "InternalError"
        assert os.listdir(s3.tmpdir) == []


def test_put_multipart_exhausted_aborts_upload(seaweed, bucket, proxy, via):
    """Every part upload gets 503: the uploads are aborted, no object appears."""
    proxy.set_faults(match=lambda r: "partNumber" in r.query, slowdown=1.0)
    items = [("a", os.urandom(11 * MiB)), ("b", os.urandom(6 * MiB)), ("c", b"small")]
    with S3(s3root=f"s3://{bucket}/x", config=quick_config(max_attempts=2), **via) as s3:
        with pytest.raises(S3RetriesExhausted) as ei:
            s3.put_many(items)
        assert set(ei.value.urls) <= {f"s3://{bucket}/x/a", f"s3://{bucket}/x/b"}
        assert ei.value.urls
        assert partial_files(s3.tmpdir) == []
    client = seaweed.client()
    assert open_uploads(client, bucket) == []
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert "x/a" not in keys and "x/b" not in keys


def test_put_single_exhausted(seaweed, bucket, proxy, via):
    proxy.set_faults(error500=1.0)
    with S3(s3root=f"s3://{bucket}/y", config=quick_config(max_attempts=3), **via) as s3:
        with pytest.raises(S3RetriesExhausted) as ei:
            s3.put_many([(f"k{i}", b"v") for i in range(5)])
    assert ei.value.status == 500
    assert len(ei.value.urls) >= 1
    assert seaweed.client().list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0


def test_only_failed_tasks_rerun(dataset, proxy, via):
    """One object's GET fails twice; every other object is requested exactly once."""
    name, data = dataset
    target = f"/{name}/d/small/005"
    proxy.set_faults(match=lambda r: r.path == target, error500=1.0, budget=2)
    keys = [k for k in data if k.startswith("small/")]
    with S3(s3root=f"s3://{name}/d", config=quick_config(), **via) as s3:
        objs = s3.get_many(keys)
        assert all(o.blob == data[o.key] for o in objs)
    counts: dict[str, int] = {}
    for r in proxy.records:
        counts[r.path] = counts.get(r.path, 0) + 1
    assert counts[target] == 3
    assert all(n == 1 for p, n in counts.items() if p != target)


def test_stalled_response_times_out_and_retries(dataset, proxy, via):
    name, data = dataset
    proxy.set_faults(stall=1.0, budget=3)
    proxy.stall_seconds = 30.0
    with S3(s3root=f"s3://{name}/d", config=quick_config(read_timeout=0.5), **via) as s3:
        assert s3.get("small/002").blob == data["small/002"]
        assert s3.info("small/003").size == len(data["small/003"])
        assert s3.get("big/a").blob == data["big/a"]
    assert proxy.stats.faults["stall"] == 3


# -- retry policy and throttle -----------------------------------------------------------------
def test_backoff_is_full_jitter_and_capped():
    policy = RetryPolicy(max_attempts=8, base=0.1, cap=1.0)
    for attempt in range(8):
        bound = min(1.0, 0.1 * 2**attempt)
        delays = [policy.delay(attempt) for _ in range(200)]
        assert all(0.0 <= d <= bound for d in delays)
        assert max(delays) > bound / 2  # spread over the whole interval, not a fixed wait


def test_throttle_halves_once_per_generation_and_recovers():
    t = Throttle(16)
    gens = [t.acquire() for _ in range(16)]
    for _ in range(16):
        t.release()
    for g in gens:  # 16 SlowDowns to requests that were in flight together: one cut
        t.throttled(g)
    assert t.limit == 8
    g = t.acquire()
    t.release()
    t.throttled(g)
    assert t.limit == 4
    for _ in range(10):
        t.throttled()  # no generation: always cuts, never below 1
    assert t.limit == 1
    successes = 0
    while t.limit < 16:
        t.succeeded()
        successes += 1
    assert successes == sum(range(1, 16))  # +1 per `limit` successes: additive increase
    t.succeeded()
    assert t.limit == 16


def test_throttle_bounds_concurrency():
    import threading
    import time

    t = Throttle(4)
    t.limit = 2
    peak = 0
    lock = threading.Lock()

    def work():
        nonlocal peak
        with t:
            with lock:
                peak = max(peak, t.active)
            time.sleep(0.01)

    threads = [threading.Thread(target=work) for _ in range(20)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert peak <= 2 and t.active == 0


def test_slowdown_lowers_requests_in_flight_then_recovers(dataset, proxy, via):
    """One worker, 8 threads. A SlowDown storm halves its concurrency down to 1; the requests
    right after it go out (nearly) one by one; by the end of the batch it is back up."""
    name, data = dataset
    keys = [k for k in data if k.startswith("small/")]
    proxy.latency = 0.3
    cfg = quick_config(processes=1, requests_per_process=8, max_attempts=30, backoff_max=0.05)
    with S3(s3root=f"s3://{name}/d", config=cfg, **via) as s3:
        s3.info_many(keys)
        before = proxy.stats.max_inflight
        proxy.reset_stats()
        proxy.set_faults(slowdown=1.0, budget=40)
        s3.info_many(keys + keys)
    after = [r.inflight for r in proxy.records if r.fault is None]
    assert before >= 6  # unthrottled, the 8 threads' requests overlap
    assert proxy.stats.faults["slowdown"] == 40
    # After the storm the limit is 1 and grows by one per `limit` successes: the first six
    # requests are admitted at limits 1, 2, 2, 3, 3, 3 (unthrottled they would see 1..6); a
    # request admitted just before the last cut may still be on its way, hence 4.
    assert max(after[:6]) <= 4, after[:20]
    assert max(after[-20:]) >= 6, after[-20:]  # additive increase brought it back
