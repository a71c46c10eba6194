"""``profile()`` on every kind of input gives the profile of the same rows.

In-memory frames (polars, pandas, pyarrow, DuckDB), files of every format, directories and globs,
text files split into byte ranges, ``s3://`` paths on a real moto S3 server on 127.0.0.1, and bad
inputs that must fail with the project's errors naming the path.
"""

from __future__ import annotations

import datetime as dt
import io
import os

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest

import truthound_sketch as ts
import truthound_sketch.sources as sources
import truthound_sketch.workers as workers
from _core_compare import assert_columns_equal, assert_profiles_equal
from truthound_sketch import InputError, UnsupportedInputError

N = 30_000


@pytest.fixture(scope="module")
def frame() -> pl.DataFrame:
    """Columns that survive every file format unchanged (no empty strings: CSV reads them as null)."""
    rng = np.random.default_rng(5)
    words = np.array(["alpha", "beta", "gamma", "δέλτα", "東京", "🦀 crab", "x y z"])
    f = rng.normal(100, 15, N).round(3)
    f[rng.random(N) < 0.05] = np.nan
    return pl.DataFrame({
        "id": np.arange(N, dtype=np.int64),                     # high cardinality: sketched
        "small": rng.integers(-50, 50, N),
        "f": f,
        "word": pl.Series(words[rng.integers(0, len(words), N)]),
        "flag": rng.random(N) < 0.3,
    }).with_columns(pl.col("f").fill_nan(None), pl.when(pl.col("small") > 40).then(None).otherwise(pl.col("word")).alias("word"))  # fmt: skip


@pytest.fixture(scope="module")
def reference(frame):
    return ts.profile(frame, num_workers=1)


def same(prof, reference, *, strict: bool = False) -> None:
    """Exact statistics identical; sketched columns' quantiles/top values may differ by split."""
    assert_profiles_equal(prof, reference, strict=strict)


# -- in-memory ------------------------------------------------------------------------------------
def test_polars_inputs(frame, reference) -> None:
    same(ts.profile(frame), reference)
    same(ts.profile(frame.lazy()), reference)
    same(ts.profile(frame.lazy().filter(pl.lit(True))), reference)
    prof = ts.profile(frame.lazy(), columns=("small", "word"))
    assert [c.name for c in prof.columns] == ["small", "word"]


def test_pandas(frame, reference) -> None:
    pdf = frame.to_pandas()
    same(ts.profile(pdf), reference)


def test_pyarrow_table_and_reader(frame, reference) -> None:
    table = frame.to_arrow()
    same(ts.profile(table), reference)
    reader = pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=7_000))
    prof = ts.profile(reader)
    assert prof.source == "RecordBatchReader"
    same(prof, reference)


def test_pyarrow_dataset(frame, reference, tmp_path) -> None:
    for i, part in enumerate(frame.iter_slices(11_000)):
        part.write_parquet(tmp_path / f"part-{i}.parquet", row_group_size=4_000)
    dataset = pads.dataset(str(tmp_path), format="parquet")
    assert sources.resolve_source(dataset).is_files  # plain files: workers read their row groups
    same(ts.profile(dataset), reference)
    negative = frame.filter(pl.col("small") < 0)
    for filtered in (dataset.filter(pads.field("small") < 0), dataset.scanner(filter=pads.field("small") < 0).to_reader()):
        prof = ts.profile(filtered)
        assert prof.row_count == negative.height
        same(prof, ts.profile(negative))


def test_pyarrow_dataset_with_partition_columns(frame, tmp_path) -> None:
    """Hive partition columns come from directory names, not from the files: they are profiled."""
    for flag, part in frame.group_by("flag"):
        d = tmp_path / f"flag={str(flag[0]).lower()}"
        d.mkdir()
        part.drop("flag").write_parquet(d / "part.parquet")
    dataset = pads.dataset(str(tmp_path), format="parquet", partitioning="hive")
    prof = ts.profile(dataset)
    assert sorted(c.name for c in prof.columns) == sorted(frame.columns)
    flag = prof.column("flag")
    assert flag.count == N and flag.distinct.estimate == 2


def test_duckdb_relation(frame, reference) -> None:
    duckdb = pytest.importorskip("duckdb")
    con = duckdb.connect()
    con.register("frame", frame.to_arrow())
    rel = con.sql("select * from frame order by id")
    assert hasattr(rel, "__arrow_c_stream__")
    same(ts.profile(rel), reference)
    con.close()


