"""The same scenario script through ``metaflow.S3`` (the reference, ``tests/mfref.py``) and
``fasts3.S3`` against one SeaweedFS, every observable field diffed.

Each step returns S3Objects (url, key, prefix, exists, downloaded, size, blob, has_info,
metadata, content_type, range_info, last_modified, encryption), plain values, or the exception
it raised (as Metaflow's exception name; a fasts3 error counts as the Metaflow alias it is an
instance of). The set of differences must equal :data:`ALLOWED` exactly: the improvements
fasts3 documents (README, "Switching from metaflow.S3"). A new difference fails the test, and
so does an allowed one that no longer happens. One more documented difference is normalised
instead of listed: ``list_paths`` results are compared sorted by URL (fasts3 sorts them;
Metaflow gives each page's objects, then its prefixes).
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Callable
from typing import Any

import pytest
from mfref import metaflow_factory

import fasts3
import fasts3.metaflow as fm
from fasts3 import S3

#: (step, path) patterns of the differences fasts3 means to have, with the reason.
ALLOWED: dict[tuple[str, str], str] = {
    # Listings carry each object's last-modified time (Metaflow's are None).
    ("list_paths a", "*.last_modified"): "listings report last_modified",
    ("list_paths root", "*.last_modified"): "listings report last_modified",
    ("list_recursive a", "*.last_modified"): "listings report last_modified",
    ("list_recursive all", "*.last_modified"): "listings report last_modified",
    ("list_recursive log", "*.last_modified"): "listings report last_modified",
    ("list ctl", "*.last_modified"): "listings report last_modified",
    ("list_paths", "*.last_modified"): "listings report last_modified",
    ("list_recursive", "*.last_modified"): "listings report last_modified",
    # "log" is a directory: it never covers "log_other" (Metaflow's get_recursive does).
    ("get_recursive log", "len"): "no sibling-prefix leak",
    # A range starting past the end is S3InvalidRange at once; Metaflow's get_many retries
    # the 416 as transient, then raises MetaflowS3Exception.
    ("get_many past end", "raises"): "a bad range raised at once",
    # Plain x-amz-meta-* headers written by other tools are read (Metaflow: None).
    ("get plain metadata", "metadata"): "plain x-amz-meta-* headers readable",
    ("info plain metadata", "metadata"): "plain x-amz-meta-* headers readable",
    # Content type from the key's extension when the caller gives none (Metaflow leaves it to
    # the server, which may guess: SeaweedFS answers text/plain; charset=utf-8, AWS
    # binary/octet-stream). Items 0 1 2 4 5 were put without one; 3 with one.
    ("readback", "[[][01245][]].content_type"): "content type from the extension",
    ("readback info", "[[][01245][]].content_type"): "content type from the extension",
    # S3's 2 KB user-metadata limit is checked before sending (AWS answers 400
    # MetadataTooLarge; SeaweedFS accepts it, so Metaflow's upload goes through).
    ("put metadata over 2 KB", "result"): "2 KB metadata limit checked up front",
    # Typed errors: a wrong secret (403 SignatureDoesNotMatch) is S3AccessDenied, which is
    # still a MetaflowS3Exception; Metaflow retries it as unknown, then raises that.
    **{(f"denied {call}", "raises"): "SignatureDoesNotMatch is S3AccessDenied"
       for call in ("get", "get_many", "list_paths", "list_recursive", "get_recursive", "put",
                    "put_many")},
}

_MF_ERRORS = ["MetaflowS3NotFound", "MetaflowS3AccessDenied", "MetaflowS3URLException",
              "MetaflowS3InvalidObject", "MetaflowS3InvalidRange", "MetaflowS3Exception"]


class Lib:
    """One implementation: its S3 factory and request types."""

    def __init__(self, name: str, make: Callable[..., Any], get_obj: Any, put_obj: Any):
        self.name = name
        self.make = make
        self.Get = get_obj
        self.Put = put_obj


@pytest.fixture
def libs(seaweed, monkeypatch, s3_kwargs, tmp_path):
    from metaflow.plugins.datatools.s3.s3 import S3GetObject, S3PutObject

    mf = metaflow_factory(seaweed, monkeypatch)
    kw = dict(s3_kwargs, tmproot=str(tmp_path))
    return [Lib("metaflow", lambda **k: mf(tmproot=str(tmp_path), **k), S3GetObject,
                S3PutObject),
            Lib("fasts3", lambda **k: S3(**kw, **k), fasts3.S3GetObject, fasts3.S3PutObject)]


# -- normalisation and diff ------------------------------------------------------------------
def _error_name(e: BaseException) -> str:
    from metaflow.exception import MetaflowException

    if isinstance(e, MetaflowException):
        return type(e).__name__
    for name in _MF_ERRORS:
        if isinstance(e, getattr(fm, name)):
            return name
    return f"unexpected {type(e).__name__}: {e}"


def _norm(value: Any, roots: dict[str, str], compare_times: bool) -> Any:
    if isinstance(value, str):
        for root, label in roots.items():
            value = value.replace(root, label)
        return value
    if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):
        return [_norm(v, roots, compare_times) for v in value]
    if hasattr(value, "url") and hasattr(value, "has_info"):
        lm = value.last_modified
        fields = {
            "url": value.url, "key": value.key, "prefix": value.prefix, "exists": value.exists,
            "downloaded": value.downloaded, "size": value.size, "blob": value.blob,
            "has_info": value.has_info, "metadata": value.metadata,
            "content_type": value.content_type,
            "range_info": tuple(value.range_info) if value.range_info is not None else None,
            "last_modified": f"{type(lm).__name__}:{lm if compare_times else lm is not None}",
            "encryption": value.encryption,
        }
        return {k: _norm(v, roots, compare_times) for k, v in fields.items()}
    return value


def _diff(a: Any, b: Any, path: str = "") -> list[tuple[str, Any, Any]]:
    """``[(path, a, b)]`` where ``a`` and ``b`` differ: ``"[2].metadata"``, ``"len"`` (lists
    of different lengths), ``"result"`` (the whole result, e.g. one side raised)."""
    if isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys():
        return [d for k in a for d in _diff(a[k], b[k], f"{path}.{k}" if path else k)]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [(f"{path}.len" if path else "len", a, b)]
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True))
                for d in _diff(x, y, f"{path}[{i}]")]
    return [] if a == b else [(path or "result", a, b)]


def _run(step: Callable[[Any, Lib], Any], s3: Any, lib: Lib) -> Any:
    try:
        return step(s3, lib)
    except Exception as e:  # noqa: BLE001 - the error is the observable
        return {"raises": _error_name(e)}


def _compare(libs: list[Lib], steps: dict[str, Callable], client_args: Callable[[Lib], dict],
             roots: Callable[[Lib], dict[str, str]], compare_times: bool = True,
             order_by_url: tuple[str, ...] = ()) -> list[tuple[str, str, Any, Any]]:
    results: dict[str, dict[str, Any]] = {}
    for lib in libs:
        with lib.make(**client_args(lib)) as s3:
            out = {}
            for name, step in steps.items():
                value = _norm(_run(step, s3, lib), roots(lib), compare_times)
                if name in order_by_url and isinstance(value, list):
                    value = sorted(value, key=lambda o: o["url"])
                out[name] = value
            results[lib.name] = out
    mf, mine = results["metaflow"], results["fasts3"]
    return [(name, path, a, b) for name in steps for path, a, b in _diff(mf[name], mine[name])]


def _check(diffs: list[tuple[str, str, Any, Any]], scenario_steps: dict[str, Callable]) -> None:
    def allowed(name: str, path: str) -> bool:
        return any(name == s and fnmatch.fnmatchcase(path, p) for s, p in ALLOWED)

    unexpected = [d for d in diffs if not allowed(d[0], d[1])]
    seen = {(s, p) for s, p in ALLOWED
            if any(d[0] == s and fnmatch.fnmatchcase(d[1], p) for d in diffs)}
    stale = {(s, p) for s, p in ALLOWED if s in scenario_steps} - seen
    report = "\n".join(f"  {n} {p}: metaflow={a!r:.200} fasts3={b!r:.200}"
                       for n, p, a, b in unexpected)
    assert not unexpected, "differences not in ALLOWED:\n" + report
    assert not stale, f"allowed differences that no longer happen: {sorted(stale)}"


# -- the scenarios ------------------------------------------------------------------------------
META = {"Epoch": 12, "name": "ünï", "f": 1.5, "l": [1, {"a": None}]}


@pytest.fixture
def seeded(seaweed, bucket, libs, tmp_path):
    """Objects written by Metaflow itself (and one by boto3 with plain metadata)."""
    root = f"s3://{bucket}/d"
    with libs[0].make(s3root=root) as mf:
        mf.put("a/x.txt", "hello world", metadata=META, content_type="text/plain")
        mf.put_many([("a/y.json", b'{"k": 1}'), ("a/b/c", b"c"), ("log/1", b"1"),
                     ("log_other/2", b"2"), ("empty", b""), ("crazypath/\x01\xff", b"ctl"),
                     ("crazypath/d/\x02", b"ctl2")])
    seaweed.client().put_object(Bucket=bucket, Key="d/plain/meta", Body=b"p",
                                Metadata={"owner": "alice"})
    return root


def _read_steps(bucket: str) -> dict[str, Callable[[Any, Lib], Any]]:
    x = "a/x.txt"
    return {
        "get": lambda s3, L: s3.get(x),
        "get no metadata": lambda s3, L: s3.get("a/y.json"),
        "get no info": lambda s3, L: s3.get(x, return_info=False),
        "get suffix": lambda s3, L: s3.get(L.Get(x, None, -5)),
        "get_many ranges": lambda s3, L: s3.get_many([
            x, L.Get(x, None, -5), L.Get(x, 3, 4), L.Get(x, 3, None), L.Get(x, 3, 100),
            L.Get(x, None, -100), "empty", x]),
        "get_many no info": lambda s3, L: s3.get_many([x, L.Get(x, 3, 4)], return_info=False),
        "get past end": lambda s3, L: s3.get(L.Get(x, 100, 4)),
        "get_many past end": lambda s3, L: s3.get_many([L.Get(x, 100, 4)]),
        "get missing": lambda s3, L: s3.get("nope"),
        "get_many missing": lambda s3, L: s3.get_many([x, "nope"]),
        "get missing ok": lambda s3, L: s3.get("nope", return_missing=True),
        "get_many missing ok": lambda s3, L: s3.get_many(["nope", x], return_missing=True),
        "get root": lambda s3, L: s3.get(),
        "get absolute url": lambda s3, L: s3.get(f"s3://{bucket}/d/a/x.txt"),
        "info": lambda s3, L: s3.info(x),
        "info no metadata": lambda s3, L: s3.info("a/y.json"),
        "info_many": lambda s3, L: s3.info_many([x, "a/b/c", "empty"]),
        "info missing": lambda s3, L: s3.info("nope"),
        "info_many missing": lambda s3, L: s3.info_many(["nope"]),
        "info missing ok": lambda s3, L: s3.info("nope", return_missing=True),
        "info_many missing ok": lambda s3, L: s3.info_many([x, "nope"], return_missing=True),
        "list_paths root": lambda s3, L: s3.list_paths(),
        "list_paths a": lambda s3, L: s3.list_paths(["a", "log/"]),
        "list_recursive a": lambda s3, L: s3.list_recursive(["a"]),
        "list_recursive all": lambda s3, L: s3.list_recursive(),
        "list_recursive log": lambda s3, L: s3.list_recursive(["log"]),
        "get_recursive a": lambda s3, L: s3.get_recursive(["a", "crazypath/"]),
        "get_recursive log": lambda s3, L: s3.get_recursive(["log"]),
        "get_recursive info": lambda s3, L: s3.get_recursive(["a"], return_info=True),
        "get_all": lambda s3, L: s3.get_all(),
        "get ctl": lambda s3, L: s3.get("crazypath/\x01\xff"),
        "list ctl": lambda s3, L: s3.list_paths(["crazypath"]),
        "get plain metadata": lambda s3, L: s3.get("plain/meta"),
        "info plain metadata": lambda s3, L: s3.info("plain/meta"),
        "put invalid value": lambda s3, L: s3.put_many([("k", 1)]),
    }


def test_reads_through_both_clients(seeded, bucket, libs):
    steps = _read_steps(bucket)
    diffs = _compare(libs, steps, lambda lib: {"s3root": seeded}, lambda lib: {},
                     order_by_url=("list_paths root", "list_paths a", "list ctl"))
    _check(diffs, steps)


def test_full_urls_without_a_root(seeded, bucket, libs):
    root = seeded
    steps = {
        "get": lambda s3, L: s3.get(root + "/a/x.txt"),
        "get_many": lambda s3, L: s3.get_many([root + "/a/x.txt",
                                                L.Get(root + "/empty", None, None)]),
        "info": lambda s3, L: s3.info(root + "/a/b/c"),
        "list_paths": lambda s3, L: s3.list_paths([root + "/a/"]),
        "list_recursive": lambda s3, L: s3.list_recursive([root + "/a"]),
        "get_recursive": lambda s3, L: s3.get_recursive([root + "/a"]),
        "get_recursive info": lambda s3, L: s3.get_recursive([root + "/a/"], return_info=True),
        "relative key": lambda s3, L: s3.get("a/x.txt"),
        "put invalid value": lambda s3, L: s3.put_many([("a", 1)]),
        "put invalid value single": lambda s3, L: s3.put("a", 1),
    }
    diffs = _compare(libs, steps, lambda lib: {}, lambda lib: {},
                     order_by_url=("list_paths",))
    _check(diffs, steps)


def test_writes_through_both_clients(bucket, libs, tmp_path):
    """Each client writes the same objects under its own root, then reads them back; roots
    are normalised away and times compared by type only (the writes differ in time)."""
    files = tmp_path / "files"
    files.mkdir()
    (files / "empty").write_bytes(b"")
    (files / "f.txt").write_bytes(b"from a file")
    roots = {lib.name: f"s3://{bucket}/w-{lib.name}" for lib in libs}
    keys = ["x.txt", "none.bin", "a.csv", "b.json", "empty", "f.txt"]
    steps = {
        "put": lambda s3, L: s3.put("x.txt", "hello", metadata=META),
        "put plain": lambda s3, L: s3.put("none.bin", b"x"),
        "put_many": lambda s3, L: s3.put_many([
            ("a.csv", b"1,2"), L.Put("b.json", value=b"{}", metadata=META,
                                     content_type="application/x-custom")]),
        "put_files": lambda s3, L: s3.put_files([
            ("empty", str(files / "empty")), L.Put("f.txt", path=str(files / "f.txt"),
                                                   metadata={"n": 1})]),
        "put_files missing": lambda s3, L: s3.put_files([("m", str(files / "missing"))]),
        "put no overwrite": lambda s3, L: s3.put("x.txt", "other", overwrite=False),
        "put_many no overwrite": lambda s3, L: s3.put_many(
            [("x.txt", b"other"), ("new", b"new")], overwrite=False),
        "put metadata over 2 KB": lambda s3, L: s3.put("big-meta", b"x",
                                                       metadata={"k": "v" * 3000}),
        "readback": lambda s3, L: s3.get_many(keys),
        "readback info": lambda s3, L: s3.info_many(keys),
    }
    diffs = _compare(libs, steps, lambda lib: {"s3root": roots[lib.name]},
                     lambda lib: {roots[lib.name]: "<root>"}, compare_times=False)
    _check(diffs, steps)
    assert os.path.getsize(files / "empty") == 0


def test_errors_with_wrong_credentials(seeded, seaweed, monkeypatch, s3_kwargs, tmp_path):
    from metaflow.plugins.datatools.s3.s3 import S3GetObject, S3PutObject

    mf = metaflow_factory(seaweed, monkeypatch)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    wrong = dict(s3_kwargs, tmproot=str(tmp_path),
                 session_vars=dict(s3_kwargs["session_vars"],
                                   aws_secret_access_key="not-the-secret"))
    libs = [Lib("metaflow", lambda **k: mf(tmproot=str(tmp_path), **k), S3GetObject,
                S3PutObject),
            Lib("fasts3", lambda **k: S3(**wrong, **k), fasts3.S3GetObject, fasts3.S3PutObject)]
    steps = {
        "denied get": lambda s3, L: s3.get("a/x.txt"),
        "denied get_many": lambda s3, L: s3.get_many(["a/x.txt", "a/b/c"]),
        "denied info": lambda s3, L: s3.info("a/x.txt"),
        "denied info_many": lambda s3, L: s3.info_many(["a/x.txt"]),
        "denied list_paths": lambda s3, L: s3.list_paths(["a"]),
        "denied list_recursive": lambda s3, L: s3.list_recursive(["a"]),
        "denied get_recursive": lambda s3, L: s3.get_recursive(["a"]),
        "denied put": lambda s3, L: s3.put("denied", b"x"),
        "denied put_many": lambda s3, L: s3.put_many([("denied", b"x")]),
    }
    diffs = _compare(libs, steps, lambda lib: {"s3root": seeded}, lambda lib: {})
    _check(diffs, steps)
