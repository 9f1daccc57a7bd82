"""Parse, join and validate ``s3://`` URLs, and map keys to safe local paths.

Rules (DESIGN.md, "The public API"):

* A root is ``s3://bucket[/prefix]``; its trailing ``/`` is dropped. Anything else is an error.
* With a root, keys are relative: a leading ``/`` is dropped and an absolute ``s3://`` URL is
  an error. Without a root only full ``s3://bucket/key`` URLs are accepted.
* Keys are any UTF-8 text of at most 1024 bytes, control characters included (as in S3 and
  Metaflow): requests carry them percent-encoded, listings ask for ``encoding-type=url``.
* A key never maps to a local path outside the destination directory, and local names never
  contain control characters (they are written ``%XX``).

All errors are :class:`~fasts3.errors.S3URLError`, raised before any request is sent.
"""

from __future__ import annotations

import os
import re

from .errors import S3URLError

SCHEME = "s3://"
MAX_KEY_BYTES = 1024
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # Unicode category Cc
_BUCKET = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,254}$")


def split_url(url: str) -> tuple[str, str]:
    """Split ``s3://bucket/key`` into ``(bucket, key)``; ``key`` may be ``""``.

    Characters such as ``?``, ``#``, ``%`` and spaces are part of the key, never a query or
    fragment. Raises :class:`S3URLError` for anything that is not a valid S3 URL.
    """
    if not isinstance(url, str):
        raise S3URLError(f"An S3 URL must be a str, not {type(url).__name__}", url=repr(url))
    if not url.startswith(SCHEME):
        raise S3URLError("Not an s3:// URL", url=url)
    bucket, _, key = url[len(SCHEME) :].partition("/")
    if not _BUCKET.match(bucket):
        raise S3URLError(f"Invalid bucket name {bucket!r}", url=url)
    check_key(key, url)
    return bucket, key


def check_key(key: str, url: str | None = None) -> None:
    """Raise :class:`S3URLError` if ``key`` exceeds 1024 bytes of UTF-8."""
    if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise S3URLError(f"Key is longer than {MAX_KEY_BYTES} bytes", url=url and url[:80] + "...")


def make_root(
    s3root: str | None = None, bucket: str | None = None, prefix: str | None = None
) -> str | None:
    """Return the normalised root URL (no trailing ``/``), or ``None`` if no root is given."""
    if s3root is not None:
        if bucket is not None or prefix is not None:
            raise S3URLError("Give either s3root or bucket/prefix, not both", url=s3root)
        root = s3root
    elif bucket is not None:
        bucket = bucket.strip("/")
        root = SCHEME + bucket + ("/" + prefix.strip("/") if prefix and prefix.strip("/") else "")
    elif prefix is not None:
        raise S3URLError("prefix= needs bucket=", url=prefix)
    else:
        return None
    if not isinstance(root, str) or not root.startswith(SCHEME):
        raise S3URLError("The root must be an s3:// URL", url=str(root))
    root = root.rstrip("/")
    split_url(root)
    return root


def key_of(obj: object) -> str | None:
    """The key of ``obj``: itself if it is a ``str``/``None``, else its ``.key`` attribute."""
    if obj is None or isinstance(obj, str):
        return obj
    key = getattr(obj, "key", None)
    if key is None or isinstance(key, str):
        return key
    raise S3URLError(f"A key must be a str, not {type(key).__name__}", url=repr(key))


def resolve(root: str | None, key: str | None, allow_bucket: bool = False) -> str:
    """Turn a user key into a full URL under ``root`` (see the module rules).

    ``allow_bucket``: without a root, also accept a bare ``s3://bucket[/]`` (listing calls).
    """
    if root is None:
        if not key:
            raise S3URLError("Without an s3root, keys must be full s3://bucket/key URLs", url=key)
        if not isinstance(key, str) or not key.startswith(SCHEME):
            raise S3URLError(
                "Initialize S3 with an s3root (or bucket=) to use relative keys", url=str(key)
            )
        bucket, rest = split_url(key)
        if not rest and not allow_bucket:
            raise S3URLError("The URL names a bucket but no key", url=key)
        return key
    if key is None or key == "":
        return root
    if not isinstance(key, str):
        raise S3URLError(f"A key must be a str, not {type(key).__name__}", url=repr(key))
    if key.startswith(SCHEME):
        raise S3URLError("Keys must be relative when the S3 client has a root", url=key)
    key = key.lstrip("/")
    url = root + "/" + key if key else root
    split_url(url)
    return url


def relative_key(prefix_url: str | None, url: str) -> str:
    """The key of ``url`` relative to ``prefix_url`` (Metaflow's ``S3Object.key``)."""
    if prefix_url is None or prefix_url == url:
        return url
    base = prefix_url.rstrip("/")
    if url.startswith(base + "/"):
        return url[len(base) + 1 :]
    return url


def local_path_for_key(dest_dir: str, key: str) -> str:
    """Map ``key`` to a path inside ``dest_dir``, refusing anything that could escape it.

    Components ``..`` and ``.``, empty components (``a//b``), absolute keys and Windows drive
    prefixes raise :class:`S3URLError`. The returned path is always strictly inside
    ``dest_dir`` (checked after normalisation). Control characters become ``%XX`` (their
    UTF-8 bytes), so ``a\x01b`` is stored as ``a%01b``.
    """
    check_key(key)
    key = _CONTROL.sub(lambda m: "".join(f"%{b:02X}" for b in m.group(0).encode()), key)
    parts = key.split("/")
    if parts and parts[-1] == "":
        parts = parts[:-1]
    if not parts or any(p in ("", ".", "..") for p in parts) or "\\" in key or ":" in parts[0]:
        raise S3URLError("Key cannot be mapped safely to a local path", url=key)
    base = os.path.abspath(dest_dir)
    path = os.path.abspath(os.path.join(base, *parts))
    if os.path.commonpath([base, path]) != base or path == base:
        raise S3URLError("Key would escape the destination directory", url=key)
    return path


_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._+=@,-]")


def temp_name(serial: int, key: str) -> str:
    """A flat file name for a download in the temp root: unique by ``serial``, keeps the
    key's base name (sanitised, at most 100 chars) so the extension survives."""
    base = _UNSAFE_NAME.sub("_", key.rsplit("/", 1)[-1])[-100:].lstrip(".")
    return f"{serial:08x}-{base}" if base else f"{serial:08x}"
