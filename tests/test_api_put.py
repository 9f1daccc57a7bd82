"""S3.put / put_many / put_files against SeaweedFS: accepted values, overwrite=False, content
types, metadata (incl. Metaflow's), validation before anything is sent, and S3(run=...)."""

from __future__ import annotations

import collections
import io
import json
import os
import uuid

import pytest
from buckets import scratch_bucket

from fasts3 import S3, S3InvalidObject, S3NotFound, S3PutObject, S3URLError


@pytest.fixture(scope="module")
def bucket(seaweed):
    with scratch_bucket(seaweed, "api-put") as name:
        yield name


@pytest.fixture(scope="module")
def client(seaweed):
    return seaweed.client()


@pytest.fixture(scope="module")
def s3(seaweed, bucket, tmp_path_factory):
    with S3(s3root=f"s3://{bucket}/root", endpoint_url=seaweed.endpoint_url,
            session_vars=seaweed.session_vars(), progress=False,
            tmproot=str(tmp_path_factory.mktemp("put"))) as s3:
        yield s3


@pytest.fixture
def prefix(request):
    """A per-test key prefix, so tests sharing the module's bucket never collide."""
    return f"{request.node.name[:40].replace('[', '-').replace(']', '')}-{uuid.uuid4().hex[:6]}"


def read(client, bucket, key):
    return client.get_object(Bucket=bucket, Key="root/" + key)["Body"].read()


def mf_attrs(head_response: dict) -> dict:
    """The metadata dict stored Metaflow's way (JSON in one x-amz-meta header)."""
    return json.loads(head_response["Metadata"]["metaflow-user-attributes"])


def head(client, bucket, key):
    return client.head_object(Bucket=bucket, Key="root/" + key)


def listed(client, bucket, prefix):
    resp = client.list_objects_v2(Bucket=bucket, Prefix="root/" + prefix)
    return [o["Key"] for o in resp.get("Contents", [])]


# -- put: accepted values ----------------------------------------------------------------
def test_put_str_is_utf8(s3, client, bucket, prefix):
    url = s3.put(prefix + "/s", "héllo ✓")
    assert url == f"s3://{bucket}/root/{prefix}/s"
    assert read(client, bucket, prefix + "/s") == "héllo ✓".encode()
    assert s3.get(prefix + "/s").text == "héllo ✓"


@pytest.mark.parametrize("value", [b"\x00\x01bytes", bytearray(b"ba"), memoryview(b"mv"), b""],
                         ids=["bytes", "bytearray", "memoryview", "empty"])
def test_put_bytes_like(s3, client, bucket, prefix, value):
    s3.put(prefix + "/b", value)
    assert read(client, bucket, prefix + "/b") == bytes(value)


def test_put_binary_file_objects(s3, client, bucket, prefix, tmp_path):
    s3.put(prefix + "/bio", io.BytesIO(b"from BytesIO"))
    assert read(client, bucket, prefix + "/bio") == b"from BytesIO"
    path = tmp_path / "f.bin"
    path.write_bytes(b"from a file" * 1000)
    with open(path, "rb") as f:
        s3.put(prefix + "/file", f)
    assert read(client, bucket, prefix + "/file") == b"from a file" * 1000
    with open(path, "rb", buffering=0) as f:  # raw (unbuffered) file
        s3.put(prefix + "/raw", f)
    assert read(client, bucket, prefix + "/raw") == b"from a file" * 1000


def test_put_files_empty_file(s3, client, bucket, prefix, tmp_path):
    # an empty local file is sent from its path like any other (sendfile refuses count 0)
    (tmp_path / "empty").write_bytes(b"")
    s3.put_files([(prefix + "/empty", str(tmp_path / "empty"))])
    assert read(client, bucket, prefix + "/empty") == b""
    assert s3.info(prefix + "/empty").size == 0


