"""fasts3 as a drop-in for ``metaflow.S3`` (issue 12): one test per behaviour of the issue's
table, on SeaweedFS, with Metaflow's own client (``tests/mfref.py``) where data crosses.

Metaflow's observable fields, compared field by field, are in ``test_metaflow_diff.py``.
"""

from __future__ import annotations

import collections
import inspect
import logging
import os
import re

import pytest
from faultproxy import quick_config
from mfref import metaflow_factory

import fasts3
import fasts3.metaflow as fm
from fasts3 import (
    S3,
    S3Error,
    S3GetObject,
    S3InvalidObject,
    S3NotFound,
    S3PutObject,
    S3RetriesExhausted,
    S3TransientError,
)
from fasts3.urls import local_path_for_key


@pytest.fixture
def mf_s3(seaweed, monkeypatch):
    """``mf_s3(**kwargs)``: Metaflow's own S3 client on ``seaweed``."""
    return metaflow_factory(seaweed, monkeypatch)


MF_NAMES = ["MetaflowS3Exception", "MetaflowS3NotFound", "MetaflowS3AccessDenied",
            "MetaflowS3URLException", "MetaflowS3InvalidObject", "MetaflowS3InvalidRange"]


# -- names and arguments -------------------------------------------------------------------
def test_metaflow_names_are_fasts3_classes():
    import metaflow.plugins.datatools.s3 as ref

    from fasts3.metaflow import S3 as MfS3
    from fasts3.metaflow import MetaflowS3NotFound

    assert MfS3 is fasts3.S3 and MetaflowS3NotFound is fasts3.S3NotFound
    pairs = dict(zip(MF_NAMES, [fasts3.S3Error, fasts3.S3NotFound, fasts3.S3AccessDenied,
                                fasts3.S3URLError, fasts3.S3InvalidObject,
                                fasts3.S3InvalidRange], strict=True))
    for name, cls in pairs.items():
        assert getattr(fm, name) is cls and hasattr(ref, name), name
    for name in ("S3", "S3Object", "S3GetObject", "S3PutObject", "RangeInfo"):
        assert getattr(fm, name) is getattr(fasts3, name) and hasattr(ref, name), name
    assert set(fm.__all__) >= set(MF_NAMES) | {"S3_TRANSIENT_RETRY_COUNT"}
    assert isinstance(fm.S3_TRANSIENT_RETRY_COUNT, int)


def test_positional_parameters_are_metaflows(tmp_path):
    import metaflow

    init = metaflow.S3.__init__  # wrapped by check_s3_deps, without functools.wraps
    init = next(c.cell_contents for c in init.__closure__ if callable(c.cell_contents))
    ref = [n for n in inspect.signature(init).parameters if n not in ("self", "kwargs")]
    params = inspect.signature(S3).parameters
    positional = [n for n, p in params.items()
                  if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]
    assert positional == ref == ["tmproot", "bucket", "prefix", "run", "s3root", "encryption"]
    assert params["endpoint_url"].kind is inspect.Parameter.KEYWORD_ONLY
    with pytest.raises(TypeError):
        S3(str(tmp_path), None, None, None, None, None, "http://127.0.0.1:1")


def test_sixth_positional_is_encryption(bucket, via, proxy, tmp_path):
    with S3(str(tmp_path), bucket, "p", None, None, "AES256", **via) as s3:
        proxy.reset_stats()
        try:
            s3.put("k", b"x")
        except S3Error:
            pass  # whether this server supports SSE does not matter: what was asked does
        [rec] = [r for r in proxy.records if r.method == "PUT"][:1]
        assert rec.headers["x-amz-server-side-encryption"] == "AES256"


# -- inject_failure_rate and S3_TRANSIENT_RETRY_COUNT ---------------------------------------
_RETRY_LINE = re.compile(r"retrying (\w+) (\S+?)/(.+?) after InjectedFailure")


def _injected(err: str) -> collections.Counter:
    """(kind, key) -> injected failures retried, from the workers' debug log."""
    return collections.Counter((m[1], m[3]) for m in _RETRY_LINE.finditer(err))


