"""ZIP archives on S3, read without downloading them whole.

* :func:`open_zip` -- a :class:`zipfile.ZipFile` over :func:`S3.open <fasts3.seekable>`: the
  listing costs the central directory plus a block or two; reading a member fetches that
  member's bytes plus small bounded overhead.
* :func:`zip_ls` -- the members (``zipfile.ZipInfo``, ZIP64 included).
* :func:`zip_get` -- extract chosen members (or all) into a directory. Each member's local
  header and compressed bytes are fetched as one range by the worker pool
  (``s3.get_many`` with :class:`~fasts3.S3GetObject`), pinned to the ETag (and version) the
  listing saw, then decompressed locally on a few threads (stored, deflate, bzip2, lzma),
  length- and CRC-32-checked, written to a temp name in the destination and renamed.
  Every destination path is validated before anything is fetched: a name that would escape
  the destination (``../x``, absolute, drive letters, backslashes) raises
  :class:`~fasts3.errors.S3URLError` and nothing is written.
* Errors: a key that is not a ZIP, or a truncated/corrupt one, raises :class:`S3BadZipFile`
  (both an :class:`~fasts3.errors.S3Error` with the URL and a ``zipfile.BadZipFile``).
* CLI: :func:`add_zip_commands` / :func:`run_zip_command` for ``fasts3 zip ls|get``, and
  ``python -m fasts3.zip ls|get ...`` standalone.
"""

from __future__ import annotations

import argparse
import bz2
import fnmatch
import logging
import lzma
import os
import shutil
import struct
import sys
import uuid
import zipfile
import zlib
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from .errors import S3Error, S3NotFound, S3URLError
from .objects import S3GetObject
from .seekable import S3File, S3ObjectChanged
from .urls import local_path_for_key

log = logging.getLogger("fasts3.zip")

__all__ = ["S3BadZipFile", "S3ZipFile", "add_zip_commands", "open_zip", "run_zip_command",
           "zip_get", "zip_ls"]

_LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")  # 30 bytes, signature PK\3\4
_MAX_LOCAL_OVERHEAD = _LOCAL_HEADER.size + 2 * 0xFFFF + 24  # header, name, extra, descriptor
_CHUNK = 1 << 20
_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate",
            zipfile.ZIP_BZIP2: "bzip2", zipfile.ZIP_LZMA: "lzma"}
MemberSelector = Iterable[str] | Callable[[zipfile.ZipInfo], bool] | None


class S3BadZipFile(S3Error, zipfile.BadZipFile):
    """The object is not a ZIP archive, or is truncated or corrupt (bad CRC, bad header)."""


class S3ZipFile(zipfile.ZipFile):
    """A read-only ``ZipFile`` over an :class:`~fasts3.seekable.S3File`; closing it closes
    the S3 file too. ``s3file`` exposes the byte counters."""

    def __init__(self, s3file: S3File) -> None:
        self.s3file = s3file
        super().__init__(s3file)

    def close(self) -> None:
        try:
            super().close()
        finally:
            f = getattr(self, "s3file", None)
            if f is not None:
                f.close()


def open_zip(s3: Any, key: str, **open_options: Any) -> S3ZipFile:
    """Open the archive at ``key`` for reading members with the ``zipfile`` API.

    ``open_options`` go to ``s3.open`` (see :func:`fasts3.seekable.open_object`; default
    ``initial="tail"``).
    Raises :class:`S3BadZipFile` (not a ZIP, truncated) naming the URL, ``S3NotFound``.
    """
    open_options.setdefault("initial", "tail")
    f = s3.open(key, **open_options)
    try:
        zf = S3ZipFile(f)
    except S3Error:
        f.close()
        raise
    except (zipfile.BadZipFile, EOFError, struct.error, ValueError, OSError,
            NotImplementedError) as e:
        f.close()
        raise S3BadZipFile(f"Not a readable ZIP archive: {e}", f.name, "BadZipFile") from None
    return zf


def zip_ls(s3: Any, key: str) -> list[zipfile.ZipInfo]:
    """The members of the archive at ``key``, in central-directory order. Fetches the
    central directory and at most a couple of blocks (``bytes_fetched`` < 1 MiB for a
    directory of a few thousand entries). Raises :class:`S3BadZipFile`, ``S3NotFound``."""
    with open_zip(s3, key, readahead=0, cache_size=16 << 20) as zf:
        return zf.infolist()


