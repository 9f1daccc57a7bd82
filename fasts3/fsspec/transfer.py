"""The batched forms of :class:`~fasts3.fsspec.core.FastS3FileSystem`: ``cat``/``cat_ranges``
(many paths), ``pipe`` (a dict), ``get``/``put``/``copy`` (lists, globs, recursive) and
``rm`` (many) each run as ONE ``get_many``/``put_many``/``put_files``/``copy_many``/
``delete_many`` call, i.e. in parallel on the S3 context's worker pool.

``get``/``put``/``copy`` keep fsspec's own rules for where each file goes (trailing slashes,
globs, ``recursive``, ``maxdepth``, lists): fsspec's implementation runs with the single-file
methods (``get_file``/``put_file``/``cp_file``) *recording* their arguments instead of
transferring, and the recorded pairs are then sent as one batch.

Downloads land in the S3 context's temp directory and are renamed into place
(``os.replace``: a file appears under its final name only when complete); across file
systems they are copied to a ``.part`` file beside the destination first.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from fsspec.callbacks import DEFAULT_CALLBACK
from fsspec.utils import isfilelike

from ..errors import S3InvalidRange, S3NotFound, S3URLError
from ..objects import S3GetObject


def _missing(url: str) -> S3NotFound:
    return S3NotFound("No such object", url=url, code="NoSuchKey", status=404)


if TYPE_CHECKING:  # the mixin's methods use the filesystem's (fsspec is untyped: Any)
    from fsspec import AbstractFileSystem as _FileSystem
else:
    _FileSystem = object


class BatchMixin(_FileSystem):
    """Batched transfers; mixed into the filesystem class (see the module docstring)."""

    _local: Any
    s3: Any

    # -- recording the single-file calls of fsspec's get/put/copy ------------------------
    @contextlib.contextmanager
    def _recording(self) -> Iterator[list[tuple[Any, ...]]]:
        self._local.record = []
        try:
            yield self._local.record
        finally:
            self._local.record = None

    def _record(self, *item: Any) -> bool:
        rec = getattr(self._local, "record", None)
        if rec is None:
            return False
        rec.append(item)
        return True

    # -- reading bytes ---------------------------------------------------------------------
    def cat_file(self, path: str, start: int | None = None, end: int | None = None,
                 **kwargs: Any) -> bytes:
        """The object's bytes ``[start:end]`` (Python slice rules, negatives count from the
        end; a range past the end gives ``b""``)."""
        return self._fetch([(self._strip_protocol(path), start, end)], "raise")[0]

    def cat_ranges(self, paths: list[str], starts: Any, ends: Any, max_gap: Any = None,
                   on_error: str = "return", **kwargs: Any) -> list[Any]:
        """Many ``[start:end]`` slices (one parallel batch); with ``on_error="return"`` a
        missing object gives its exception in the list."""
        if max_gap is not None:
            raise NotImplementedError("max_gap")
        if not isinstance(paths, list):
            raise TypeError("paths must be a list")
        starts = starts if isinstance(starts, list) else [starts] * len(paths)
        ends = ends if isinstance(ends, list) else [ends] * len(paths)
        if len(starts) != len(paths) or len(ends) != len(paths):
            raise ValueError("paths, starts and ends must have the same length")
        items = [(self._strip_protocol(p), s, e)
                 for p, s, e in zip(paths, starts, ends, strict=True)]
        return self._fetch(items, on_error)

    def cat(self, path: Any, recursive: bool = False, on_error: str = "raise",
            **kwargs: Any) -> Any:
        """Contents of one path (bytes), or of many / a glob / a directory (``{path:
        bytes}``), fetched in one parallel batch. ``on_error``: ``"raise"``, ``"omit"`` or
        ``"return"`` (missing objects map to their exception)."""
        with self._scope() as types:
            paths = self.expand_path(path, recursive=recursive)
        files = [p for p in paths if types.get(p) != "directory"]
        many = len(paths) > 1 or isinstance(path, list) or \
            paths[0] != self._strip_protocol(path)
        data = self._fetch([(p, None, None) for p in files], on_error if many else "raise")
        if many:
            return {p: d for p, d in zip(files, data, strict=True) if on_error != "omit"
                    or not isinstance(d, BaseException)}
        return data[0]

    def _fetch(self, items: list[tuple[str, int | None, int | None]],
               on_error: str) -> list[Any]:
        """``[(path, start, end)]`` -> bytes (or exceptions, if ``on_error != "raise"``)."""
        need = sorted({p for p, s, e in items
                       if (e is not None and e < 0) or (s is not None and s < 0
                                                         and e is not None)})
        sizes = dict(zip(need, self.sizes(need), strict=True)) if need else {}
        out: list[Any] = [b""] * len(items)
        reqs, where = [], []
        for i, (path, start, end) in enumerate(items):
            url = self._url(path)
            if start is not None and start < 0 and end is None:
                reqs.append(S3GetObject(url, length=start))  # a suffix: the last -start bytes
                where.append(i)
                continue
            size = sizes.get(path) or 0  # known whenever a negative offset needs it
            start = max(0, size + start) if start is not None and start < 0 else (start or 0)
            if end is not None and end < 0:
                end = max(0, size + end)
            if end is not None and end <= start:
                continue  # empty slice, no request
            reqs.append(S3GetObject(url, offset=start,
                                    length=None if end is None else end - start))
            where.append(i)
        try:
            objs = self.s3.get_many(reqs, return_missing=True, return_info=False)
        except S3InvalidRange:
            if len(reqs) == 1:
                return out  # starts at or past the end: empty, like slicing
            for i in where:  # find which ones: one by one
                out[i] = self._fetch([items[i]], on_error)[0]
            return out
        try:
            for i, obj in zip(where, objs, strict=True):
                if obj.exists:
                    out[i] = obj.blob
                    continue
                err = _missing(obj.url)
                if on_error == "raise":
                    raise err
                out[i] = err
        finally:
            for obj in objs:
                if obj.path:
                    _unlink(obj.path)
        return out

    # -- writing bytes ---------------------------------------------------------------------
    def pipe_file(self, path: str, value: bytes, mode: str = "overwrite",
                  **kwargs: Any) -> None:
        """Write ``value`` to ``path``; ``mode="create"`` raises :class:`FileExistsError` if it
        exists (checked with a HEAD just before, not atomic)."""
        self.pipe({path: value}, mode=mode)

    def pipe(self, path: Any, value: Any = None, mode: str = "overwrite",
             **kwargs: Any) -> None:
        """Write one value, or a ``{path: bytes}`` dict in one parallel batch."""
        if isinstance(path, dict):
            items = {self._strip_protocol(k): v for k, v in path.items()}
        elif isinstance(path, str):
            items = {self._strip_protocol(path): value}
        else:
            raise ValueError("path must be str or dict")
        pairs = [(self._url(p), v) for p, v in items.items()]
        done = self.s3.put_many(pairs, overwrite=mode != "create")
        if mode == "create" and len(done) < len(pairs):
            skipped = {u for u, _ in pairs} - {u for _, u in done}
            raise FileExistsError(sorted(skipped)[0])

    # -- downloads -------------------------------------------------------------------------
    def get_file(self, rpath: str, lpath: Any, callback: Any = DEFAULT_CALLBACK,
                 outfile: Any = None, **kwargs: Any) -> None:
        """Download one object to ``lpath`` (a path or a binary file object)."""
        if outfile is None and isfilelike(lpath):
            outfile = lpath
        if outfile is not None:
            with self.open(rpath, "rb") as f:
                shutil.copyfileobj(f, outfile, 1 << 20)
            return
        if not self._record(self._strip_protocol(rpath), os.fspath(lpath)):
            self._download([(self._strip_protocol(rpath), os.fspath(lpath))], {})

    def get(self, rpath: Any, lpath: Any, recursive: bool = False,
            callback: Any = DEFAULT_CALLBACK, maxdepth: int | None = None,
            **kwargs: Any) -> None:
        """fsspec's ``get`` (same destination rules), downloaded in one parallel batch."""
        with self._scope() as types, self._recording() as pairs:
            super().get(rpath, lpath, recursive=recursive, maxdepth=maxdepth, **kwargs)
        if isinstance(lpath, (str, os.PathLike)):
            _check_inside(os.fspath(lpath), [lp for _, lp in pairs])
        callback.set_size(len(pairs))
        self._download(pairs, types)
        callback.relative_update(len(pairs))

    def _download(self, pairs: list[tuple[Any, ...]], types: dict[str, str]) -> None:
        files = []
        for rpath, lpath in pairs:
            if types.get(rpath) == "directory":
                os.makedirs(lpath, exist_ok=True)
            else:
                files.append((rpath, lpath))
        objs = self.s3.get_many([self._url(r) for r, _ in files], return_missing=True,
                                return_info=False)
        try:
            for (rpath, lpath), obj in zip(files, objs, strict=True):
                if obj.exists:
                    _place(obj.path, lpath)
                elif self.isdir(rpath):
                    os.makedirs(lpath, exist_ok=True)
                else:
                    raise _missing(obj.url)
        finally:
            for obj in objs:
                if obj.path:
                    _unlink(obj.path)

    # -- uploads ---------------------------------------------------------------------------
    def put_file(self, lpath: Any, rpath: str, callback: Any = DEFAULT_CALLBACK,
                 mode: str = "overwrite", **kwargs: Any) -> None:
        """Upload one local file (a local directory: nothing to do, S3 has none)."""
        item = (os.fspath(lpath), self._strip_protocol(rpath), mode)
        if not self._record(*item):
            self._upload([item])

    def put(self, lpath: Any, rpath: Any, recursive: bool = False,
            callback: Any = DEFAULT_CALLBACK, maxdepth: int | None = None,
            **kwargs: Any) -> None:
        """fsspec's ``put`` (same destination rules), uploaded in one parallel batch."""
        with self._recording() as items:
            super().put(lpath, rpath, recursive=recursive, maxdepth=maxdepth, **kwargs)
        callback.set_size(len(items))
        self._upload(items)
        callback.relative_update(len(items))

    def _upload(self, items: list[tuple[Any, ...]]) -> None:
        files = [(lp, rp, mode) for lp, rp, mode in items if not os.path.isdir(lp)]
        for exclusive in (False, True):
            batch = [(self._url(rp), lp) for lp, rp, mode in files
                     if (mode == "create") == exclusive]
            if not batch:
                continue
            done = self.s3.put_files(batch, overwrite=not exclusive)
            if len(done) < len(batch):
                skipped = {u for u, _ in batch} - {u for _, u in done}
                raise FileExistsError(sorted(skipped)[0])

    # -- server-side copies ----------------------------------------------------------------
    def cp_file(self, path1: str, path2: str, **kwargs: Any) -> None:
        """Copy one object inside S3 (the bytes do not come here)."""
        p1, p2 = self._strip_protocol(path1), self._strip_protocol(path2)
        if not self._record(p1, p2):
            self.s3.copy_many([(self._url(p1), self._url(p2))])

    def copy(self, path1: Any, path2: Any, recursive: bool = False,
             maxdepth: int | None = None, on_error: str | None = None,
             **kwargs: Any) -> None:
        """fsspec's ``copy`` (same destination rules), as one parallel ``copy_many``.
        Directories are skipped (they exist once something is under them)."""
        if on_error is None:
            on_error = "ignore" if recursive else "raise"
        with self._scope() as types, self._recording() as pairs:
            super().copy(path1, path2, recursive=recursive, maxdepth=maxdepth,
                         on_error="raise", **kwargs)
        pairs = [(a, b) for a, b in pairs if types.get(a) != "directory"]
        try:
            self.s3.copy_many([(self._url(a), self._url(b)) for a, b in pairs])
        except FileNotFoundError:
            if on_error == "raise":
                raise
            for a, b in pairs:  # which ones are missing: one by one, skipping those
                with contextlib.suppress(FileNotFoundError):
                    self.s3.copy_many([(self._url(a), self._url(b))])

    # -- deletes ---------------------------------------------------------------------------
    def rm_file(self, path: str) -> None:
        """Delete one object (a missing one is not an error, as in S3)."""
        self.s3.delete_many([self._url(self._strip_protocol(path))])

    def rm(self, path: Any, recursive: bool = False, maxdepth: int | None = None) -> None:
        """Delete paths (lists and globs too), in batches of 1000 keys sent in parallel.
        ``recursive`` deletes everything under a directory, ``key/`` marker objects
        included; a bare bucket name then also deletes the (emptied) bucket."""
        with self._scope() as types:
            paths = self.expand_path(path, recursive=recursive, maxdepth=maxdepth)
        urls = [self._url(p) for p in paths if types.get(p) != "directory"]
        if urls:
            self.s3.delete_many(urls)
        if recursive:
            self._rm_markers([p for p in paths if types.get(p) == "directory"],
                             maxdepth is None)

    def _rm_markers(self, dirs: list[str], buckets: bool) -> None:
        """Delete ``key/`` marker objects left under the deleted directories (a listing
        shows them only as prefixes); remove emptied buckets that were named themselves."""
        tops = [d for d in dirs if not any(d.startswith(o + "/") for o in dirs)]
        for top in tops:
            bucket, _, key = top.partition("/")
            if not key:
                if buckets:
                    self._rm_bucket_markers(bucket)
                    self.rmdir(bucket)
                continue
            left = self._control("list_objects_v2", self._url(top), Bucket=bucket,
                                 Prefix=key + "/")
            markers = [f"s3://{bucket}/{c['Key']}" for c in left.get("Contents", [])
                       if c["Key"].endswith("/")]
            if markers:
                self.s3.delete_many(markers)

    def _rm_bucket_markers(self, bucket: str) -> None:
        left = self._control("list_objects_v2", "s3://" + bucket, Bucket=bucket)
        markers = [f"s3://{bucket}/{c['Key']}" for c in left.get("Contents", [])
                   if c["Key"].endswith("/")]
        if markers:
            self.s3.delete_many(markers)


def _check_inside(root: str, paths: list[str]) -> None:
    """Raise :class:`S3URLError` if a destination built from listed keys (``..`` in a key)
    would land outside ``root``, before anything is downloaded."""
    base = os.path.abspath(root)
    for path in paths:
        full = os.path.abspath(path)
        if full != base and os.path.commonpath([base, full]) != base:
            raise S3URLError("Key would escape the destination directory", url=path)


def _place(src: str, dst: str) -> None:
    """Move a finished download to ``dst`` atomically (rename; across file systems: copy
    to a temp file beside ``dst``, then rename)."""
    parent = os.path.dirname(os.path.abspath(dst))
    os.makedirs(parent, exist_ok=True)
    try:
        os.replace(src, dst)
        return
    except OSError as e:
        if e.errno != errno.EXDEV:
            raise
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(dst) + ".", suffix=".part",
                               dir=parent)
    try:
        with open(src, "rb") as f, os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(f, out, 1 << 20)
        os.replace(tmp, dst)
    except BaseException:
        _unlink(tmp)
        raise


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