def _run_injected(bucket, via, rate, seed, keys, capfd, caplog):
    """The injected failures of one put_many + get_many, from the worker processes' debug
    log (stderr) and the head start's (the calling process's log)."""
    capfd.readouterr()
    caplog.clear()
    cfg = quick_config(inject_seed=seed, max_attempts=4, backoff_base=0.001, backoff_max=0.01)
    with S3(s3root=f"s3://{bucket}/inj", config=cfg, inject_failure_rate=rate, **via) as s3:
        s3.put_many([(k, k.encode()) for k in keys])
        assert [o.blob for o in s3.get_many(keys)] == [k.encode() for k in keys]
    return _injected(capfd.readouterr().err + "\n" + caplog.text)


def test_inject_failure_rate_goes_through_the_retry_path(bucket, via, proxy, capfd, caplog,
                                                         monkeypatch):
    """50 % of attempts fail before they are sent (the server never sees them) and are
    retried; the last attempt is never injected below 100 %, so every transfer succeeds. With
    a seed the same attempts fail on every run."""
    monkeypatch.setenv("FASTS3_WORKER_LOG", "DEBUG")
    caplog.set_level(logging.DEBUG, logger="fasts3")
    keys = [f"k{i:02d}" for i in range(40)]
    proxy.reset_stats()
    first = _run_injected(bucket, via, 50, 7, keys, capfd, caplog)
    sent = collections.Counter(r.method for r in proxy.records)
    assert sent["PUT"] == len(keys)  # injected attempts never reach the server
    assert sent["GET"] == len(keys)
    # 3 injectable attempts at 50 %: 40 * (1/2 + 1/4 + 1/8) = 35 expected per kind
    for kind in ("put", "get"):
        n = sum(v for (k, _), v in first.items() if k == kind)
        assert 15 <= n <= 60, (kind, n)
        assert max(v for (k, _), v in first.items() if k == kind) <= 3
    again = _run_injected(bucket, via, 50, 7, keys, capfd, caplog)
    assert again == first  # deterministic per seed
    other = _run_injected(bucket, via, 50, 8, keys, capfd, caplog)
    assert other != first


def test_inject_failure_rate_100_exhausts_retries_without_sending(bucket, via, proxy,
                                                                  s3_kwargs):
    with S3(s3root=f"s3://{bucket}/inj", **s3_kwargs) as s3:
        s3.put("k", b"v")
    cfg = quick_config(max_attempts=3, backoff_base=0.001)
    with S3(s3root=f"s3://{bucket}/inj", config=cfg, inject_failure_rate=100, **via) as s3:
        proxy.reset_stats()
        for call in (lambda: s3.get("k"), lambda: s3.put("k2", b"x"), lambda: s3.info("k")):
            with pytest.raises(S3RetriesExhausted) as e:
                call()
            assert e.value.code == "InjectedFailure" and "after 3 attempts" in str(e.value)
        assert proxy.stats.requests == 0
        assert [o.key for o in s3.list_paths()] == ["k"]  # listings are not injected
    with pytest.raises(ValueError):
        S3(config=quick_config(inject_failure_rate=101))


def test_injection_settings_from_the_environment(monkeypatch):
    monkeypatch.setenv("FASTS3_INJECT_FAILURE_RATE", "25")
    monkeypatch.setenv("FASTS3_INJECT_SEED", "5")
    cfg = fasts3.TransferConfig.from_env()
    assert (cfg.inject_failure_rate, cfg.inject_seed) == (25, 5)
    monkeypatch.delenv("FASTS3_INJECT_SEED")
    assert fasts3.TransferConfig.from_env().inject_seed is None


def test_transient_retry_count_is_read_when_transfers_run(bucket, via, monkeypatch):
    cfg = quick_config(max_attempts=3, backoff_base=0.001, backoff_max=0.01)

    def attempts(s3) -> int:
        with pytest.raises(S3RetriesExhausted) as e:
            s3.get("k")
        return int(re.search(r"after (\d+) attempts", str(e.value))[1])

    with S3(s3root=f"s3://{bucket}/r", config=cfg, inject_failure_rate=100, **via) as s3:
        assert attempts(s3) == 3  # left alone: the config decides
        monkeypatch.setattr(fm, "S3_TRANSIENT_RETRY_COUNT", 1)
        assert attempts(s3) == 2  # patched mid-context: the next transfer obeys
        monkeypatch.setattr(fm, "S3_TRANSIENT_RETRY_COUNT", 6)
        assert attempts(s3) == 7
        monkeypatch.setattr(fm, "S3_TRANSIENT_RETRY_COUNT", -1)
        with pytest.raises(ValueError):
            s3.get("k")
        monkeypatch.undo()
        assert attempts(s3) == 3