def zip_get(s3: Any, key: str, dest: str = ".", members: MemberSelector = None, *,
            threads: int | None = None, batch_bytes: int = 1 << 30) -> list[str]:
    """Extract members of the archive at ``key`` into ``dest`` (created if missing).

    Args:
        members: ``None`` (all), member names, or a predicate on ``ZipInfo``.
        threads: decompression threads (default: usable cores, at most 8).
        batch_bytes: compressed bytes fetched per ``get_many`` batch (bounds temp space to
            about two batches; one member may exceed it).

    Returns the local paths of the extracted members (directories included), in archive
    order. Existing files are replaced. Raises :class:`S3NotFound` (code ``NoSuchMember``)
    for a name not in the archive, :class:`~fasts3.errors.S3URLError` for a name escaping
    ``dest`` (before anything is fetched), :class:`S3BadZipFile` for corrupt data or a CRC
    mismatch, :class:`~fasts3.seekable.S3ObjectChanged` if the archive was overwritten.
    """
    with open_zip(s3, key, readahead=0, cache_size=16 << 20) as zf:
        infos = zf.infolist()
        f = zf.s3file
        url, etag, version, size = f.name, f.etag, f.version_id, f.size
        start_dir = getattr(zf, "start_dir", size)
    chosen = _select(infos, members, url)
    dest = os.path.abspath(dest)
    plan = [(zi, local_path_for_key(dest, zi.filename)) for zi in chosen]  # refuse escapes
    ends = sorted({zi.header_offset for zi in infos} | {start_dir, size})
    files = []
    for zi, path in plan:
        if zi.is_dir():
            continue
        if zi.flag_bits & 0x1:
            raise S3Error(f"Member {zi.filename!r} is encrypted (not supported)", url,
                          "Encrypted")
        if zi.compress_type not in _METHODS:
            raise S3Error(f"Member {zi.filename!r} uses unsupported compression "
                          f"{zi.compress_type}", url, "UnsupportedCompression")
        i = bisect_right(ends, zi.header_offset)
        nxt = ends[i] if i < len(ends) else size
        length = min(nxt, zi.header_offset + _MAX_LOCAL_OVERHEAD + zi.compress_size, size)
        length -= zi.header_offset
        if length < _LOCAL_HEADER.size:
            raise S3BadZipFile(f"Member {zi.filename!r} lies outside the archive", url,
                               "BadZipFile")
        files.append((zi, path, length))
    os.makedirs(dest, exist_ok=True)
    real_dest = os.path.realpath(dest)
    for _zi, path in plan:
        real = os.path.realpath(path)
        if real == real_dest or os.path.commonpath([real_dest, real]) != real_dest:
            raise S3URLError("Destination path leaves the directory through a symlink",
                             path, "UnsafePath")
    for zi, path in plan:
        if zi.is_dir():
            os.makedirs(path, exist_ok=True)
    _extract_all(s3, key, url, etag, version, files, threads, batch_bytes)
    return [path for _, path in plan]


def _select(infos: list[zipfile.ZipInfo], members: MemberSelector,
            url: str) -> list[zipfile.ZipInfo]:
    if members is None:
        return list(infos)
    if callable(members):
        return [zi for zi in infos if members(zi)]
    if isinstance(members, str):  # one name, not its characters
        members = [members]
    by_name = {zi.filename: zi for zi in infos}
    out = []
    for name in members:
        if name not in by_name:
            raise S3NotFound(f"No member {name!r} in the archive", url, "NoSuchMember")
        out.append(by_name[name])
    return out


