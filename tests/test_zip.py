"""ZIP archives on S3: stdlib zipfile over S3.open() (bytes fetched are counted), and
fasts3.zip listing / parallel extraction / CLI, ZIP64, bad input."""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import subprocess
import sys
import uuid
import zipfile

import pytest

from fasts3 import S3
from fasts3.errors import S3Error, S3NotFound, S3URLError
from fasts3.seekable import S3ObjectChanged
from fasts3.zip import (
    S3BadZipFile,
    add_zip_commands,
    open_zip,
    run_zip_command,
    zip_get,
    zip_ls,
)

MiB = 1 << 20
# 64 symbols: 6 bits of entropy per byte, so deflate shrinks it to ~3/4 (a real compressed size)
_TABLE = bytes(b"abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ+/"[b & 63]
               for b in range(256))
STORED = [f"stored/{i:02}.bin" for i in range(20)]  # 20 x 10 MiB of random bytes
DEFLATED = "text/big.txt"  # 12 MiB, deflated


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def big(seaweed, tmp_path_factory):
    """A > 200 MiB archive (stored random members, a deflated member, small ones) uploaded
    once: ``(s3 kwargs, root, key, {name: sha256})``."""
    path = tmp_path_factory.mktemp("bigzip") / "big.zip"
    sums = {}
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("README.txt", b"hello\n" * 100, compress_type=zipfile.ZIP_DEFLATED)
        sums["README.txt"] = _sha(b"hello\n" * 100)
        for name in STORED:
            blob = os.urandom(10 * MiB)
            with z.open(name, "w") as m:
                m.write(blob)
            sums[name] = _sha(blob)
        blob = os.urandom(12 * MiB).translate(_TABLE)
        z.writestr(DEFLATED, blob, compress_type=zipfile.ZIP_DEFLATED, compresslevel=1)
        sums[DEFLATED] = _sha(blob)
    assert path.stat().st_size >= 200 * MiB
    bucket = f"zip-big-{uuid.uuid4().hex[:10]}"
    seaweed.create_bucket(bucket)
    kwargs = dict(endpoint_url=seaweed.endpoint_url, session_vars=seaweed.session_vars(),
                  progress=False)
    with S3(s3root=f"s3://{bucket}", **kwargs) as s3:
        s3.put_files([("big.zip", str(path))])
    path.unlink()
    yield kwargs, f"s3://{bucket}", "big.zip", sums
    try:
        seaweed.client().delete_bucket(Bucket=bucket)
    except Exception:  # noqa: BLE001 - best effort
        pass


def test_stdlib_listing_fetches_under_1mib(big):
    kwargs, root, key, sums = big
    with S3(s3root=root, **kwargs) as s3, s3.open(key) as f:
        z = zipfile.ZipFile(f)
        assert sorted(z.namelist()) == sorted(sums)
        sys.stderr.write(f"\nlisting: {f.bytes_fetched} bytes in {f.requests} requests "
                         f"(archive {f.size} bytes)\n")
        assert f.size >= 200 * MiB
        assert f.bytes_fetched < MiB


@pytest.mark.parametrize("how", ["read", "stream"])
def test_stdlib_list_and_read_member_fetches_little_more(big, how):
    kwargs, root, key, sums = big
    name = STORED[7]
    with S3(s3root=root, **kwargs) as s3, s3.open(key) as f:
        z = zipfile.ZipFile(f)
        zi = z.getinfo(name)
        if how == "read":
            data = z.read(name)
        else:
            with z.open(name) as m:
                data = b"".join(iter(lambda: m.read(64 * 1024), b""))
        assert _sha(data) == sums[name]
        ratio = f.bytes_fetched / zi.compress_size
        sys.stderr.write(f"\nlist+{how} {name}: {f.bytes_fetched} bytes, {f.requests} "
                         f"requests, {ratio:.3f} x compressed size {zi.compress_size}\n")
        assert ratio < 1.25


