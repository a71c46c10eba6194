"""Decoding the first batches of a parquet file ahead, and planning without pyarrow: footer row
counts and column names read in Python, the batches the run reads, and a run that takes them (and
one that does not)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import truthound_sketch as ts
from _core_compare import assert_profiles_equal
from truthound_sketch import read_ahead
from truthound_sketch.cli import main
from truthound_sketch import sources
from truthound_sketch.errors import InputError
from truthound_sketch.parquet_footer import read_footer, row_counts
from truthound_sketch.sources import plan_files


def _write(path, sizes: list[int], nested: bool = False) -> pl.DataFrame:
    """A parquet file with row groups of these sizes (statistics, metadata and, with ``nested``,
    struct and list columns in the schema)."""
    rng = np.random.default_rng(len(sizes))
    n = sum(sizes)
    df = pl.DataFrame({"a": rng.integers(0, 1000, n), "b": rng.normal(size=n), "s": [f"k{i % 97}" for i in range(n)]})
    if nested:
        df = df.with_columns(pl.struct("a", "s").alias("st"), pl.concat_list("a", "a").alias("li"))
    table = df.to_arrow().replace_schema_metadata({"origin": "test"})
    with pq.ParquetWriter(path, table.schema) as writer:
        at = 0
        for size in sizes:
            writer.write_table(table.slice(at, size), row_group_size=max(size, 1))
            at += size
    return df


@pytest.mark.parametrize("sizes, nested", [([], False), ([7], False), ([1, 2, 3], True), ([5] * 300, False),
                                           ([1000, 0, 5, 40_000], True)])  # fmt: skip
def test_footer_row_counts_are_pyarrows(tmp_path, sizes, nested):
    path = tmp_path / "f.parquet"
    _write(path, sizes, nested)
    md = pq.ParquetFile(path).metadata
    total, groups = row_counts(str(path))
    assert total == md.num_rows == sum(sizes)
    assert list(groups) == [md.row_group(i).num_rows for i in range(md.num_row_groups)]
    footer = read_footer(str(path), 1 << 20)
    assert footer.rows == total and footer.group_rows == [md.row_group(i).num_rows for i in range(md.num_row_groups)]
    assert footer.columns == pq.ParquetFile(path).schema_arrow.names  # top-level names, nested ones too
    assert read_footer(str(path), 10) is None  # longer than allowed: pyarrow's to read


def test_malformed_footers_are_value_errors(tmp_path):
    path = tmp_path / "f.parquet"
    _write(path, [10, 20, 30])
    data = path.read_bytes()
    length = int.from_bytes(data[-8:-4], "little")
    cases = {
        "short.parquet": b"PAR1PAR1",
        "magic.parquet": data[:-4] + b"PAR2",
        "length.parquet": data[:-8] + (len(data)).to_bytes(4, "little") + b"PAR1",
        # the footer cut short: its row groups run past the end
        "cut.parquet": data[: -8 - length] + data[-8 - length : -8 - length // 2] + (length - length // 2).to_bytes(4, "little") + b"PAR1",
    }  # fmt: skip
    for name, content in cases.items():
        bad = tmp_path / name
        bad.write_bytes(content)
        with pytest.raises(ValueError):
            total, groups = row_counts(str(bad))
            list(groups)
        with pytest.raises(ValueError):
            read_footer(str(bad), 1 << 20)
        with pytest.raises(InputError, match=f"{name}: not a readable parquet file"):  # as pyarrow words it
            plan_files(str(bad), columns=None, storage_options={})
    with pytest.raises(OSError):
        row_counts(str(tmp_path / "missing.parquet"))


@pytest.mark.parametrize("sizes", [[1000] * 7, [300, 5, 900, 2000, 1, 1, 700, 64], [10_000]])
@pytest.mark.parametrize("min_slices, batch_rows", [(1, 1000), (2, 600), (3, 10_000), (2, 1)])
def test_batch_spans_are_the_batches_the_run_reads(tmp_path, monkeypatch, sizes, min_slices, batch_rows):
    """Batches cut by the planner and read slice by slice: their row ranges, in order, are what
    batch_spans predicts from the row counts alone."""
    monkeypatch.setattr(read_ahead, "TARGET_SLICE_ROWS", 2500)
    path = tmp_path / "f.parquet"
    df = _write(path, sizes)
    reads = []
    monkeypatch.setattr(read_ahead, "decode", lambda p, c, first, rows: reads.append((first, rows)) or df.slice(first, rows))
    source = plan_files(str(path), columns=None, storage_options={}, min_slices=min_slices)
    for sl in source.slices:
        for batch in sl.read(batch_rows):
            assert batch.height == reads[-1][1]
    total, groups = row_counts(str(path))
    assert reads == list(read_ahead.batch_spans(groups, read_ahead.slice_target(total, min_slices), batch_rows))


def test_plans_from_the_footer_equal_pyarrows(tmp_path, monkeypatch):
    """Slices and the missing-column error are the same whether the footer is read in Python or,
    above _OWN_FOOTER_BYTES, by pyarrow."""
    path = tmp_path / "f.parquet"
    _write(path, [300, 5, 900, 2000, 1, 1, 700, 64], nested=True)
    plans = []
    for most in (1 << 20, 0):
        monkeypatch.setattr(sources, "_OWN_FOOTER_BYTES", most)
        plans.append(plan_files(str(path), columns=("a", "st"), storage_options={}, min_slices=3).slices)
        with pytest.raises(InputError, match=r"no column\(s\) \['nope'\]; the file has \['a', 'b', 's', 'st', 'li'\]"):
            plan_files(str(path), columns=("nope",), storage_options={})
    assert plans[0] == plans[1] and len(plans[0]) > 1


@pytest.fixture()
def parquet(tmp_path):
    path = tmp_path / "t.parquet"
    df = _write(path, [40_000] * 5, nested=False)
    yield df, path
    read_ahead.forget()


def test_a_run_takes_the_batches_read_ahead(parquet, monkeypatch):
    """Each batch is decoded once: the two decoded ahead are taken by the run, which decodes the
    other three; the profile is the one of a run without reading ahead."""
    df, path = parquet
    calls = []
    decode = read_ahead.decode
    monkeypatch.setattr(read_ahead, "decode", lambda *a: calls.append(a[2:]) or decode(*a))
    read_ahead.read_ahead(str(path), columns=None, batch_rows=30_000, min_slices=2, batches=2)
    got = ts.profile(str(path), num_workers=2, batch_rows=30_000)
    assert sorted(calls) == [(i * 40_000, 40_000) for i in range(5)]
    assert not read_ahead._ahead
    assert_profiles_equal(got, ts.profile(df), strict=False)


def test_batches_no_read_takes_are_dropped(parquet, monkeypatch):
    """A guess that does not match the run (other columns) costs its decodes, never a batch: the
    run decodes its own, and forget() drops what is left."""
    df, path = parquet
    read_ahead.read_ahead(str(path), columns=("a",), batch_rows=30_000, min_slices=2, batches=2)
    got = ts.profile(str(path), num_workers=2, batch_rows=30_000)
    assert len(read_ahead._ahead) == 2
    read_ahead.forget()
    assert not read_ahead._ahead
    assert_profiles_equal(got, ts.profile(df), strict=False)


def test_the_command_reads_ahead_and_reports_bad_columns(parquet, monkeypatch, capsys, tmp_path):
    """`th profile` on a parquet file decodes each batch once (the first two ahead); a column the
    file lacks is reported by the run as before (the failed decode ahead is not an error)."""
    df, path = parquet
    calls = []
    decode = read_ahead.decode
    monkeypatch.setattr(read_ahead, "decode", lambda *a: calls.append(a[2:]) or decode(*a))
    out = tmp_path / "p.json"
    assert main(["profile", str(path), "--workers", "2", "--format", "json", "-o", str(out)]) == 0
    # two slices of 100,000 rows or more, a batch each (262,144 rows a batch): both decoded ahead
    assert calls == [(0, 120_000), (120_000, 80_000)] and not read_ahead._ahead
    assert main(["profile", str(path), "--workers", "2", "--columns", "nope"]) == 1
    assert "nope" in capsys.readouterr().err and not read_ahead._ahead


def test_only_local_parquet_files_are_read_ahead(tmp_path):
    csv = tmp_path / "t.csv"
    pl.DataFrame({"a": [1, 2]}).write_csv(csv)
    not_parquet = tmp_path / "x.parquet"
    not_parquet.write_bytes(b"not a parquet file at all")
    for path in (csv, not_parquet, tmp_path / "missing.parquet", tmp_path):
        read_ahead.read_ahead(str(path), columns=None, batch_rows=10, min_slices=1, batches=2)
        assert not read_ahead._ahead
    with pytest.raises(pa.ArrowInvalid):  # what the run reports for it, unchanged
        pq.ParquetFile(not_parquet)
