"""Bad input, one test each: odd and hostile keys, zero-length objects and ranges, negative
offsets, duplicates, a 100,000-key batch in bounded memory, a missing bucket, wrong and expired
credentials. Keys are checked before anything is sent (the proxy sees no request)."""

from __future__ import annotations

import gc
import os
import uuid

import psutil
import pytest
from faultproxy import FaultProxy, quick_config

from fasts3 import S3, S3GetObject
from fasts3.errors import S3AccessDenied, S3Error, S3InvalidRange, S3NotFound, S3URLError
from fasts3.urls import local_path_for_key


def _inside(directory: str, path: str) -> bool:
    d = os.path.realpath(directory)
    return os.path.commonpath([d, os.path.realpath(path)]) == d


# -- keys --------------------------------------------------------------------------------------
def test_empty_key_and_slash_mean_the_root_itself(bucket, via, proxy):
    """A leading "/" is dropped, so "" and "/" both name the root (Metaflow's rule)."""
    with S3(s3root=f"s3://{bucket}/root", **via) as s3:
        assert s3.info("", return_missing=True).url == f"s3://{bucket}/root"
        assert s3.info("/", return_missing=True).url == f"s3://{bucket}/root"
        assert not s3.info("/", return_missing=True).exists
    with S3(s3root=f"s3://{bucket}", **via) as s3:  # the root is a bucket: not an object
        proxy.reset_stats()
        for call in (lambda: s3.get(""), lambda: s3.get("/"), lambda: s3.info("/"),
                     lambda: s3.put("/", b"x")):
            with pytest.raises(S3URLError):
                call()
    with S3(**via) as s3:  # no root: only full URLs
        for key in ("", "/", "relative/key"):
            with pytest.raises(S3URLError):
                s3.get(key)
    assert proxy.stats.requests == 0


def test_dotdot_and_absolute_keys_stay_inside_local_dirs(moto_bucket, moto_kwargs, tmp_path):
    """Keys with ".." or a leading "/" are ordinary S3 keys (moto keeps them literally);
    their downloads land inside the temp dir, and mapping them to a destination either stays
    inside it or is refused."""
    keys = ["../../evil", "a/../../../etc/passwd", "/abs/x", "..", "a/./b", "a//b"]
    with S3(s3root=f"s3://{moto_bucket}/r", **moto_kwargs) as s3:
        s3.put_many([(k, k.encode()) for k in keys])
        for key, o in zip(keys, s3.get_many(keys), strict=True):
            assert o.blob == key.encode()
            assert _inside(s3.tmpdir, o.path)
            assert os.path.dirname(os.path.realpath(o.path)) == os.path.realpath(s3.tmpdir)
    dest = str(tmp_path / "dest")
    for key in ["../../evil", "a/../../x", "/etc/passwd", "..", ".", "a/./b", "a//b",
                "C:/windows", "a\\..\\b", ""]:
        with pytest.raises(S3URLError):
            local_path_for_key(dest, key)
    for key in ["a/b", "x", "dir/", "...", "a..b/c"]:
        assert _inside(dest, local_path_for_key(dest, key))