# -- files ----------------------------------------------------------------------------------------
WRITERS = {
    "csv": lambda df, p: df.write_csv(p),
    "tsv": lambda df, p: df.write_csv(p, separator="\t"),
    "parquet": lambda df, p: df.write_parquet(p, row_group_size=5_000),
    "ndjson": lambda df, p: df.write_ndjson(p),
    "jsonl": lambda df, p: df.write_ndjson(p),
    "json": lambda df, p: df.write_json(p),
    "arrow": lambda df, p: df.write_ipc(p),
    "feather": lambda df, p: df.write_ipc(p),
    "arrows": lambda df, p: df.write_ipc_stream(p),
}


@pytest.mark.parametrize("ext", list(WRITERS))
@pytest.mark.parametrize("workers", [1, 2])
def test_file_formats(frame, reference, tmp_path, ext: str, workers: int) -> None:
    path = tmp_path / f"data.{ext}"
    WRITERS[ext](frame, path)
    prof = ts.profile(str(path), num_workers=workers)
    assert prof.source == str(path)
    same(prof, reference)
    by_pathlike = ts.profile(path, num_workers=workers)  # os.PathLike
    assert by_pathlike.source == str(path)
    same(by_pathlike, reference)


def test_directory_glob_and_list(frame, reference, tmp_path) -> None:
    d = tmp_path / "dir"
    (d / "nested").mkdir(parents=True)
    parts = list(frame.iter_slices(8_000))
    parts[0].write_parquet(d / "a.parquet")
    parts[1].write_csv(d / "b.csv")
    parts[2].write_ndjson(d / "nested" / "c.ndjson")
    parts[3].write_ipc(d / "nested" / "d.arrow")
    (d / "_SUCCESS").write_text("")
    (d / ".hidden.csv").write_text("junk\n")
    (d / "notes.md").write_text("not data")
    same(ts.profile(str(d)), reference)
    same(ts.profile(str(d) + "/"), reference)
    glob_prof = ts.profile(str(d / "**" / "*.*[nw]"))  # .ndjson, .arrow
    assert glob_prof.row_count == parts[2].height + parts[3].height
    with pytest.raises(UnsupportedInputError, match="notes.md"):  # a glob names files: none is skipped
        ts.profile(str(d / "*.*"))
    only_pq = ts.profile(str(tmp_path / "dir" / "*.parquet"))
    assert only_pq.row_count == parts[0].height
    same(ts.profile([str(d / "a.parquet"), str(d / "b.csv"), str(d / "nested")]), reference)


@pytest.mark.parametrize("fmt", ["csv", "tsv", "ndjson"])
def test_text_split_into_byte_ranges(frame, tmp_path, monkeypatch, fmt: str) -> None:
    path = tmp_path / f"big.{fmt}"
    WRITERS[fmt](frame, path)
    whole = ts.profile(str(path), num_workers=1)
    size = os.path.getsize(path)
    monkeypatch.setattr(sources, "_SPLIT_BYTES", size // 5)
    plan = sources.resolve_source(str(path), min_slices=2)
    ranges = [s.byte_range for s in plan.slices]
    assert len(ranges) >= 5 and ranges[0][0] == 0 and ranges[-1][1] == size
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))  # contiguous, no gaps or overlaps
    split = ts.profile(str(path), num_workers=2)
    assert split.partitions == len(ranges)
    assert split.row_count == N
    same(split, whole)
    for col in split.columns:
        if col.exact:  # exact columns: even quantiles and top values are identical
            assert_columns_equal(col, whole.column(col.name), strict=True)
    assert [c.exact for c in split.columns] == [False, True, False, True, True]


def test_large_csv_in_worker_processes(frame, tmp_path, monkeypatch) -> None:
    """A CSV above the pool threshold: worker processes read byte ranges of it."""
    from truthound_sketch.distributed import LocalBackend

    path = tmp_path / "large.csv"
    big = pl.concat([frame] * 20)  # ~20 MB
    big.write_csv(path)
    assert os.path.getsize(path) >= workers.POOL_MIN_BYTES
    monkeypatch.setattr(sources, "_SPLIT_BYTES", 4 << 20)
    backend = LocalBackend(num_workers=2, use_processes=True)
    prof = backend.profile(str(path))
    assert backend.last_pool_pids, "the process pool did not run"
    assert prof.partitions >= 4 and prof.row_count == big.height
    same(prof, ts.profile(big, num_workers=1))


def test_compressed_csv(frame, reference, tmp_path) -> None:
    import gzip

    raw = frame.write_csv()
    (tmp_path / "data.csv.gz").write_bytes(gzip.compress(raw.encode()))
    same(ts.profile(str(tmp_path / "data.csv.gz")), reference)


