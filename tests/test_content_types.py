"""Content-Type from a key's extension (fasts3.content_types.guess); no server."""

from __future__ import annotations

import pytest

from fasts3.content_types import DEFAULT, guess


@pytest.mark.parametrize("key, ctype", [
    ("data.csv", "text/csv"),
    ("dir/data.json", "application/json"),
    ("a/b/part-0001.parquet", "application/vnd.apache.parquet"),
    ("events.jsonl", "application/jsonl"),
    ("events.ndjson", "application/x-ndjson"),
    ("notes.txt", "text/plain"),
    ("page.html", "text/html"),
    ("img.png", "image/png"),
    ("DATA.CSV", "text/csv"),
    ("data.csv.gz", "application/gzip"),
    ("archive.tar", "application/x-tar"),
    ("weights.safetensors", "application/octet-stream"),
    ("config.yaml", "application/yaml"),
])
def test_known_extensions(key, ctype):
    assert guess(key) == ctype


@pytest.mark.parametrize("key", [
    "noext", "dir/noext", "file.unknownext", "file.", ".hidden", "dir/.bashrc",
    "dir.csv/file", "dir.json/", "", "a b?c#.zzz",
])
def test_unknown_is_binary_octet_stream(key):
    assert guess(key) == DEFAULT == "binary/octet-stream"