def test_key_length_limit_is_1024_bytes(moto_bucket, moto_kwargs):
    root = f"s3://{moto_bucket}/root"
    room = 1024 - len("root/")
    with S3(s3root=root, **moto_kwargs) as s3:
        ok = "k" * room
        assert s3.put(ok, b"long") == f"{root}/{ok}"
        assert s3.get(ok).blob == b"long"
        multibyte = "é" * (room // 2)  # 2 bytes each in UTF-8
        assert s3.info(multibyte, return_missing=True).exists is False
        for too_long in (ok + "k", multibyte + "éé"):
            with pytest.raises(S3URLError):
                s3.put(too_long, b"x")
            with pytest.raises(S3URLError):
                s3.get(too_long)


# -- sizes and ranges --------------------------------------------------------------------------
def test_zero_length_objects_and_ranges(bucket, s3_kwargs):
    with S3(s3root=f"s3://{bucket}/z", **s3_kwargs) as s3:
        s3.put_many([("empty", b""), ("empty.txt", ""), ("five", b"12345")])
        for key in ("empty", "empty.txt"):
            o = s3.get(key)
            assert o.exists and o.blob == b"" and o.size == 0 and os.path.getsize(o.path) == 0
            assert s3.info(key).size == 0
        with pytest.raises(S3URLError):
            S3GetObject("five", 0, 0)  # a zero-length range is refused up front
        for req in (S3GetObject("empty", 0, 10), S3GetObject("five", 5, 1),
                    S3GetObject("five", 99)):
            with pytest.raises(S3InvalidRange):
                s3.get(req)
        assert s3.get(S3GetObject("five", 0, -100)).blob == b"12345"  # suffix, clamped
        assert s3.get(S3GetObject("five", 3, 100)).blob == b"45"  # clamped at the end
        assert s3.get(S3GetObject("five", 4)).blob == b"5"


def test_negative_offsets_are_refused():
    for offset in (-1, -(1 << 40)):
        with pytest.raises(S3URLError):
            S3GetObject("k", offset, 10)
    for bad in ("3", 1.5):
        with pytest.raises(S3URLError):
            S3GetObject("k", bad)
    assert S3GetObject("k", None).offset == 0  # Metaflow's "no offset"


def test_duplicate_keys(bucket, s3_kwargs):
    with S3(s3root=f"s3://{bucket}/dup", **s3_kwargs) as s3:
        s3.put("a", b"abcdef")
        objs = s3.get_many(["a", "a", S3GetObject("a", 1, 2), "a"])
        assert [o.blob for o in objs] == [b"abcdef", b"abcdef", b"bc", b"abcdef"]
        assert len({o.path for o in objs}) == 4  # every result has its own file
        infos = s3.info_many(["a", "a", "missing", "missing"], return_missing=True)
        assert [i.exists for i in infos] == [True, True, False, False]
        done = s3.put_many([("d", b"first"), ("d", b"second")])
        assert [k for k, _ in done] == ["d", "d"]
        assert s3.get("d").blob in (b"first", b"second")  # the same key: one of them wins


def test_100k_key_batch_in_bounded_memory(bucket, s3_kwargs):
    """100,000 HEADs of missing keys (return_missing=True): all answered, in order, and the
    parent's memory grows by well under 1 KiB per key (takes ~30 s on 2 cores)."""
    n = 100_000
    proc = psutil.Process()
    with S3(s3root=f"s3://{bucket}/many", config=quick_config(requests_per_process=16),
            **s3_kwargs) as s3:
        s3.info("warm-up", return_missing=True)
        gc.collect()
        rss = proc.memory_info().rss
        infos = s3.info_many((f"k{i:06d}" for i in range(n)), return_missing=True)
        grown = proc.memory_info().rss - rss
        assert len(infos) == n and not any(i.exists for i in infos)
        assert infos[-1].url.endswith("/many/k099999")
    assert grown < 100 * 1024 * 1024, f"parent RSS grew by {grown / 2**20:.0f} MiB"


# -- buckets and credentials -------------------------------------------------------------------
@pytest.mark.parametrize("server", ["seaweed", "moto"])
def test_missing_bucket(request, server):
    """Reads of a missing bucket raise S3NotFound (NoSuchBucket). Uploads too on moto (and
    AWS); SeaweedFS creates the bucket on the first PUT by an admin, so puts are moto only."""
    srv = request.getfixturevalue("seaweed" if server == "seaweed" else "moto_server")
    root = f"s3://no-such-bucket-{uuid.uuid4().hex[:12]}/x"
    with S3(s3root=root, endpoint_url=srv.endpoint_url, session_vars=srv.session_vars(),
            progress=False, config=quick_config()) as s3:
        calls = [lambda: s3.get("k"), lambda: s3.info("k"), lambda: s3.list_paths(),
                 lambda: s3.get_many(["a", "b"]), lambda: s3.list_recursive()]
        if server == "moto":
            calls += [lambda: s3.put("k", b"v"), lambda: s3.put("big", os.urandom(6 << 20))]
        for call in calls:
            with pytest.raises(S3NotFound) as ei:
                call()
            assert ei.value.url.startswith(root)
        assert s3.get("k", return_missing=True).exists is False


def _denied(s3: S3, proxy: FaultProxy, head_status: int = 403) -> None:
    """Every kind of request is refused at once: S3AccessDenied, one request, no retry."""
    for call in (lambda: s3.get("k"), lambda: s3.put("k", b"v"), lambda: s3.list_paths()):
        proxy.reset_stats()
        with pytest.raises(S3AccessDenied) as ei:
            call()
        assert ei.value.status in (400, 403)
        assert proxy.stats.requests == 1  # refused credentials are not retried
    # A HEAD answer has no body to name the error: a bare 403 is still "access denied", a
    # bare 400 (AWS's answer to an expired token) is a plain S3Error; neither is retried.
    proxy.reset_stats()
    with pytest.raises(S3Error) as ei:
        s3.info("k")
    assert ei.value.status == head_status and proxy.stats.requests == 1
    assert isinstance(ei.value, S3AccessDenied) == (head_status == 403)


def test_wrong_secret_key(seaweed, bucket, proxy):
    sv = dict(seaweed.session_vars(), aws_secret_access_key="not-the-secret")
    with S3(s3root=f"s3://{bucket}/w", endpoint_url=proxy.endpoint_url, session_vars=sv,
            progress=False) as s3:
        _denied(s3, proxy)
        proxy.reset_stats()
        with pytest.raises(S3AccessDenied) as ei:
            s3.get("k")
        assert ei.value.code == "SignatureDoesNotMatch"


def test_wrong_access_key(seaweed, bucket, proxy):
    sv = dict(seaweed.session_vars(), aws_access_key_id="AKIDONOTEXIST")
    with S3(s3root=f"s3://{bucket}/w", endpoint_url=proxy.endpoint_url, session_vars=sv,
            progress=False) as s3:
        _denied(s3, proxy)


def test_expired_session_token(seaweed, bucket, proxy):
    """SeaweedFS refuses a session token it did not issue (403 InvalidAccessKeyId; bare 403
    for HEAD). AWS answers an expired one with 400 ExpiredToken: injected by the proxy, it
    is an S3AccessDenied with that code, not retried."""
    sv = dict(seaweed.session_vars(), aws_session_token="expired-session-token")
    with S3(s3root=f"s3://{bucket}/t", endpoint_url=proxy.endpoint_url, session_vars=sv,
            progress=False) as s3:
        _denied(s3, proxy)
    with S3(s3root=f"s3://{bucket}/t", endpoint_url=proxy.endpoint_url,
            session_vars=seaweed.session_vars(), progress=False) as s3:
        proxy.custom_error = (400, "ExpiredToken", "The provided token has expired.")
        proxy.set_faults(error=1.0)
        _denied(s3, proxy, head_status=400)
        proxy.reset_stats()
        with pytest.raises(S3AccessDenied) as ei:
            s3.get("k")
        assert ei.value.code == "ExpiredToken" and ei.value.status == 400