# -- s3 on a real moto server ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def s3(frame):
    pytest.importorskip("s3fs")
    boto3 = pytest.importorskip("boto3")
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    try:
        host, port = server.get_host_and_port()
        url = f"http://{host}:{port}"
        client = boto3.client("s3", endpoint_url=url, aws_access_key_id="x", aws_secret_access_key="x",
                              region_name="us-east-1")  # fmt: skip
        client.create_bucket(Bucket="profiles-bucket")
        parts = list(frame.iter_slices(10_000))
        for i, part in enumerate(parts):
            buf = io.BytesIO()
            part.write_parquet(buf, row_group_size=3_000)
            client.put_object(Bucket="profiles-bucket", Key=f"data/part-{i}.parquet", Body=buf.getvalue())
        client.put_object(Bucket="profiles-bucket", Key="text/all.csv", Body=frame.write_csv().encode())
        client.put_object(Bucket="profiles-bucket", Key="text/all.ndjson", Body=frame.write_ndjson().encode())
        buf = io.BytesIO()
        frame.write_ipc(buf)
        client.put_object(Bucket="profiles-bucket", Key="text/all.arrow", Body=buf.getvalue())
        yield {"client_kwargs": {"endpoint_url": url}, "key": "x", "secret": "x"}
    finally:
        server.stop()


@pytest.mark.parametrize("path", [
    "s3://profiles-bucket/data/", "s3://profiles-bucket/data/*.parquet", "s3://profiles-bucket/text/all.csv",
    "s3://profiles-bucket/text/all.ndjson", "s3://profiles-bucket/text/all.arrow",
])  # fmt: skip
def test_s3_paths(s3, reference, path: str) -> None:
    prof = ts.profile(path, storage_options=s3, num_workers=2)
    assert prof.source == path
    same(prof, reference)


def test_s3_split_csv_and_profiler(s3, reference, monkeypatch) -> None:
    from truthound_sketch.distributed import DistributedProfiler

    monkeypatch.setattr(sources, "_SPLIT_BYTES", 200_000)
    with DistributedProfiler.create("local", num_workers=2, storage_options=s3) as profiler:
        prof = profiler.profile("s3://profiles-bucket/text/all.csv")
    assert prof.partitions > 2
    same(prof, reference)


def test_s3_missing_key_names_path(s3) -> None:
    with pytest.raises(InputError, match="s3://profiles-bucket/nope.parquet"):
        ts.profile("s3://profiles-bucket/nope.parquet", storage_options=s3)
    with pytest.raises(InputError, match="matched no files"):
        ts.profile("s3://profiles-bucket/data/*.csv", storage_options=s3)


# -- bad inputs -----------------------------------------------------------------------------------
def test_missing_file(tmp_path) -> None:
    path = str(tmp_path / "nothing.parquet")
    with pytest.raises(InputError, match="nothing.parquet") as info:
        ts.profile(path)
    assert path in str(info.value)


def test_empty_glob(tmp_path) -> None:
    with pytest.raises(InputError, match="matched no files") as info:
        ts.profile(str(tmp_path / "*.csv"))
    assert str(tmp_path) in str(info.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="matched no files"):
        ts.profile(str(tmp_path / "empty"))


def test_unknown_extension(tmp_path) -> None:
    path = tmp_path / "data.xlsx"
    path.write_bytes(b"PK\x03\x04")
    with pytest.raises(UnsupportedInputError, match=r"data\.xlsx.*'\.xlsx'"):
        ts.profile(str(path))


@pytest.mark.parametrize("workers", [1, 2])
def test_corrupt_files(tmp_path, workers: int) -> None:
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1 this is not parquet at all PAR1")
    with pytest.raises(InputError, match="bad.parquet"):
        ts.profile(str(bad), num_workers=workers)
    arrow = tmp_path / "bad.arrow"
    arrow.write_bytes(b"ARROW1\x00\x00garbage")
    with pytest.raises(InputError, match="bad.arrow"):
        ts.profile(str(arrow), num_workers=workers)
    js = tmp_path / "bad.ndjson"
    js.write_text('{"a": 1}\n{"a": \n')
    with pytest.raises(InputError, match="bad.ndjson"):
        ts.profile(str(js), num_workers=workers)


def test_truncated_parquet_in_directory(frame, tmp_path) -> None:
    good = tmp_path / "a.parquet"
    frame.write_parquet(good)
    data = good.read_bytes()
    (tmp_path / "b.parquet").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="b.parquet"):
        ts.profile(str(tmp_path))


def test_unsupported_objects() -> None:
    for obj in (42, {"a": [1, 2]}, object(), b"bytes", [1, 2, 3]):
        with pytest.raises(UnsupportedInputError, match="cannot profile an object of type"):
            ts.profile(obj)