# -- ranges, objects, missing keys ----------------------------------------------------------
def test_suffix_range_with_offset_none(bucket, s3_kwargs):
    from metaflow.plugins.datatools.s3.s3 import S3GetObject as MfGet

    with S3(s3root=f"s3://{bucket}/r", **s3_kwargs) as s3:
        s3.put("k", b"0123456789")
        for req in (S3GetObject("k", None, -5), MfGet("k", None, -5), MfGet("k", offset=None,
                                                                           length=-5)):
            o = s3.get(req)
            assert (o.blob, tuple(o.range_info)) == (b"56789", (10, 5, 5))
        assert [o.blob for o in s3.get_many([MfGet("k", None, 3), MfGet("k", None, None)])] == [
            b"012", b"0123456789"]


def test_put_files_of_an_empty_file(bucket, s3_kwargs, tmp_path):
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    with S3(s3root=f"s3://{bucket}/e", **s3_kwargs) as s3:
        assert [k for k, _ in s3.put_files([("e1", str(empty)),
                                            S3PutObject("e2", path=str(empty),
                                                        metadata={"n": 0})])] == ["e1", "e2"]
        objs = s3.get_many(["e1", "e2"])
        assert [(o.blob, o.size) for o in objs] == [(b"", 0), (b"", 0)]
        assert objs[1].metadata == {"n": 0}


def test_invalid_value_is_reported_before_a_bad_key(bucket, s3_kwargs):
    """As in Metaflow, a value that cannot be uploaded is the error, whatever the key."""
    with S3(**s3_kwargs) as s3:  # no root: "a" is not a valid key either
        for call in (lambda: s3.put_many([("a", 1)]), lambda: s3.put("a", 1),
                     lambda: s3.put_many([("a", None)]), lambda: s3.put("a", None)):
            with pytest.raises(S3InvalidObject) as e:
                call()
            assert e.value.url == "a"
    with S3(s3root=f"s3://{bucket}/r", **s3_kwargs) as s3:
        with pytest.raises(S3InvalidObject) as e:
            s3.put_many([("ok", b"1"), ("k", 1.5)])
        assert e.value.url == f"s3://{bucket}/r/k"


def test_info_and_get_of_a_missing_key_raise_one_error(bucket, s3_kwargs):
    url = f"s3://{bucket}/r/missing"
    with S3(s3root=f"s3://{bucket}/r", **s3_kwargs) as s3:
        for call in (lambda: s3.get("missing"), lambda: s3.info("missing"),
                     lambda: s3.get_many(["missing"]), lambda: s3.info_many(["missing"])):
            with pytest.raises(S3NotFound) as e:
                call()
            assert (e.value.url, e.value.code, e.value.status) == (url, "NoSuchKey", 404)


# -- keys with control characters ---------------------------------------------------------
CTL_KEYS = ["crazypath/\x01\xff", "crazypath/tab\there", "crazypath/line\nbreak/x",
            "crazypath/cr\r", "crazypath/\x1f\x7f\x85", "crazypath/sp ace+plus%25"]


def test_control_character_keys_round_trip(seaweed, bucket, via, proxy, tmp_path):
    """On SeaweedFS, which stores every control character but NUL (it answers InvalidRequest;
    moto loses keys with a newline, a 404 on PUT). Listings ask for encoding-type=url: XML
    1.0 cannot carry these keys."""
    data = {k: f"body of {k!r}".encode() for k in CTL_KEYS}
    src = tmp_path / "src"
    src.write_bytes(b"from a file")
    root = f"s3://{bucket}/c"
    with S3(s3root=root, **via) as s3:
        assert [k for k, _ in s3.put_many(list(data.items()))] == CTL_KEYS
        assert s3.put("crazypath/\x02one", b"single") == root + "/crazypath/\x02one"
        s3.put_files([("crazypath/\x03file", str(src))])
        data.update({"crazypath/\x02one": b"single", "crazypath/\x03file": b"from a file"})
        listed = seaweed.client().list_objects_v2(Bucket=bucket, Prefix="c/")["Contents"]
        assert sorted(o["Key"] for o in listed) == sorted("c/" + k for k in data)  # boto3 agrees
        objs = s3.get_many(list(data))
        assert {o.key: o.blob for o in objs} == data
        assert not any(re.search(r"[\x00-\x1f\x7f-\x9f]", n) for n in os.listdir(s3.tmpdir))
        assert s3.info("crazypath/\x01\xff").size == len(data["crazypath/\x01\xff"])
        proxy.reset_stats()
        assert sorted(o.key for o in s3.list_recursive(["crazypath"])) == sorted(
            k.split("/", 1)[1] for k in data)
        paths = s3.list_paths(["crazypath"])
        assert sorted((o.key, o.exists) for o in paths) == sorted(
            [(k.split("/", 1)[1], True) for k in data if k.count("/") == 1]
            + [("line\nbreak", False)])
        lists = [r for r in proxy.records if "list-type" in r.query]
        assert lists and all(r.query.get("encoding-type") == "url" for r in lists)
        got = s3.get_recursive(["crazypath"])
        assert {o.key: o.blob for o in got} == {k.split("/", 1)[1]: v for k, v in data.items()}
    dest = str(tmp_path / "dest")
    for key in data:
        path = local_path_for_key(dest, key)
        assert path.startswith(dest + "/") and not re.search(r"[\x00-\x1f\x7f-\x9f]", path)