def test_put_value_larger_than_inline_limit(s3, client, bucket, prefix):
    data = bytes(range(256)) * (s3._config.inline_put_limit // 256 + 7)
    s3.put(prefix + "/big", data)
    assert read(client, bucket, prefix + "/big") == data
    s3.put_many([(prefix + "/big2", data), (prefix + "/file", io.BytesIO(data))])
    assert read(client, bucket, prefix + "/file") == data
    # values staged in the temp root are removed once uploaded
    assert [n for n in os.listdir(s3.tmpdir) if "big" in n or "file" in n] == []


def test_put_leading_slash_dropped(s3, client, bucket, prefix):
    assert s3.put("/" + prefix + "/x", b"1") == f"s3://{bucket}/root/{prefix}/x"
    assert read(client, bucket, prefix + "/x") == b"1"


@pytest.mark.parametrize("value", [
    123, 1.5, None, {"a": 1}, ["x"], object(), io.StringIO("text"), io.StringIO(""),
], ids=["int", "float", "None", "dict", "list", "object", "StringIO", "empty-StringIO"])
def test_put_rejects_other_values(s3, client, bucket, prefix, value):
    with pytest.raises(S3InvalidObject) as e:
        s3.put(prefix + "/bad", value)
    assert isinstance(e.value, TypeError)
    assert e.value.url == f"s3://{bucket}/root/{prefix}/bad"
    assert listed(client, bucket, prefix) == []


def test_put_rejects_text_and_write_only_files(s3, client, bucket, prefix, tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("text")
    with open(path) as f:
        with pytest.raises(S3InvalidObject):
            s3.put(prefix + "/t", f)
    with open(tmp_path / "w.bin", "wb") as f:
        with pytest.raises(S3InvalidObject):
            s3.put(prefix + "/w", f)
    assert listed(client, bucket, prefix) == []


# -- put_many / put_files ----------------------------------------------------------------
def test_put_many_returns_uploaded_in_input_order(s3, client, bucket, prefix):
    items = [(f"{prefix}/k{i}", f"v{i}") for i in (3, 1, 2)]
    items.insert(1, S3PutObject(f"{prefix}/obj.bin", value=b"obj", content_type="x/y",
                                metadata={"m": "1"}))
    items.append([f"{prefix}/list-pair", io.BytesIO(b"lp")])
    result = s3.put_many(items)
    keys = [f"{prefix}/k3", f"{prefix}/obj.bin", f"{prefix}/k1", f"{prefix}/k2",
            f"{prefix}/list-pair"]
    assert result == [(k, f"s3://{bucket}/root/{k}") for k in keys]
    assert read(client, bucket, f"{prefix}/k1") == b"v1"
    assert read(client, bucket, f"{prefix}/list-pair") == b"lp"
    h = head(client, bucket, f"{prefix}/obj.bin")
    assert h["ContentType"] == "x/y" and mf_attrs(h) == {"m": "1"}
    assert s3.put_many([]) == []


# Metaflow's S3PutObject is a namedtuple; flows that switch imports keep passing those.
MetaflowPut = collections.namedtuple(
    "S3PutObject", "key value path content_type encryption metadata", defaults=(None,) * 5)


def test_metaflow_style_put_objects(s3, client, bucket, prefix, tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"from path")
    result = s3.put_many([MetaflowPut(f"{prefix}/v", value=b"val", metadata={"a": "1"})])
    assert result == [(f"{prefix}/v", f"s3://{bucket}/root/{prefix}/v")]
    s3.put_files([MetaflowPut(f"{prefix}/p", path=str(path), content_type="text/x")])
    assert read(client, bucket, f"{prefix}/v") == b"val"
    assert mf_attrs(head(client, bucket, f"{prefix}/v")) == {"a": "1"}
    assert read(client, bucket, f"{prefix}/p") == b"from path"
    assert head(client, bucket, f"{prefix}/p")["ContentType"] == "text/x"


@pytest.mark.parametrize("bad", [("k", 5), ("k", None), "abc", ("k", b"v", "extra"), 42],
                         ids=["int-value", "None-value", "bare-str", "triple", "int"])
def test_put_many_invalid_item_sends_nothing(s3, client, bucket, prefix, bad):
    if isinstance(bad, tuple):
        bad = (f"{prefix}/{bad[0]}",) + bad[1:]
    with pytest.raises(S3InvalidObject):
        s3.put_many([(f"{prefix}/first", b"1"), bad, (f"{prefix}/last", b"2")])
    assert listed(client, bucket, prefix) == []


def test_put_files(s3, client, bucket, prefix, tmp_path):
    paths = []
    for i in range(3):
        p = tmp_path / f"f{i}"
        p.write_bytes(b"file %d" % i)
        paths.append(p)
    result = s3.put_files([(f"{prefix}/a.csv", str(paths[0])),
                           S3PutObject(f"{prefix}/b", path=paths[1], metadata={"k": "v"},
                                       content_type="text/plain"),
                           (f"{prefix}/c", paths[2])])
    assert [k for k, _ in result] == [f"{prefix}/a.csv", f"{prefix}/b", f"{prefix}/c"]
    assert [read(client, bucket, k) for k, _ in result] == [b"file 0", b"file 1", b"file 2"]
    assert head(client, bucket, f"{prefix}/a.csv")["ContentType"] == "text/csv"
    h = head(client, bucket, f"{prefix}/b")
    assert h["ContentType"] == "text/plain" and mf_attrs(h) == {"k": "v"}


def test_put_files_missing_local_file_sends_nothing(s3, client, bucket, prefix, tmp_path):
    good = tmp_path / "good"
    good.write_bytes(b"g" * 10)
    missing = str(tmp_path / "does-not-exist")
    with pytest.raises(S3NotFound) as e:
        s3.put_files([(f"{prefix}/1", str(good)), (f"{prefix}/2", str(good)),
                      S3PutObject(f"{prefix}/3", path=missing)])
    assert isinstance(e.value, FileNotFoundError)
    assert e.value.url == missing
    assert listed(client, bucket, prefix) == []


def test_put_files_directory_rejected_before_sending(s3, client, bucket, prefix, tmp_path):
    good = tmp_path / "good"
    good.write_bytes(b"g")
    with pytest.raises(S3InvalidObject):
        s3.put_files([(f"{prefix}/1", str(good)), (f"{prefix}/2", str(tmp_path))])
    assert listed(client, bucket, prefix) == []


# -- overwrite=False -----------------------------------------------------------------------
def test_put_overwrite_false_leaves_existing(s3, client, bucket, prefix):
    url = s3.put(prefix + "/k", "original", metadata={"v": "1"})
    assert s3.put(prefix + "/k", "new", overwrite=False, metadata={"v": "2"}) == url
    assert read(client, bucket, prefix + "/k") == b"original"
    assert mf_attrs(head(client, bucket, prefix + "/k")) == {"v": "1"}
    assert s3.put(prefix + "/fresh", "new", overwrite=False) == f"s3://{bucket}/root/{prefix}/fresh"
    assert read(client, bucket, prefix + "/fresh") == b"new"
    s3.put(prefix + "/k", "replaced")  # overwrite=True is the default
    assert read(client, bucket, prefix + "/k") == b"replaced"


def test_put_many_and_files_overwrite_false(s3, client, bucket, prefix, tmp_path):
    s3.put_many([(f"{prefix}/a", "A"), (f"{prefix}/c", "C")])
    result = s3.put_many([(f"{prefix}/a", "A2"), (f"{prefix}/b", "B2"), (f"{prefix}/c", "C2"),
                          (f"{prefix}/d", "D2")], overwrite=False)
    assert result == [(f"{prefix}/b", f"s3://{bucket}/root/{prefix}/b"),
                      (f"{prefix}/d", f"s3://{bucket}/root/{prefix}/d")]
    assert [read(client, bucket, f"{prefix}/{k}") for k in "abcd"] == [b"A", b"B2", b"C", b"D2"]
    f = tmp_path / "f"
    f.write_bytes(b"F")
    result = s3.put_files([(f"{prefix}/a", str(f)), (f"{prefix}/e", str(f))], overwrite=False)
    assert [k for k, _ in result] == [f"{prefix}/e"]
    assert read(client, bucket, f"{prefix}/a") == b"A"


# -- content types -----------------------------------------------------------------------
@pytest.mark.parametrize("name, ctype", [
    ("t.csv", "text/csv"),
    ("t.json", "application/json"),
    ("t.parquet", "application/vnd.apache.parquet"),
    ("t.jsonl", "application/jsonl"),
    ("t.unknownext", "binary/octet-stream"),
    ("noext", "binary/octet-stream"),
])
def test_content_type_from_extension(s3, client, bucket, prefix, name, ctype):
    s3.put(f"{prefix}/{name}", b"x")
    assert head(client, bucket, f"{prefix}/{name}")["ContentType"] == ctype
    assert s3.info(f"{prefix}/{name}").content_type == ctype
    s3.put_many([(f"{prefix}/many-{name}", b"x")])
    assert head(client, bucket, f"{prefix}/many-{name}")["ContentType"] == ctype


def test_explicit_content_type_wins(s3, client, bucket, prefix):
    s3.put(f"{prefix}/t.csv", b"x", content_type="application/x-custom")
    assert head(client, bucket, f"{prefix}/t.csv")["ContentType"] == "application/x-custom"
    assert s3.get(f"{prefix}/t.csv").content_type == "application/x-custom"


# -- metadata ------------------------------------------------------------------------------
def test_metadata_round_trip(s3, client, bucket, prefix):
    meta = {"owner": "alice", "city": "Zürich ✓", "Mixed-Case": "v", "json": '{"a": [1, 2]}',
            "spaces": "  lead, trail  ", "inner": "a  b\tc", "looks-encoded": "=?UTF-8?B?aGk=?=",
            "lines": "one\ntwo", "Epoch": 12, "f": 1.5, "l": [1, {"x": None}], "b": True,
            "empty": ""}
    s3.put(f"{prefix}/m", b"x", metadata=meta)
    expected = meta  # names and JSON types kept (Metaflow's encoding)
    assert s3.get(f"{prefix}/m").metadata == expected
    assert s3.info(f"{prefix}/m").metadata == expected
    assert s3.get_many([f"{prefix}/m"])[0].metadata == expected
    [rec] = s3.get_recursive([prefix], return_info=True)
    assert rec.metadata == expected
    # Stored as Metaflow stores it: one JSON header, which any S3 tool can read.
    assert mf_attrs(head(client, bucket, f"{prefix}/m")) == expected


def test_no_metadata_is_none(s3, prefix):
    s3.put(f"{prefix}/plain", b"x")
    assert s3.get(f"{prefix}/plain").metadata is None
    assert s3.info(f"{prefix}/plain").metadata is None
    s3.put(f"{prefix}/plain2", b"x", metadata={})
    assert s3.info(f"{prefix}/plain2").metadata is None


@pytest.mark.parametrize("meta", [{1: "v"}, {"": "v"}, {"k": object()}, {"k": b"bytes"}],
                         ids=["int-name", "empty-name", "object", "bytes"])
def test_invalid_metadata_rejected(s3, client, bucket, prefix, meta):
    with pytest.raises(S3InvalidObject) as e:
        s3.put(f"{prefix}/m", b"x", metadata=meta)
    assert e.value.url == f"s3://{bucket}/root/{prefix}/m"
    with pytest.raises(S3InvalidObject):
        s3.put_many([S3PutObject(f"{prefix}/m", b"x", metadata=meta)])
    assert listed(client, bucket, prefix) == []


def test_metadata_over_2kb_rejected_before_sending(s3, client, bucket, prefix):
    """S3 allows 2 KB of user metadata (names plus values): the JSON header's name (24
    bytes) and value count; 2048 bytes pass, 2049 raise a clear S3InvalidObject."""
    fixed = len("metaflow-user-attributes") + len(json.dumps({"k": ""}))
    s3.put(f"{prefix}/ok", b"x", metadata={"k": "v" * (2048 - fixed)})
    assert s3.info(f"{prefix}/ok").metadata == {"k": "v" * (2048 - fixed)}
    with pytest.raises(S3InvalidObject) as e:
        s3.put(f"{prefix}/big", b"x", metadata={"k": "v" * (2049 - fixed)})
    assert e.value.code == "MetadataTooLarge" and "2049 bytes" in str(e.value)
    assert [k for k in listed(client, bucket, prefix)] == [f"root/{prefix}/ok"]


def test_plain_metadata_headers_of_other_tools_stay_readable(s3, client, bucket, prefix):
    client.put_object(Bucket=bucket, Key=f"root/{prefix}/o", Body=b"o",
                      Metadata={"owner": "alice", "team": "ml"})
    assert s3.info(f"{prefix}/o").metadata == {"owner": "alice", "team": "ml"}
    both = {"owner": "bob", "metaflow-user-attributes": json.dumps({"owner": 7, "x": [1]})}
    client.put_object(Bucket=bucket, Key=f"root/{prefix}/both", Body=b"b", Metadata=both)
    assert s3.get(f"{prefix}/both").metadata == {"owner": 7, "x": [1]}  # JSON wins a clash


def test_reads_metaflow_style_metadata(s3, client, bucket, prefix):
    attrs = {"producer": "metaflow", "ünï": "çødé", "n": 3, "nested": {"a": [1, 2]}}
    client.put_object(Bucket=bucket, Key=f"root/{prefix}/mf", Body=b"mf",
                      Metadata={"metaflow-user-attributes": json.dumps(attrs)})
    assert s3.get(f"{prefix}/mf").metadata == attrs
    assert s3.info(f"{prefix}/mf").metadata == attrs


# -- S3(run=...) -----------------------------------------------------------------------------
class Run:
    """Duck-typed metaflow.Run."""

    pathspec = "Flow/123"


class _Id:
    def __init__(self, id):
        self.id = id


class ParentRun:
    """A Run-like object exposing only ``parent.id`` and ``id`` (as Metaflow's code uses)."""

    parent = _Id("OtherFlow")
    id = "456"


def test_run_root(seaweed, client, bucket, monkeypatch, tmp_path):
    monkeypatch.setenv("FASTS3_DATATOOLS_S3ROOT", f"s3://{bucket}/datatools/")
    kw = dict(endpoint_url=seaweed.endpoint_url, session_vars=seaweed.session_vars(),
              progress=False, tmproot=str(tmp_path))
    with S3(run=Run(), **kw) as s3:
        assert s3._root == f"s3://{bucket}/datatools/Flow/123"
        assert s3.put("k", b"run data") == f"s3://{bucket}/datatools/Flow/123/k"
        assert s3.get("k").blob == b"run data"
        assert [o.key for o in s3.get_all()] == ["k"]
    body = client.get_object(Bucket=bucket, Key="datatools/Flow/123/k")["Body"].read()
    assert body == b"run data"
    with S3(run=ParentRun(), **kw) as s3:
        assert s3._root == f"s3://{bucket}/datatools/OtherFlow/456"
    with S3(run=Run(), prefix="other", **kw) as s3:
        assert s3._root == f"s3://{bucket}/other/Flow/123"


class FlowSpec:
    """Stands in for metaflow.FlowSpec (recognised by class name, metaflow is optional)."""


class MyFlow(FlowSpec):
    # A flow's artifacts show up as attributes; they must not be taken for a Run's fields.
    pathspec = "ArtifactFlow/1"
    parent = _Id("ArtifactParent")
    id = "2"


def test_flowspec_outside_a_running_flow(monkeypatch, tmp_path):
    monkeypatch.setenv("FASTS3_DATATOOLS_S3ROOT", "s3://bkt/datatools")
    with pytest.raises(S3URLError):
        S3(run=MyFlow(), tmproot=str(tmp_path))
    with pytest.raises(S3URLError):
        S3(run=object(), tmproot=str(tmp_path))


def test_run_needs_a_datatools_root(monkeypatch, tmp_path):
    monkeypatch.delenv("FASTS3_DATATOOLS_S3ROOT", raising=False)
    monkeypatch.delenv("METAFLOW_DATATOOLS_S3ROOT", raising=False)
    try:
        from metaflow.metaflow_config import DATATOOLS_S3ROOT  # type: ignore
    except ImportError:
        DATATOOLS_S3ROOT = None
    if DATATOOLS_S3ROOT:
        pytest.skip("Metaflow's own config provides a datatools root here")
    with pytest.raises(S3URLError):
        S3(run=Run(), tmproot=str(tmp_path))