def test_missing_column(frame, tmp_path) -> None:
    frame.write_parquet(tmp_path / "x.parquet")
    with pytest.raises(InputError, match="nope"):
        ts.profile(str(tmp_path / "x.parquet"), columns=("id", "nope"))
    with pytest.raises(InputError, match="nope"):
        ts.profile(frame, columns=("nope",))


def test_dates_survive_parquet_and_ipc(tmp_path) -> None:
    df = pl.DataFrame({
        "d": [dt.date(2020, 1, 1), None, dt.date(1999, 12, 31)],
        "t": pl.Series([dt.datetime(2020, 1, 1, 5), dt.datetime(2021, 6, 1), None]).dt.replace_time_zone("Europe/Berlin"),
    })  # fmt: skip
    ref = ts.profile(df)
    for ext in ("parquet", "arrow", "arrows"):
        WRITERS[ext](df, tmp_path / f"x.{ext}")
        same(ts.profile(str(tmp_path / f"x.{ext}")), ref, strict=True)  # small: exact


def test_s3_in_worker_processes(s3, reference, monkeypatch) -> None:
    """storage_options travel to worker processes with the slices."""
    from truthound_sketch.distributed import LocalBackend

    monkeypatch.setattr(workers, "POOL_MIN_BYTES", 0)
    backend = LocalBackend(num_workers=2, use_processes=True, storage_options=s3)
    prof = backend.profile("s3://profiles-bucket/data/")
    assert len(backend.last_pool_pids) == 2
    same(prof, reference)


@pytest.mark.parametrize("terminator", ["\n", "\r\n"], ids=["lf", "crlf"])
@pytest.mark.parametrize("columns", [None, ("f",), ("word", "small")], ids=["all", "one", "reordered"])
def test_split_csv_with_columns(frame, tmp_path, monkeypatch, terminator: str, columns) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes(frame.write_csv(line_terminator=terminator).rstrip("\r\n").encode())  # no final newline
    whole = ts.profile(str(path), num_workers=1, columns=columns)
    monkeypatch.setattr(sources, "_SPLIT_BYTES", os.path.getsize(path) // 4)
    split = ts.profile(str(path), num_workers=2, columns=columns)
    assert split.partitions >= 4
    assert [c.name for c in split.columns] == list(columns or frame.columns)
    same(split, whole)
    same(split, ts.profile(frame.select(columns) if columns else frame))


def test_columns_are_one_column_tables(frame, reference) -> None:
    """A polars Series or Arrow array (which also speak the Arrow stream protocol) is one column."""
    for col in (frame["small"], frame["small"].to_arrow(), pa.chunked_array([frame["small"].to_arrow()])):
        prof = ts.profile(col)
        assert prof.column_count == 1 and prof.row_count == N
        got = prof.columns[0]
        want = reference.column("small")
        assert (got.count, got.null_count, got.min, got.max, got.distinct, got.quantiles) == (
            want.count, want.null_count, want.min, want.max, want.distinct, want.quantiles)


def test_arrow_stream_that_is_not_a_table() -> None:
    class ColumnStream:
        def __arrow_c_stream__(self, requested_schema=None):
            return pa.chunked_array([[1, 2]]).__arrow_c_stream__(requested_schema)

    with pytest.raises(UnsupportedInputError, match="ColumnStream.*not a table"):
        ts.profile(ColumnStream())


@pytest.mark.parametrize("ext", ["parquet", "arrow", "feather", "arrows"])
def test_empty_files_keep_their_columns(tmp_path, ext: str) -> None:
    empty = pl.DataFrame(schema={"a": pl.Int64, "s": pl.String, "t": pl.Datetime("ms", "UTC")})
    WRITERS[ext](empty, tmp_path / f"e.{ext}")
    for workers in (1, 2):
        prof = ts.profile(str(tmp_path / f"e.{ext}"), num_workers=workers)
        assert prof.row_count == 0
        assert [(c.name, c.dtype, c.count) for c in prof.columns] == [(k, str(v), 0) for k, v in empty.schema.items()]
    assert [c.name for c in ts.profile(str(tmp_path / f"e.{ext}"), columns=("t",)).columns] == ["t"]


def test_empty_text_files_name_the_file(tmp_path) -> None:
    (tmp_path / "e.csv").write_text("")
    (tmp_path / "e.ndjson").write_text("")
    for name in ("e.csv", "e.ndjson"):
        with pytest.raises(InputError, match=name):
            ts.profile(str(tmp_path / name))
    (tmp_path / "h.csv").write_text("a,b\n")
    prof = ts.profile(str(tmp_path / "h.csv"))
    assert prof.row_count == 0 and [c.name for c in prof.columns] == ["a", "b"]