def _extract_all(s3: Any, key: str, url: str, etag: str | None, version: str | None,
                 files: list, threads: int | None, batch_bytes: int) -> None:
    batches: list[list] = []
    total = batch_bytes
    for item in files:
        if total >= batch_bytes:
            batches.append([])
            total = 0
        batches[-1].append(item)
        total += item[2]
    workers = threads or min(8, len(os.sched_getaffinity(0)) if hasattr(
        os, "sched_getaffinity") else 2)
    pending: list[Future] = []
    with ThreadPoolExecutor(max(1, workers), thread_name_prefix="fasts3-unzip") as pool:
        try:
            for batch in batches:
                objs = s3.get_many([S3GetObject(key, zi.header_offset, n, version)
                                    for zi, _, n in batch])
                for obj in objs:
                    got = (obj.etag or "").strip('"')
                    if etag and got and got != etag:
                        _discard(o.path for o in objs)
                        raise S3ObjectChanged("Object changed while extracting (new ETag)",
                                              url, "ObjectChanged")
                for fut in pending:  # bound temp space: finish the previous batch first
                    fut.result()
                pending = [pool.submit(_extract_one, obj.path, zi, path, url)
                           for obj, (zi, path, _) in zip(objs, batch, strict=True)]
            for fut in pending:
                fut.result()
        except BaseException:
            for fut in pending:
                fut.cancel()
            raise


def _discard(paths: Iterable[str | None]) -> None:
    for p in paths:
        if p:
            try:
                os.unlink(p)
            except FileNotFoundError:
                pass


def _extract_one(fetched: str, zi: zipfile.ZipInfo, path: str, url: str) -> None:
    """Decompress one fetched member (local header + data at ``fetched``) into ``path``."""
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)[:80]}."
                       f"{uuid.uuid4().hex[:8]}.fasts3-part")
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(fetched, "rb") as src, open(tmp, "wb") as out:
            head = src.read(_LOCAL_HEADER.size)
            if len(head) < _LOCAL_HEADER.size or head[:4] != b"PK\x03\x04":
                raise _bad(zi, url, "bad local header")
            fields = _LOCAL_HEADER.unpack(head)
            src.seek(fields[9] + fields[10], os.SEEK_CUR)  # skip name and extra field
            crc, written = 0, 0
            for data in _decompress(src, zi, url):
                written += len(data)
                if written > zi.file_size:
                    raise _bad(zi, url, "more data than the declared size")
                crc = zlib.crc32(data, crc)
                out.write(data)
        if written != zi.file_size:
            raise _bad(zi, url, f"{written} bytes instead of {zi.file_size}")
        if crc != zi.CRC:
            raise S3BadZipFile(f"CRC-32 mismatch in member {zi.filename!r}", url, "BadCRC")
        os.replace(tmp, path)
    except BaseException:
        _discard([tmp])
        raise
    finally:
        _discard([fetched])


def _bad(zi: zipfile.ZipInfo, url: str, why: str) -> S3BadZipFile:
    return S3BadZipFile(f"Corrupt member {zi.filename!r}: {why}", url, "BadZipFile")


def _decompress(src: Any, zi: zipfile.ZipInfo, url: str) -> Iterator[bytes]:
    """Yield the decompressed bytes of ``zi.compress_size`` bytes read from ``src``, in
    pieces of at most ~1 MiB (memory stays bounded even for zip bombs)."""
    left = zi.compress_size
    method = zi.compress_type
    if method == zipfile.ZIP_LZMA:  # 4-byte header (version, props size), then props
        hdr = src.read(4)
        psize = struct.unpack("<H", hdr[2:4])[0] if len(hdr) == 4 else 0
        props = src.read(psize)
        if len(props) != psize or psize != 5:
            raise _bad(zi, url, "bad LZMA header")
        left -= 4 + psize
        lc_lp_pb, dict_size = props[0], struct.unpack("<I", props[1:5])[0]
        filt = {"id": lzma.FILTER_LZMA1, "dict_size": dict_size, "lc": lc_lp_pb % 9,
                "lp": lc_lp_pb // 9 % 5, "pb": lc_lp_pb // 45}
        dec: Any = lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=[filt])
    elif method == zipfile.ZIP_BZIP2:
        dec = bz2.BZ2Decompressor()
    elif method == zipfile.ZIP_DEFLATED:
        dec = zlib.decompressobj(-15)
    else:
        dec = None
    def step(data: bytes) -> bytes:
        try:
            return dec.decompress(data, _CHUNK)
        except (zlib.error, lzma.LZMAError, EOFError, OSError) as e:
            raise _bad(zi, url, f"cannot decompress: {e}") from None

    while left > 0:
        chunk = src.read(min(_CHUNK, left))
        if not chunk:
            raise _bad(zi, url, "compressed data is truncated")
        left -= len(chunk)
        if dec is None:
            yield chunk
        elif method == zipfile.ZIP_DEFLATED:
            yield step(chunk)
            while dec.unconsumed_tail:
                yield step(dec.unconsumed_tail)
        else:
            yield step(chunk)
            while not dec.eof and not dec.needs_input:
                yield step(b"")
    if method == zipfile.ZIP_DEFLATED:
        yield dec.flush()