def test_stdlib_reads_deflated_member(big):
    kwargs, root, key, sums = big
    with S3(s3root=root, **kwargs) as s3, s3.open(key) as f:
        z = zipfile.ZipFile(f)
        zi = z.getinfo(DEFLATED)
        assert zi.compress_type == zipfile.ZIP_DEFLATED and zi.compress_size < 10 * MiB
        with z.open(DEFLATED) as m:
            h = hashlib.sha256()
            for chunk in iter(lambda: m.read(256 * 1024), b""):
                h.update(chunk)
        assert h.hexdigest() == sums[DEFLATED]
        ratio = f.bytes_fetched / zi.compress_size
        sys.stderr.write(f"\nlist+stream deflated: {f.bytes_fetched} bytes, "
                         f"{ratio:.3f} x compressed size {zi.compress_size}\n")
        assert ratio < 1.25


def test_zip_ls_and_get_selected_members(big, tmp_path):
    kwargs, root, key, sums = big
    with S3(s3root=root, **kwargs) as s3:
        infos = zip_ls(s3, key)
        assert [zi.filename for zi in infos][:2] == ["README.txt", STORED[0]]
        with open_zip(s3, key) as z:
            assert z.s3file.bytes_fetched < MiB
        chosen = [STORED[3], DEFLATED, "README.txt"]
        paths = zip_get(s3, key, str(tmp_path / "out"), chosen)
        assert paths == [str(tmp_path / "out" / n) for n in chosen]
        for name, p in zip(chosen, paths, strict=True):
            with open(p, "rb") as fh:
                assert _sha(fh.read()) == sums[name]
        assert os.listdir(s3.tmpdir) == []  # fetched ranges are removed once extracted
        assert sorted(os.listdir(tmp_path / "out")) == ["README.txt", "stored", "text"]
        with pytest.raises(S3NotFound) as ei:
            zip_get(s3, key, str(tmp_path / "x"), ["no/such/member"])
        assert ei.value.code == "NoSuchMember" and ei.value.url == f"{root}/{key}"


