"""``fasts3/engine/files.py`` on its own: the free-space estimate workers use instead of a
``statvfs`` per object, and unnamed (``O_TMPFILE``) files that get their name only when
complete (small downloads that arrive whole)."""

from __future__ import annotations

import errno
import os
import stat

import pytest

from fasts3.engine import files


def test_space_check_reads_free_space_once_per_interval(tmp_path, monkeypatch):
    calls = []
    free = {"n": 10_000}

    def fake_free(directory):
        calls.append(directory)
        return free["n"]

    monkeypatch.setattr(files, "_free", fake_free)
    space = files.SpaceCheck(interval=60.0, large=5_000)
    path = str(tmp_path / "a.part")
    for _ in range(5):
        space.check(path, 1_000)  # small: from the estimate, which shrinks
    assert len(calls) == 1
    space.check(path, 6_000)  # large: read afresh (10,000: it fits)
    assert len(calls) == 2
    free["n"] = 4_000  # the disk filled up
    with pytest.raises(OSError) as ei:
        space.check(path, 6_000)
    assert ei.value.errno == errno.ENOSPC and "Not enough free space" in str(ei.value)
    assert len(calls) == 3  # a refusal always rests on a fresh number
    free["n"] = 1_000_000  # space was freed
    space.check(path, 4_500)  # small, but the estimate (4,000) says no: read afresh
    assert len(calls) == 4
    space.check(path, 0)  # nothing to check
    space.check(path, 1_000)  # small, within the estimate
    assert len(calls) == 4


def test_space_check_refuses_what_does_not_fit(tmp_path):
    with pytest.raises(OSError) as ei:
        files.SpaceCheck().check(str(tmp_path / "x"), 1 << 62)
    assert ei.value.errno == errno.ENOSPC and ei.value.filename == str(tmp_path)


@pytest.mark.skipif(not files._unnamed_ok, reason="no O_TMPFILE here")
def test_unnamed_file_appears_only_when_committed(tmp_path):
    final = str(tmp_path / "obj")
    fd = files.create_unnamed(final, 5)
    assert fd >= 0
    try:
        os.write(fd, b"hello")
        assert os.listdir(tmp_path) == []  # no name of any kind while it is written
        files.commit_unnamed(fd, final, str(tmp_path / ".obj.part"))
    finally:
        os.close(fd)
    assert open(final, "rb").read() == b"hello"
    assert stat.S_IMODE(os.stat(final).st_mode) == 0o600
    fd = files.create_unnamed(str(tmp_path / "never"), 3)
    os.write(fd, b"abc")
    os.close(fd)  # not committed (a failed download): nothing remains
    assert os.listdir(tmp_path) == ["obj"]
    fd = files.create_unnamed(final, 3)
    try:
        os.write(fd, b"new")  # a destination written again: replaced, atomically
        files.commit_unnamed(fd, final, str(tmp_path / ".obj.part"))
    finally:
        os.close(fd)
    assert open(final, "rb").read() == b"new" and os.listdir(tmp_path) == ["obj"]


def test_unnamed_files_fall_back_where_unsupported(tmp_path, monkeypatch):
    monkeypatch.setattr(files, "_unnamed_ok", False)
    assert files.create_unnamed(str(tmp_path / "x"), 1) == -1


def test_create_preallocates_only_when_asked(tmp_path):
    for preallocate, size in ((True, 4096), (False, 0)):
        path = str(tmp_path / f"p{preallocate}")
        os.close(files.create(path, 4096, preallocate=preallocate))
        assert os.path.getsize(path) == size
