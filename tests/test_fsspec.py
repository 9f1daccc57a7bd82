"""``fasts3.fsspec``: the filesystem's behaviour against SeaweedFS (and moto where SeaweedFS
differs from S3): storage options, listings and directory semantics, ranges, open modes,
batched transfers (one engine call each, requests in parallel), errors, lifecycle."""

from __future__ import annotations

import io
import os
import pickle
import subprocess
import sys
import textwrap
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

fsspec = pytest.importorskip("fsspec")

from fsspec_util import register, storage_options  # noqa: E402

from fasts3 import S3AccessDenied, S3NotFound, TransferConfig  # noqa: E402
from fasts3.fsspec import FastS3FileSystem, register_s3  # noqa: E402
from fasts3.fsspec import options as fs_options  # noqa: E402
from fasts3.fsspec.options import s3_kwargs  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _protocol() -> None:
    register()


@pytest.fixture
def opts(seaweed) -> dict:
    return storage_options(seaweed)


@pytest.fixture
def fs(opts) -> FastS3FileSystem:
    return fsspec.filesystem("fasts3", **opts)


def _count(monkeypatch, obj, name: str) -> list:
    """Record the calls of ``obj.name`` (the real method still runs)."""
    calls: list = []
    real = getattr(obj, name)

    def spy(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(obj, name, spy)
    return calls


# -- storage options ---------------------------------------------------------------------
def test_s3fs_option_names_map_onto_s3_kwargs():
    kw, block = s3_kwargs(dict(key="K", secret="S", token="T", anon=False, profile="p",
                               requester_pays=True, default_block_size=1 << 20,
                               client_kwargs={"endpoint_url": "http://h:1", "region_name": "r",
                                              "verify": False},
                               s3_additional_kwargs={"ServerSideEncryption": "AES256"},
                               config={"processes": 3}))
    assert kw["session_vars"] == {"aws_access_key_id": "K", "aws_secret_access_key": "S",
                                  "aws_session_token": "T"}
    assert kw["endpoint_url"] == "http://h:1" and kw["region"] == "r"
    assert kw["client_params"] == {"verify": False}
    assert kw["profile"] == "p" and kw["requester_pays"] is True
    assert kw["encryption"] == "AES256" and "anonymous" not in kw
    assert kw["config"] == TransferConfig.from_env(processes=3) and block == 1 << 20
    assert s3_kwargs({"anon": True})[0]["anonymous"] is True


@pytest.mark.parametrize("bad, error", [({"version_aware": True}, TypeError),
                                        ({"s3_additional_kwargs": {"ACL": "x"}}, ValueError),
                                        ({"config": 3}, ValueError)])
def test_unsupported_options_are_refused(bad, error):
    with pytest.raises(error):
        FastS3FileSystem(**bad, skip_instance_cache=True)


def test_client_kwargs_endpoint_and_typed_errors(seaweed, bucket):
    sv = seaweed.session_vars()
    good = FastS3FileSystem(key=sv["aws_access_key_id"], secret=sv["aws_secret_access_key"],
                            client_kwargs={"endpoint_url": seaweed.endpoint_url,
                                           "region_name": "us-east-1"})
    good.pipe_file(f"{bucket}/x", b"1")
    assert good.cat_file(f"fasts3://{bucket}/x") == b"1"
    wrong = FastS3FileSystem(endpoint_url=seaweed.endpoint_url, key=sv["aws_access_key_id"],
                             secret="not-the-secret")
    anon = FastS3FileSystem(endpoint_url=seaweed.endpoint_url, anon=True)
    for other in (wrong, anon):  # SeaweedFS enforces SigV4: both are refused, typed
        with pytest.raises(PermissionError) as e:
            other.cat_file(f"{bucket}/x")
        assert isinstance(e.value, S3AccessDenied) and e.value.url == f"s3://{bucket}/x"
    with pytest.raises(PermissionError):
        wrong.ls(bucket)


def test_requester_pays_is_sent_on_data_and_listing_requests(seaweed, proxy, bucket):
    fs = FastS3FileSystem(**dict(storage_options(seaweed), endpoint_url=proxy.endpoint_url),
                          requester_pays=True, skip_instance_cache=True)
    fs.pipe_file(f"{bucket}/d/k", b"v")
    assert fs.info(bucket)["type"] == "directory" and fs.isdir(f"{bucket}/d")
    assert fs.cat_file(f"{bucket}/d/k") == b"v" and fs.ls(f"{bucket}/d", detail=False)
    sent = {(r.method, "list-type" in r.query): r.headers.get("x-amz-request-payer")
            for r in proxy.records}
    assert sent[("GET", False)] == sent[("GET", True)] == sent[("PUT", False)] == "requester"
    fs.close()


# -- listings and directory semantics ------------------------------------------------------
def test_listing_info_and_directory_semantics(fs, bucket):
    fs.pipe({f"{bucket}/log/a": b"1", f"{bucket}/log/sub/b": b"22",
             f"{bucket}/log_other/c": b"333", f"{bucket}/top": b"t"})
    assert fs.ls(bucket, detail=False) == [f"{bucket}/log", f"{bucket}/log_other",
                                           f"{bucket}/top"]
    entries = {e["name"]: e for e in fs.ls(f"fasts3://{bucket}/log/")}
    assert entries[f"{bucket}/log/a"]["type"] == "file"
    assert entries[f"{bucket}/log/a"]["size"] == 1
    assert entries[f"{bucket}/log/sub"] == {"name": f"{bucket}/log/sub", "size": 0,
                                            "type": "directory", "StorageClass": "DIRECTORY"}
    assert fs.ls(f"{bucket}/top", detail=False) == [f"{bucket}/top"]  # ls of a file
    info = fs.info(f"{bucket}/log/sub/b")
    assert info["type"] == "file" and info["size"] == 2 and info["ETag"].startswith('"')
    assert fs.info(f"{bucket}/log")["type"] == "directory"
    assert fs.info(bucket)["type"] == "directory"
    assert fs.isdir(f"{bucket}/log") and not fs.isfile(f"{bucket}/log")
    assert fs.isfile(f"{bucket}/top") and not fs.isdir(f"{bucket}/top")
    assert fs.exists(f"{bucket}/log/sub") and not fs.exists(f"{bucket}/lo")
    assert bucket in fs.ls("", detail=False)  # the buckets
    for call in (fs.info, fs.ls):
        with pytest.raises(FileNotFoundError):
            call(f"{bucket}/nope")
    assert not fs.exists("no-such-bucket-fasts3-test")
    assert fs.find(f"{bucket}/log") == [f"{bucket}/log/a", f"{bucket}/log/sub/b"]
    assert fs.find(f"{bucket}/log", maxdepth=1) == [f"{bucket}/log/a"]
    assert fs.find(f"{bucket}/log", withdirs=True) == [
        f"{bucket}/log", f"{bucket}/log/a", f"{bucket}/log/sub", f"{bucket}/log/sub/b"]
    assert fs.find(f"{bucket}/top") == [f"{bucket}/top"]
    assert fs.find(f"{bucket}/nope") == []
    assert fs.glob(f"{bucket}/log*/*") == [f"{bucket}/log/a", f"{bucket}/log/sub",
                                           f"{bucket}/log_other/c"]
    assert fs.glob(f"{bucket}/**/b") == [f"{bucket}/log/sub/b"]
    assert fs.du(f"{bucket}/log") == 3
    assert fs.sizes([f"{bucket}/log/a", f"{bucket}/log_other/c", f"{bucket}/log"]) == [1, 3, 0]
    with pytest.raises(FileNotFoundError):
        fs.sizes([f"{bucket}/log/a", f"{bucket}/missing"])


def test_directory_marker_objects(fs, seaweed, bucket):
    client = seaweed.client()
    client.put_object(Bucket=bucket, Key="made/in/console/", Body=b"")
    fs.pipe_file(f"{bucket}/made/file", b"x")
    assert fs.isdir(f"{bucket}/made/in/console")
    assert fs.find(f"{bucket}/made") == [f"{bucket}/made/file"]  # markers are not files
    fs.rm(f"{bucket}/made", recursive=True)
    left = client.list_objects_v2(Bucket=bucket, Prefix="made/").get("Contents", [])
    assert left == []


def test_metadata_methods(fs, bucket):
    path = f"{bucket}/m"
    before = datetime.now(timezone.utc).replace(microsecond=0)
    fs.pipe_file(path, b"one")
    modified = fs.modified(path)
    assert modified.tzinfo is not None and abs((modified - before).total_seconds()) < 60
    key1, sum1 = fs.ukey(path), fs.checksum(path)
    assert key1 == fs.info(path)["ETag"] and isinstance(sum1, int)
    fs.pipe_file(path, b"two")
    assert fs.ukey(path) != key1 and fs.checksum(path) != sum1
    fs.pipe_file(f"{bucket}/d/x", b"1")
    with pytest.raises(IsADirectoryError):
        fs.modified(f"{bucket}/d")


# -- reading -------------------------------------------------------------------------------
DATA = bytes(range(256)) * 40  # 10240 bytes


@pytest.mark.parametrize("start, end", [
    (None, None), (0, 10), (100, 5000), (-100, None), (-300, -200), (10, -10), (None, 7),
    (10000, 20000), (10240, None), (20000, None), (500, 400), (-99999, 3), (0, -99999)])
def test_cat_file_ranges_follow_slicing(fs, bucket, start, end):
    fs.pipe_file(f"{bucket}/r", DATA)
    assert fs.cat_file(f"{bucket}/r", start, end) == DATA[start:end]


def test_cat_many_is_one_batch(fs, bucket, monkeypatch):
    fs.pipe({f"{bucket}/c/{i}": str(i).encode() for i in range(5)})
    fs.pipe_file(f"{bucket}/empty", b"")
    calls = _count(monkeypatch, fs.s3, "get_many")
    got = fs.cat(f"{bucket}/c", recursive=True)
    assert got == {f"{bucket}/c/{i}": str(i).encode() for i in range(5)}
    assert len(calls) == 1 and len(calls[0][0]) == 5
    assert fs.cat(f"{bucket}/c/*")[f"{bucket}/c/3"] == b"3"
    assert fs.cat(f"{bucket}/empty") == b"" and fs.cat_file(f"{bucket}/empty", 0, 5) == b""
    paths = [f"{bucket}/c/1", f"{bucket}/gone"]
    with pytest.raises(FileNotFoundError):
        fs.cat(paths)
    returned = fs.cat(paths, on_error="return")
    assert returned[paths[0]] == b"1" and isinstance(returned[paths[1]], S3NotFound)
    assert fs.cat(paths, on_error="omit") == {paths[0]: b"1"}
    ranges = fs.cat_ranges([f"{bucket}/c/1", f"{bucket}/r-missing", f"{bucket}/c/2"], 0, 1)
    assert ranges[0] == b"1" and isinstance(ranges[1], FileNotFoundError) and ranges[2] == b"2"
    assert not os.listdir(fs.s3.tmpdir)  # downloads read into memory are removed


def test_open_read_binary_and_text(fs, bucket):
    fs.pipe_file(f"{bucket}/t.txt", "héllo\nwörld\n".encode())
    with fs.open(f"fasts3://{bucket}/t.txt", "rb") as f:
        assert f.size == len("héllo\nwörld\n".encode()) and f.read(2) == b"h\xc3"
        f.seek(-6, 2)
        assert f.read() == "wörld\n".encode()[-6:]
        assert f.seekable() and f.path == f"{bucket}/t.txt"
    with fs.open(f"{bucket}/t.txt", "r", encoding="utf-8") as f:
        assert list(f) == ["héllo\n", "wörld\n"]
    assert fs.read_text(f"{bucket}/t.txt") == "héllo\nwörld\n"
    with pytest.raises(FileNotFoundError):
        fs.open(f"{bucket}/none", "rb")
    with pytest.raises(TypeError):
        fs.open(f"{bucket}/t.txt", "rb", no_such_option=1)
    with fs.open(f"{bucket}/t.txt", "rb", cache_type="readahead", block_size=4096) as f:
        assert f.read() == "héllo\nwörld\n".encode()


# -- writing -------------------------------------------------------------------------------
def test_open_write_appears_on_close_only(fs, bucket):
    path = f"{bucket}/w.bin"
    with fs.open(path, "wb") as f:
        f.write(b"abc")
        f.write(b"def")
        assert f.tell() == 6
        assert not fs.exists(path)  # nothing under the final name before close
    assert fs.cat_file(path) == b"abcdef"
    fs.write_text(f"{bucket}/w.txt", "héllo", encoding="utf-8")
    assert fs.cat_file(f"{bucket}/w.txt") == "héllo".encode()
    assert not os.listdir(fs.s3.tmpdir)


@pytest.mark.parametrize("mode", ["wb", "w"])
def test_open_write_compressed(fs, bucket, mode):
    import gzip

    path = f"{bucket}/c.txt.gz"
    with fs.open(path, mode, compression="infer") as f:
        f.write(b"x" * 1000 if "b" in mode else "x" * 1000)
    assert gzip.decompress(fs.cat_file(path)) == b"x" * 1000
    with fs.open(path, "rt", compression="gzip") as f:
        assert f.read() == "x" * 1000


@pytest.mark.parametrize("mode, compression", [("wb", None), ("w", None), ("wb", "gzip"),
                                               ("w", "gzip")])
def test_open_write_aborted_by_exception_uploads_nothing(fs, bucket, mode, compression):
    path = f"{bucket}/aborted"
    with pytest.raises(RuntimeError), fs.open(path, mode, compression=compression) as f:
        f.write(b"partial" if "b" in mode else "partial")
        raise RuntimeError("boom")
    assert not fs.exists(path)
    f = fs.open(path, "wb")
    f.write(b"dropped without close")
    del f  # a dropped file is discarded, never uploaded half-written
    assert not fs.exists(path)
    assert not os.listdir(fs.s3.tmpdir)


def test_open_write_modes(fs, bucket):
    path = f"{bucket}/x"
    with fs.open(path, "xb") as f:
        f.write(b"1")
    with pytest.raises(FileExistsError):
        fs.open(path, "xb")
    with pytest.raises(NotImplementedError):
        fs.open(path, "ab")
    with pytest.raises(FileExistsError):
        fs.pipe_file(path, b"2", mode="create")
    assert fs.cat_file(path) == b"1"
    with pytest.raises(IsADirectoryError):
        fs.open(bucket, "wb")


def test_open_write_multipart(seaweed, bucket):
    fs = FastS3FileSystem(**storage_options(seaweed), skip_instance_cache=True,
                          config={"multipart_threshold": 5 << 20, "part_size": 5 << 20})
    data = os.urandom(11 << 20)
    with fs.open(f"{bucket}/big", "wb") as f:
        for i in range(0, len(data), 1 << 20):
            f.write(data[i:i + (1 << 20)])
    assert fs.info(f"{bucket}/big")["ETag"].endswith('-3"')  # three parts
    assert fs.cat_file(f"{bucket}/big") == data
    fs.close()


def test_transaction_commits_at_the_end(fs, bucket):
    with fs.transaction:
        fs.pipe_file(f"{bucket}/tx/a", b"a")  # not through open(): written at once
        with fs.open(f"{bucket}/tx/b", "wb") as f:
            f.write(b"b")
        assert not fs.exists(f"{bucket}/tx/b")
    assert fs.cat_file(f"{bucket}/tx/b") == b"b"
    with pytest.raises(RuntimeError), fs.transaction:
        with fs.open(f"{bucket}/tx/c", "wb") as f:
            f.write(b"c")
        raise RuntimeError
    assert not fs.exists(f"{bucket}/tx/c")


# -- batched transfers ---------------------------------------------------------------------
def test_get_put_copy_rm_are_one_engine_call_each(fs, bucket, tmp_path, monkeypatch):
    src = tmp_path / "src"
    for i in range(6):
        (src / f"d{i % 2}").mkdir(parents=True, exist_ok=True)
        (src / f"d{i % 2}" / f"f{i}").write_bytes(b"x" * i)
    puts = _count(monkeypatch, fs.s3, "put_files")
    fs.put(str(src), f"{bucket}/up", recursive=True)
    assert len(puts) == 1
    assert fs.find(f"{bucket}/up") == sorted(f"{bucket}/up/d{i % 2}/f{i}" for i in range(6))
    gets = _count(monkeypatch, fs.s3, "get_many")
    fs.get(f"{bucket}/up", str(tmp_path / "down"), recursive=True)
    assert len(gets) == 1 and len(gets[0][0]) == 6
    for i in range(6):
        assert (tmp_path / "down" / f"d{i % 2}" / f"f{i}").read_bytes() == b"x" * i
    copies = _count(monkeypatch, fs.s3, "copy_many")
    fs.copy(f"{bucket}/up", f"{bucket}/cp", recursive=True)
    assert len(copies) == 1 and fs.find(f"{bucket}/cp") == [
        p.replace("/up/", "/cp/") for p in fs.find(f"{bucket}/up")]
    fs.get([f"{bucket}/cp/d0/f0", f"{bucket}/cp/d1/f1"],
           [str(tmp_path / "l0"), str(tmp_path / "l1")])
    assert (tmp_path / "l1").read_bytes() == b"x"
    deletes = _count(monkeypatch, fs.s3, "delete_many")
    fs.rm([f"{bucket}/cp/d0/f0", f"{bucket}/cp/d0/f2", f"{bucket}/cp/d1/f1"])
    assert len(deletes) == 1
    fs.rm(f"{bucket}/up", recursive=True)
    assert fs.find(f"{bucket}/up") == [] and len(fs.find(f"{bucket}/cp")) == 3
    assert not os.listdir(fs.s3.tmpdir)
    buf = io.BytesIO()
    fs.get_file(f"{bucket}/cp/d1/f3", buf)  # to a file object
    assert buf.getvalue() == b"xxx"


def test_glob_get_and_copy_ask_no_request_per_path(fs, bucket, tmp_path, monkeypatch):
    fs.pipe({f"{bucket}/g/{i:02d}.bin": b"%d" % i for i in range(10)})
    fs.pipe_file(f"{bucket}/g/sub/x", b"not matched without recursive")
    control = _count(monkeypatch, fs, "_control")
    heads = _count(monkeypatch, fs.s3, "info_many")
    fs.get(f"{bucket}/g/*", str(tmp_path) + "/")
    fs.copy(f"{bucket}/g/*.bin", f"{bucket}/copied/")
    assert sorted(os.listdir(tmp_path)) == [f"{i:02d}.bin" for i in range(10)]
    assert len(fs.find(f"{bucket}/copied")) == 10
    # the glob's listing typed every path: no listing or HEAD per path to tell dirs apart
    assert len(control) <= 2 and len(heads) <= 2, (control, heads)


def test_batched_requests_run_in_parallel(seaweed, proxy, bucket, tmp_path):
    proxy.latency = 0.3
    fs = FastS3FileSystem(**dict(storage_options(seaweed), endpoint_url=proxy.endpoint_url),
                          skip_instance_cache=True)
    n = 12
    fs.pipe({f"{bucket}/p/{i}": b"%d" % i for i in range(n)})
    t0 = time.monotonic()
    fs.get(f"{bucket}/p/", str(tmp_path / "out") + "/", recursive=True)
    elapsed = time.monotonic() - t0
    assert sorted(os.listdir(tmp_path / "out")) == sorted(str(i) for i in range(n))
    assert proxy.stats.max_inflight >= 4
    assert elapsed < n * proxy.latency / 2, elapsed  # one at a time would take n x latency
    fs.close()


def test_put_create_mode_and_missing_sources(fs, bucket, tmp_path):
    (tmp_path / "a").write_bytes(b"new")
    fs.pipe_file(f"{bucket}/a", b"old")
    with pytest.raises(FileExistsError):
        fs.put(str(tmp_path / "a"), f"{bucket}/a", mode="create")
    assert fs.cat_file(f"{bucket}/a") == b"old"
    with pytest.raises(FileNotFoundError):
        fs.get([f"{bucket}/a", f"{bucket}/missing"],
               [str(tmp_path / "x"), str(tmp_path / "y")])
    with pytest.raises(FileNotFoundError):
        fs.copy([f"{bucket}/missing"], [f"{bucket}/dst"])
    fs.copy(f"{bucket}/missing", f"{bucket}/dst", on_error="ignore")
    assert not fs.exists(f"{bucket}/dst")


def test_get_never_writes_outside_the_destination(moto_server, moto_bucket, tmp_path):
    fs = FastS3FileSystem(**storage_options(moto_server), skip_instance_cache=True)
    fs.pipe({f"{moto_bucket}/d/ok": b"1", f"{moto_bucket}/d/../../../escaped": b"2"})
    dest = tmp_path / "a" / "b"
    with pytest.raises(ValueError):
        fs.get(f"{moto_bucket}/d", str(dest), recursive=True)
    assert not list(tmp_path.rglob("escaped"))
    fs.close()


def test_buckets_mkdir_rmdir(fs, seaweed):
    from buckets import bucket_name

    name = bucket_name("fsspec-mkdir")
    fs.mkdir(f"fasts3://{name}")
    try:
        assert fs.exists(name)
        with pytest.raises(FileExistsError):
            fs.makedirs(name)
        fs.makedirs(name, exist_ok=True)
        fs.mkdir(f"{name}/some/prefix")  # nothing to do: no request, no object
        assert fs.ls(name) == []
        fs.pipe_file(f"{name}/k", b"1")
        fs.rm(name, recursive=True)  # empties, then deletes the bucket
        assert not fs.exists(name)
    finally:
        try:
            seaweed.client().delete_bucket(Bucket=name)
        except Exception:  # noqa: BLE001 - already gone
            pass


# -- lifecycle -----------------------------------------------------------------------------
def test_threads_share_one_context_and_close_ends_it(opts, bucket):
    import threading

    fs = fsspec.filesystem("fasts3", **opts)
    fs.pipe_file(f"{bucket}/k", b"v")
    seen = []

    def other() -> None:  # fsspec caches instances per thread
        other_fs = fsspec.filesystem("fasts3", **opts)
        seen.append((other_fs is fs, other_fs.s3 is fs.s3, other_fs.cat_file(f"{bucket}/k")))

    t = threading.Thread(target=other)
    t.start()
    t.join()
    assert seen == [(False, True, b"v")]
    s3 = fs.s3
    fs.close()
    assert s3 not in fs_options._contexts.values()
    assert fs.cat_file(f"{bucket}/k") == b"v" and fs.s3 is not s3  # a new one on demand


def test_interpreter_exit_closes_the_context(opts, bucket):
    code = textwrap.dedent(f"""
        import sys
        from fasts3.fsspec import FastS3FileSystem
        fs = FastS3FileSystem(**{opts!r})
        fs.pipe_file("{bucket}/k", b"v")
        assert fs.cat_file("{bucket}/k") == b"v"
        print(fs.s3.tmpdir, flush=True)
    """)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    tmpdir = out.stdout.strip()
    assert tmpdir and not os.path.exists(tmpdir)  # removed by the atexit close


def test_pickled_filesystem_works(fs, bucket):
    fs.pipe_file(f"{bucket}/k", b"v")
    clone = pickle.loads(pickle.dumps(fs))
    assert clone.cat_file(f"{bucket}/k") == b"v"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_forked_child_leaves_the_parents_workers_alone(fs, bucket):
    fs.pipe_file(f"{bucket}/k", b"v")
    assert fs.cat_file(f"{bucket}/k") == b"v"  # the parent's pool is running
    parent_s3 = fs.s3
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: use the filesystem, then exit as an interpreter would
        code = 1
        try:
            os.write(w, fs.cat_file(f"{bucket}/k"))
            fs.close()
            fs_options._close_all()  # what atexit runs
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    deadline = time.monotonic() + 60
    while (done := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    if done[0] == 0:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        pytest.fail("the forked child hung while exiting")
    with os.fdopen(r, "rb") as f:
        assert f.read() == b"v"
    assert os.waitstatus_to_exitcode(done[1]) == 0
    assert os.path.isdir(parent_s3.tmpdir)  # not removed by the child
    assert fs.s3 is parent_s3 and fs.cat_file(f"{bucket}/k") == b"v"


# -- registration --------------------------------------------------------------------------
def test_entry_point_in_pyproject_registers_the_protocol(tmp_path):
    """The ``fsspec.specs`` entry point declared in pyproject.toml, installed as package
    metadata, lets a fresh interpreter resolve ``fasts3://`` with nothing imported first."""
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = project["entry-points"]["fsspec.specs"]
    dist = tmp_path / "fasts3_entry_point_probe-0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fasts3-entry-point-probe\n"
                                   "Version: 0\n")
    (dist / "entry_points.txt").write_text(
        "[fsspec.specs]\n" + "".join(f"{k} = {v}\n" for k, v in specs.items()))
    code = textwrap.dedent("""
        import fsspec
        cls = fsspec.get_filesystem_class("fasts3")
        print(cls.__module__, cls.__name__)
    """)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(ROOT)]))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["fasts3.fsspec.core", "FastS3FileSystem"]


def test_register_s3_serves_s3_urls(opts, bucket):
    from fsspec.registry import _registry

    saved = {p: _registry.get(p) for p in ("s3", "s3a")}
    try:
        register_s3()
        fs, path = fsspec.core.url_to_fs(f"s3://{bucket}/k", **opts)
        assert isinstance(fs, FastS3FileSystem) and path == f"{bucket}/k"
        with fsspec.open(f"s3a://{bucket}/k", "wb", **opts) as f:
            f.write(b"via s3a")
        assert fs.cat_file(f"s3://{bucket}/k") == b"via s3a"
    finally:
        for p, cls in saved.items():
            if cls is None:
                _registry.pop(p, None)
            else:
                _registry[p] = cls