def _small_zip(**kw) -> tuple[bytes, dict[str, bytes]]:
    members = {
        "a/stored.bin": (os.urandom(70_000), zipfile.ZIP_STORED),
        "a/deflate.txt": (b"deflate me " * 50_000, zipfile.ZIP_DEFLATED),
        "b/bz2.txt": (b"bzip2 me " * 50_000, zipfile.ZIP_BZIP2),
        "b/lzma.txt": (b"lzma me " * 50_000, zipfile.ZIP_LZMA),
        "empty.txt": (b"", zipfile.ZIP_DEFLATED),
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(zipfile.ZipInfo("dir/"), b"")
        for name, (blob, method) in members.items():
            zi = zipfile.ZipInfo(name, (2024, 1, 2, 3, 4, 6))
            zi.compress_type = method
            with z.open(zi, "w", **kw) as m:
                m.write(blob)
    return buf.getvalue(), {n: b for n, (b, _) in members.items()}


@pytest.mark.parametrize("mode", ["plain", "force_zip64", "zip64_everywhere"])
def test_extract_all_methods_and_zip64(seaweed, bucket, s3_kwargs, tmp_path, monkeypatch,
                                       mode):
    with monkeypatch.context() as m:
        if mode == "zip64_everywhere":  # offsets, sizes and the end record all in ZIP64 form
            m.setattr(zipfile, "ZIP64_LIMIT", 1 << 10)
        archive, members = _small_zip(force_zip64=mode != "plain")
    seaweed.client().put_object(Bucket=bucket, Key="m.zip", Body=archive)
    with S3(s3root=f"s3://{bucket}", **s3_kwargs) as s3:
        infos = zip_ls(s3, "m.zip")
        if mode == "force_zip64":  # local headers: sizes 0xFFFFFFFF plus a ZIP64 extra field
            for zi in infos[1:]:
                head = archive[zi.header_offset:zi.header_offset + 30]
                name_len = int.from_bytes(head[26:28], "little")
                assert head[18:22] == b"\xff" * 4
                assert archive[zi.header_offset + 30 + name_len:][:2] == b"\x01\x00"
        if mode == "zip64_everywhere":
            assert b"PK\x06\x06" in archive[-200:]  # ZIP64 end of central directory
            assert infos[-1].header_offset > 1 << 10 and infos[-1].extra[:2] == b"\x01\x00"
        assert [zi.filename for zi in infos] == ["dir/", *members]
        paths = zip_get(s3, "m.zip", str(tmp_path / "out"), threads=3)
        assert paths[0] == str(tmp_path / "out" / "dir") and os.path.isdir(paths[0])
        for name, blob in members.items():
            with open(tmp_path / "out" / name, "rb") as fh:
                assert fh.read() == blob
        zip_get(s3, "m.zip", str(tmp_path / "out"), lambda zi: zi.filename.startswith("b/"))
        with open_zip(s3, "m.zip") as z:  # the stdlib path handles ZIP64 too
            assert z.read("b/lzma.txt") == members["b/lzma.txt"]


def test_not_a_zip_and_truncated(seaweed, bucket, s3_kwargs, tmp_path):
    archive, _ = _small_zip()
    client = seaweed.client()
    client.put_object(Bucket=bucket, Key="notzip.zip", Body=os.urandom(100_000))
    client.put_object(Bucket=bucket, Key="tiny.zip", Body=b"PK")
    client.put_object(Bucket=bucket, Key="half.zip", Body=archive[: len(archive) // 2])
    client.put_object(Bucket=bucket, Key="cut.zip", Body=archive[:-10])
    with S3(s3root=f"s3://{bucket}", **s3_kwargs) as s3:
        for key in ("notzip.zip", "tiny.zip", "half.zip", "cut.zip"):
            for call in (lambda k: zip_ls(s3, k),
                         lambda k: zip_get(s3, k, str(tmp_path / "out"))):
                with pytest.raises(S3BadZipFile) as ei:
                    call(key)
                assert isinstance(ei.value, zipfile.BadZipFile)
                assert isinstance(ei.value, S3Error)
                assert ei.value.url == f"s3://{bucket}/{key}"
        with pytest.raises(S3NotFound):
            zip_ls(s3, "missing.zip")
    assert not os.path.exists(tmp_path / "out") or os.listdir(tmp_path / "out") == []


def test_corrupt_member_fails_crc_and_writes_nothing(seaweed, bucket, s3_kwargs, tmp_path):
    blob = os.urandom(200_000)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("ok.txt", b"fine")
        z.writestr("data.bin", blob)
    raw = bytearray(buf.getvalue())
    at = raw.index(blob[1000:1100])
    raw[at] ^= 0xFF
    seaweed.client().put_object(Bucket=bucket, Key="bad.zip", Body=bytes(raw))
    out = tmp_path / "out"
    with S3(s3root=f"s3://{bucket}", **s3_kwargs) as s3:
        with pytest.raises(S3BadZipFile) as ei:
            zip_get(s3, "bad.zip", str(out), ["data.bin"])
        assert ei.value.code == "BadCRC" and "data.bin" in str(ei.value)
        assert os.listdir(out) == []  # no partial file, no temp file
        assert zip_get(s3, "bad.zip", str(out), ["ok.txt"]) == [str(out / "ok.txt")]


@pytest.mark.parametrize("evil", ["../evil.txt", "/abs/evil.txt", "a/../../evil.txt",
                                  "a\\..\\..\\evil.txt", "C:/evil.txt"])
def test_member_names_cannot_escape_dest(seaweed, bucket, s3_kwargs, tmp_path, evil):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("good.txt", b"good")
        z.writestr(zipfile.ZipInfo(evil), b"evil")
    seaweed.client().put_object(Bucket=bucket, Key="evil.zip", Body=buf.getvalue())
    dest = tmp_path / "a" / "b" / "dest"
    with S3(s3root=f"s3://{bucket}", **s3_kwargs) as s3:
        assert evil in [zi.filename for zi in zip_ls(s3, "evil.zip")]
        with pytest.raises(S3URLError):
            zip_get(s3, "evil.zip", str(dest))
        assert not dest.exists()  # checked before anything is fetched or written
        with pytest.raises(S3URLError):
            zip_get(s3, "evil.zip", str(dest), [evil])
        assert zip_get(s3, "evil.zip", str(dest), ["good.txt"]) == [str(dest / "good.txt")]
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert written == ["a/b/dest/good.txt"]


def test_archive_overwritten_during_extraction(seaweed, bucket, s3_kwargs, tmp_path):
    archive, _ = _small_zip()
    client = seaweed.client()
    client.put_object(Bucket=bucket, Key="v.zip", Body=archive)

    def overwrite_then_choose(zi: zipfile.ZipInfo) -> bool:
        if zi.filename == "dir/":  # called once per member after the listing
            client.put_object(Bucket=bucket, Key="v.zip", Body=_small_zip()[0])
        return True

    with S3(s3root=f"s3://{bucket}", **s3_kwargs) as s3:
        with pytest.raises(S3ObjectChanged):
            zip_get(s3, "v.zip", str(tmp_path / "out"), overwrite_then_choose)


def test_cli_commands(seaweed, bucket, s3_kwargs, tmp_path, monkeypatch, capsys):
    archive, members = _small_zip()
    seaweed.client().put_object(Bucket=bucket, Key="c.zip", Body=archive)
    url = f"s3://{bucket}/c.zip"
    parser = argparse.ArgumentParser(prog="fasts3")
    parser.add_argument("--endpoint-url")
    add_zip_commands(parser.add_subparsers(dest="command"))
    for name, value in seaweed.env().items():
        monkeypatch.setenv(name, value)

    args = parser.parse_args(["--endpoint-url", seaweed.endpoint_url, "zip", "ls", url])
    assert args.func is run_zip_command and args.func(args) == 0
    out = capsys.readouterr().out
    assert "b/lzma.txt" in out and "lzma" in out and "6 members" in out
    args = parser.parse_args(["zip", "ls", "-1", url])
    assert run_zip_command(args) == 0
    assert capsys.readouterr().out.split() == ["dir/", *members]

    dest = tmp_path / "d"
    args = parser.parse_args(["zip", "get", url, "a/*", str(dest)])
    assert run_zip_command(args) == 0
    assert sorted(os.listdir(dest / "a")) == ["deflate.txt", "stored.bin"]
    with S3(**s3_kwargs) as s3:  # an S3 client passed in is used as is
        args = parser.parse_args(["zip", "get", url, "empty.txt", str(dest)])
        assert run_zip_command(args, s3) == 0
    assert capsys.readouterr().out.split()[-1] == str(dest / "empty.txt")
    with pytest.raises(S3NotFound):
        run_zip_command(parser.parse_args(["zip", "get", url, "nothing*", str(dest)]))

    env = dict(os.environ, **seaweed.env())
    cmd = [sys.executable, "-m", "fasts3.zip", "--endpoint-url", seaweed.endpoint_url]
    res = subprocess.run([*cmd, "get", url, "b/bz2.txt", "-"], env=env, capture_output=True,
                         timeout=120)
    assert res.returncode == 0 and res.stdout == members["b/bz2.txt"]
    res = subprocess.run([*cmd, "get", url, "*", str(tmp_path / "all")], env=env,
                         capture_output=True, timeout=120, text=True)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "all" / "b" / "lzma.txt").read_bytes() == members["b/lzma.txt"]
    res = subprocess.run([*cmd, "ls", f"s3://{bucket}/missing.zip"], env=env,
                         capture_output=True, timeout=120, text=True)
    assert res.returncode == 1 and "missing.zip" in res.stderr and "Traceback" not in res.stderr