def test_cli_copies_control_character_keys_to_safe_names(seaweed, bucket, s3_kwargs,
                                                          monkeypatch, tmp_path):
    from fasts3.cli import main

    with S3(s3root=f"s3://{bucket}/c", **s3_kwargs) as s3:
        s3.put_many([("crazypath/\x01\xff", b"1"), ("crazypath/a\nb/c", b"2")])
    for name, value in seaweed.env().items():
        monkeypatch.setenv(name, value)
    dest = tmp_path / "dest"
    assert main(["cp", "-r", "-q", f"s3://{bucket}/c/crazypath", str(dest)]) == 0
    got = {str(p.relative_to(dest)): p.read_bytes() for p in dest.rglob("*") if p.is_file()}
    assert got == {"%01\xff": b"1", "a%0Ab/c": b"2"}


def test_unparseable_listing_is_a_permanent_typed_error(bucket, via, proxy):
    with S3(s3root=f"s3://{bucket}/g", config=quick_config(), **via) as s3:
        s3.put("k", b"v")
        proxy.reset_stats()
        proxy.set_faults(garble=1.0, match=lambda r: "list-type" in r.query)
        with pytest.raises(S3Error) as e:
            s3.list_paths()
        assert e.value.code == "MalformedResponse" and e.value.url == f"s3://{bucket}/g"
        assert not isinstance(e.value, S3TransientError)
        assert proxy.stats.requests == 1  # not retried
        proxy.clear()
        assert [o.key for o in s3.list_paths()] == ["k"]


# -- metadata crosses both ways -------------------------------------------------------------
META = {"Epoch": 12, "name": "ünï ✓", "f": 1.5, "l": [1, {"a": None}], "b": True, "s": ""}


def test_metadata_written_by_fasts3_reads_the_same_in_metaflow(bucket, s3_kwargs, mf_s3,
                                                               tmp_path):
    src = tmp_path / "f.bin"
    src.write_bytes(b"file")
    root = f"s3://{bucket}/m"
    with S3(s3root=root, **s3_kwargs) as s3:
        s3.put("one", b"1", metadata=META)
        s3.put_many([S3PutObject("many", b"2", metadata=META)])
        s3.put_files([S3PutObject("file", path=str(src), metadata=META)])
        s3.put("none", b"0")
    keys = ["one", "many", "file"]
    with mf_s3(s3root=root) as mf:
        assert [o.metadata for o in mf.get_many(keys)] == [META] * 3
        assert [o.metadata for o in mf.info_many(keys)] == [META] * 3
        assert mf.get("one").metadata == META and mf.info("file").metadata == META
        assert mf.info("none").metadata is None


def test_metadata_written_by_metaflow_reads_the_same_in_fasts3(bucket, s3_kwargs, mf_s3):
    from metaflow.plugins.datatools.s3.s3 import S3PutObject as MfPut

    root = f"s3://{bucket}/m"
    with mf_s3(s3root=root) as mf:
        mf.put("one", b"1", metadata=META)
        mf.put_many([MfPut("many", b"2", metadata=META)])
        mf.put("none", b"0")
    with S3(s3root=root, **s3_kwargs) as s3:
        assert [o.metadata for o in s3.get_many(["one", "many"])] == [META] * 2
        assert [o.metadata for o in s3.info_many(["one", "many"])] == [META] * 2
        [rec] = s3.get_recursive(["one"], return_info=True)
        assert rec.metadata == META
        assert s3.get("none").metadata is None and s3.info("none").metadata is None
