"""pandas, pyarrow and dask on ``fasts3://`` URLs against SeaweedFS, with s3fs-style
``storage_options`` (``endpoint_url``, ``key``, ``secret``)."""

from __future__ import annotations

import pytest

pd = pytest.importorskip("pandas")
pa = pytest.importorskip("pyarrow")
pytest.importorskip("fsspec")

import fsspec  # noqa: E402
import pyarrow.dataset as ds  # noqa: E402
from fsspec_util import register, storage_options  # noqa: E402


@pytest.fixture(autouse=True)
def _protocol() -> None:
    register()


@pytest.fixture
def opts(seaweed) -> dict:
    return storage_options(seaweed)


def _frame(n: int = 1000, offset: int = 0) -> pd.DataFrame:
    return pd.DataFrame({"i": range(offset, offset + n),
                         "s": [f"row-{k}" for k in range(offset, offset + n)],
                         "x": [k / 7 for k in range(offset, offset + n)]})


def test_read_csv_plain_and_compressed(opts, bucket):
    df = _frame(500)
    df.to_csv(f"fasts3://{bucket}/t.csv", index=False, storage_options=opts)
    df.to_csv(f"fasts3://{bucket}/t.csv.gz", index=False, storage_options=opts)
    fs = fsspec.filesystem("fasts3", **opts)
    assert fs.cat_file(f"{bucket}/t.csv").startswith(b"i,s,x\n0,row-0,")
    assert fs.cat_file(f"{bucket}/t.csv.gz")[:2] == b"\x1f\x8b"  # gzip, inferred from name
    for name in ("t.csv", "t.csv.gz"):
        got = pd.read_csv(f"fasts3://{bucket}/{name}", storage_options=opts)
        pd.testing.assert_frame_equal(got, df)


def test_to_parquet_and_read_parquet(opts, bucket):
    df = _frame(20_000)
    url = f"fasts3://{bucket}/p/t.parquet"
    df.to_parquet(url, storage_options=opts, row_group_size=4096)
    pd.testing.assert_frame_equal(pd.read_parquet(url, storage_options=opts), df)
    some = pd.read_parquet(url, storage_options=opts, columns=["s"],
                           filters=[("i", ">=", 19_990)])
    assert list(some["s"]) == [f"row-{k}" for k in range(19_990, 20_000)]


def test_pyarrow_dataset(opts, bucket):
    fs = fsspec.filesystem("fasts3", **opts)
    for part in range(3):
        _frame(100, part * 100).to_parquet(f"fasts3://{bucket}/ds/part={part}/0.parquet",
                                           storage_options=opts)
    dataset = ds.dataset(f"{bucket}/ds", filesystem=fs, format="parquet",
                         partitioning="hive")
    table = dataset.to_table(filter=ds.field("part") == 2)
    assert sorted(table.column("i").to_pylist()) == list(range(200, 300))
    assert dataset.count_rows() == 300


def test_dask_read_parquet(opts, bucket):
    dd = pytest.importorskip("dask.dataframe")
    for part in range(4):
        _frame(250, part * 250).to_parquet(f"fasts3://{bucket}/dd/{part}.parquet",
                                           storage_options=opts)
    ddf = dd.read_parquet(f"fasts3://{bucket}/dd/", storage_options=opts)
    assert ddf.npartitions == 4
    got = ddf.compute().sort_values("i").reset_index(drop=True)
    pd.testing.assert_frame_equal(got, _frame(1000), check_dtype=False)