# -- command line -------------------------------------------------------------------------
def _add_subcommands(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="zip_command", metavar="{ls,get}")
    sub.required = True
    ls = sub.add_parser("ls", help="list the members of a ZIP archive on S3")
    ls.add_argument("url", help="s3://bucket/archive.zip")
    ls.add_argument("-1", "--names", action="store_true", help="names only, one per line")
    get = sub.add_parser("get", help="extract members of a ZIP archive on S3")
    get.add_argument("url", help="s3://bucket/archive.zip")
    get.add_argument("member", help="member name or glob pattern ('*' = all members)")
    get.add_argument("dest", nargs="?", default=".",
                     help="destination directory (default .); '-' writes one member to stdout")


def add_zip_commands(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``zip ls URL [-1]`` and ``zip get URL MEMBER [DEST]`` to an argparse
    ``subparsers`` object; the parsed namespace carries ``func=run_zip_command``."""
    parser = subparsers.add_parser("zip", help="list or extract members of a ZIP on S3 "
                                   "without downloading the whole archive")
    _add_subcommands(parser)
    parser.set_defaults(func=run_zip_command)
    return parser


def run_zip_command(args: argparse.Namespace, s3: Any = None) -> int:
    """Run a parsed ``zip`` command; returns the exit status (0). Errors are raised as
    :class:`~fasts3.errors.S3Error` for the caller to report. Without ``s3``, an
    ``S3(endpoint_url=args.endpoint_url)`` is created (and closed) here."""
    if s3 is None:
        from .api import S3

        with S3(endpoint_url=getattr(args, "endpoint_url", None),
                progress=getattr(args, "progress", False)) as client:
            return run_zip_command(args, client)
    out = sys.stdout
    if args.zip_command == "ls":
        infos = zip_ls(s3, args.url)
        if args.names:
            out.writelines(zi.filename + "\n" for zi in infos)
            return 0
        out.write(f"{'Length':>12} {'Compressed':>12} {'Method':<8} {'Modified':<16} Name\n")
        for zi in infos:
            y, mo, d, h, mi, _ = zi.date_time
            out.write(f"{zi.file_size:>12} {zi.compress_size:>12} "
                      f"{_METHODS.get(zi.compress_type, str(zi.compress_type)):<8} "
                      f"{y:04}-{mo:02}-{d:02} {h:02}:{mi:02} {zi.filename}\n")
        out.write(f"{sum(zi.file_size for zi in infos):>12} "
                  f"{sum(zi.compress_size for zi in infos):>12} {len(infos)} members\n")
        return 0
    pattern = args.member
    if args.dest == "-":
        with open_zip(s3, args.url) as zf:
            if pattern not in zf.NameToInfo:
                raise S3NotFound(f"No member {pattern!r} in the archive", zf.s3file.name,
                                 "NoSuchMember")
            with zf.open(pattern) as member:
                shutil.copyfileobj(member, out.buffer, _CHUNK)
            out.buffer.flush()
        return 0
    infos = zip_ls(s3, args.url)
    names = {zi.filename for zi in infos}
    if pattern in names:
        chosen = [pattern]
    else:
        chosen = [zi.filename for zi in infos if fnmatch.fnmatchcase(zi.filename, pattern)]
        if not chosen:
            raise S3NotFound(f"No member matches {pattern!r}", args.url, "NoSuchMember")
    for path in zip_get(s3, args.url, args.dest, chosen):
        out.write(path + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m fasts3.zip [--endpoint-url URL] ls|get ...``"""
    parser = argparse.ArgumentParser(prog="python -m fasts3.zip", description=__doc__.split(
        "\n\n")[0])
    parser.add_argument("--endpoint-url", default=None, help="S3-compatible endpoint")
    _add_subcommands(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return run_zip_command(args)
    except S3Error as e:
        sys.stderr.write(f"fasts3 zip: error: {e}\n")
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
