"""File extension -> MIME type: the stdlib ``mimetypes`` table plus the data formats it lacks."""

from __future__ import annotations

import mimetypes

DEFAULT = "binary/octet-stream"

# Formats common in data and ML work that the stdlib table does not know (or gets wrong).
_EXTRA = {
    ".parquet": "application/vnd.apache.parquet",
    ".jsonl": "application/jsonl",
    ".ndjson": "application/x-ndjson",
    ".avro": "application/avro",
    ".orc": "application/vnd.apache.orc",
    ".arrow": "application/vnd.apache.arrow.file",
    ".feather": "application/vnd.apache.arrow.file",
    ".npy": "application/octet-stream",
    ".npz": "application/zip",
    ".pkl": "application/octet-stream",
    ".pickle": "application/octet-stream",
    ".pt": "application/octet-stream",
    ".pth": "application/octet-stream",
    ".safetensors": "application/octet-stream",
    ".onnx": "application/octet-stream",
    ".h5": "application/x-hdf5",
    ".hdf5": "application/x-hdf5",
    ".tfrecord": "application/octet-stream",
    ".md": "text/markdown",
    ".yaml": "application/yaml",
    ".yml": "application/yaml",
    ".toml": "application/toml",
    ".csv": "text/csv",
    ".tsv": "text/tab-separated-values",
    ".gz": "application/gzip",
    ".zst": "application/zstd",
    ".bz2": "application/x-bzip2",
    ".xz": "application/x-xz",
    ".tar": "application/x-tar",
    ".zip": "application/zip",
    ".wasm": "application/wasm",
    ".webp": "image/webp",
}


def guess(key: str) -> str:
    """MIME type for ``key`` from its extension (case-insensitive); ``binary/octet-stream``
    when unknown. Only the last path component is looked at; ``.gz`` and friends give the
    compression type, as S3 consoles do."""
    name = key.rsplit("/", 1)[-1].lower()
    dot = name.rfind(".")
    if dot <= 0:
        return DEFAULT
    ext = name[dot:]
    if ext in _EXTRA:
        return _EXTRA[ext]
    ctype, _ = mimetypes.guess_type("x" + ext, strict=False)
    return ctype or DEFAULT
