"""The monoid laws of partial profiles, property-tested with hypothesis.

For every kind of column: ``zero`` is an identity, ``merge`` is associative and commutative, and the
profile of a concatenation equals the merge of the profiles of its parts, however it is split and
whatever the merge tree; in exact mode (default threshold), sketched mode (``exact_threshold=0``) and
with small thresholds that switch mode part-way.  Byte forms round-trip byte-identically and pickling
goes through them.
"""

from __future__ import annotations

import datetime as dt
import math
import pickle
from decimal import Decimal

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _core_compare import assert_columns_equal, assert_profiles_equal
from truthound_sketch import ColumnPartial, ProfileConfig, TablePartial

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
THRESHOLDS = [4096, 0, 3]  # exact, sketched from the first value, switching mid-way

_I64 = (-(2**63), 2**63 - 1)
_NAN, _INF = float("nan"), float("inf")
_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=5)
_US = 10**6
_time_us = st.integers(0, 86_400 * _US - 1)

# name -> (polars dtype, strategy of one non-null value, how to build a Series from python values)
KINDS = {
    "int64": (pl.Int64, st.one_of(st.integers(*_I64), st.sampled_from([_I64[0], _I64[1], 0, -1])), None),
    "uint64": (pl.UInt64, st.one_of(st.integers(0, 2**64 - 1), st.sampled_from([0, 2**64 - 1])), None),
    "int8": (pl.Int8, st.integers(-128, 127), None),
    "float64": (pl.Float64, st.one_of(st.floats(-1e6, 1e6), st.sampled_from([_NAN, _INF, -_INF, -0.0, 0.0, 1e-300])), None),
    "float32": (pl.Float32, st.one_of(st.integers(-1000, 1000).map(lambda i: i / 8), st.sampled_from([_NAN, _INF, -0.0])), None),
    "decimal": (pl.Decimal(12, 3), st.decimals(min_value=-(10**8), max_value=10**8, places=3, allow_nan=False, allow_infinity=False), None),
    "bool": (pl.Boolean, st.booleans(), None),
    "string": (pl.String, st.one_of(_text, st.sampled_from(["", "😀", "👩‍👩‍👧", "naïve", "日本語", "a" * 40])), None),
    "categorical": (pl.Categorical, st.sampled_from(["red", "green", "blue", "", "ünï", "🐍"]), pl.String),
    "binary": (pl.Binary, st.binary(max_size=4), None),
    "date": (pl.Date, st.dates(dt.date(1, 1, 1), dt.date(9999, 12, 31)), None),
    "datetime_tz": (pl.Datetime("us", "America/New_York"), st.integers(-(5 * 10**16), 5 * 10**16), pl.Int64),
    "datetime_ns": (pl.Datetime("ns"), st.integers(*_I64).filter(lambda v: v != _I64[0]), pl.Int64),
    "duration": (pl.Duration("ms"), st.integers(-(10**15), 10**15), pl.Int64),
    "time": (pl.Time, _time_us.map(lambda us: dt.time(us // 3_600_000_000, us // 60_000_000 % 60, us // _US % 60, us % _US)), None),
    "null": (pl.Null, st.none(), None),
    "list": (pl.List(pl.Int64), st.lists(st.one_of(st.none(), st.integers(-5, 5)), max_size=3), None),
}  # fmt: skip


def series_of(kind: str, values: list) -> pl.Series:
    dtype, _, build = KINDS[kind]
    if build is None:
        return pl.Series("x", values, dtype=dtype)
    return pl.Series("x", values, dtype=build).cast(dtype)


@st.composite
def column_values(draw, kind: str, max_size: int = 40) -> list:
    _, value, _ = KINDS[kind]
    return draw(st.lists(st.one_of(st.none(), value) if kind != "null" else st.none(), max_size=max_size))


@st.composite
def cuts(draw, n: int, max_parts: int = 5) -> list[int]:
    """Sorted cut points 0 = c0 <= ... <= ck = n (empty parts allowed)."""
    k = draw(st.integers(1, max_parts))
    inner = sorted(draw(st.lists(st.integers(0, n), min_size=k - 1, max_size=k - 1)))
    return [0, *inner, n]


def col_partial(s: pl.Series, threshold: int) -> ColumnPartial:
    return ColumnPartial.zero("x", s.dtype, exact_threshold=threshold).update(s)


def fin(p):
    return p.finalize()


def merge_tree(parts: list, data) -> object:
    """Merge ``parts`` (in their order) along a random binary tree drawn from ``data``."""
    parts = list(parts)
    while len(parts) > 1:
        i = data.draw(st.integers(0, len(parts) - 2), label="merge at")
        parts[i : i + 2] = [parts[i].merge(parts[i + 1])]
    return parts[0]


def check_quantile_sanity(prof) -> None:
    """Quantiles are values of the column's range and do not decrease."""
    for col in getattr(prof, "columns", [prof]):
        qs = [v for v in col.quantiles.values()]
        if not qs:
            continue
        assert col.min is not None
        assert all(col.min <= q <= col.max for q in qs), (col.name, col.min, col.max, col.quantiles)
        assert qs == sorted(qs), (col.name, col.quantiles)


# -- column laws ----------------------------------------------------------------------------------
@pytest.mark.parametrize("threshold", THRESHOLDS)
@pytest.mark.parametrize("kind", list(KINDS))
@SETTINGS
@given(data=st.data())
def test_column_laws(kind: str, threshold: int, data) -> None:
    values = data.draw(column_values(kind), label="values")
    whole = series_of(kind, values)
    bounds = data.draw(cuts(len(values)), label="cuts")
    chunks = [whole.slice(a, b - a) for a, b in zip(bounds, bounds[1:])]
    parts = [col_partial(c, threshold) for c in chunks]
    zero = ColumnPartial.zero("x", whole.dtype, exact_threshold=threshold)
    expected = fin(col_partial(whole, threshold))
    check_quantile_sanity(expected)
    if kind != "null":
        assert expected.count == len(values) and expected.null_count == sum(v is None for v in values)

    # identity, both sides
    for p in parts:
        assert_columns_equal(fin(zero.merge(p)), fin(p), where="zero+x")
        assert_columns_equal(fin(p.merge(zero)), fin(p), where="x+zero")
    # concatenation = merge of parts, along a random tree, and in reverse order
    assert_columns_equal(fin(merge_tree(parts, data)), expected, where="tree")
    assert_columns_equal(fin(merge_tree(parts[::-1], data)), expected, where="reversed tree")
    # associativity and commutativity on three parts
    a, b, c = (parts + [zero, zero])[:3]
    assert_columns_equal(fin(a.merge(b).merge(c)), fin(a.merge(b.merge(c))), where="assoc")
    assert_columns_equal(fin(a.merge(b)), fin(b.merge(a)), where="comm")
    # the partial that was merged from parts round-trips through bytes and pickle
    merged = merge_tree(parts, data)
    raw = merged.to_bytes()
    back = ColumnPartial.from_bytes(raw)
    assert back.to_bytes() == raw
    assert_columns_equal(fin(back), expected, where="from_bytes")
    again = pickle.loads(pickle.dumps(merged))
    assert again.to_bytes() == raw
    # a decoded partial still merges like the original
    assert_columns_equal(fin(back.merge(ColumnPartial.from_bytes(parts[0].to_bytes()))), fin(merged.merge(parts[0])))


# -- kind-specific exact answers on tiny inputs ---------------------------------------------------
def test_float_counts_and_view() -> None:
    s = pl.Series("x", [1.0, _NAN, _INF, -_INF, None, -0.0, 0.0, 3.0], dtype=pl.Float64)
    for threshold in THRESHOLDS:
        p = col_partial(s[:4], threshold).merge(col_partial(s[4:], threshold)).finalize()
        assert (p.count, p.null_count, p.nan_count, p.pos_inf_count, p.neg_inf_count) == (8, 1, 1, 1, 1)
        assert p.min == -0.0 and p.max == 3.0 and p.mean == pytest.approx(1.0)
        # distinct values: 1, NaN, inf, -inf, 0 (= -0.0), 3
        assert p.distinct.exact is (threshold > 6)
        assert p.distinct.estimate == pytest.approx(6, abs=0.01)


def test_int_extremes_sketched_quantiles_stay_in_range() -> None:
    s = pl.Series("x", [_I64[0], _I64[1], 0, None], dtype=pl.Int64)
    p = col_partial(s, 0).finalize()
    assert p.min == _I64[0] and p.max == _I64[1]
    assert set(p.quantiles.values()) <= {_I64[0], 0, _I64[1]}
    u = pl.Series("x", [0, 2**64 - 1, 5], dtype=pl.UInt64)
    pu = col_partial(u, 0).finalize()
    assert pu.max == 2**64 - 1
    assert pu.quantiles["p99"] == 2**64 - 1 and pu.quantiles["p1"] == 0


def test_null_column_takes_partner_type() -> None:
    typed = col_partial(pl.Series("x", [1, 2], dtype=pl.Int32), 4096)
    nulls = col_partial(pl.Series("x", [None, None, None], dtype=pl.Null), 4096)
    for m in (typed.merge(nulls), nulls.merge(typed)):
        p = m.finalize()
        assert (p.dtype, p.count, p.null_count, p.min, p.max) == ("Int32", 5, 3, 1, 2)


def test_decimal_values_exact() -> None:
    s = pl.Series("x", [Decimal("1.250"), Decimal("-3.500"), None, Decimal("1.250")], dtype=pl.Decimal(12, 3))
    for threshold in THRESHOLDS:
        p = col_partial(s[:1], threshold).merge(col_partial(s[1:], threshold)).finalize()
        assert p.min == Decimal("-3.500") and p.max == Decimal("1.250")
        assert p.mean == pytest.approx(-1 / 3)
        assert p.distinct.estimate == pytest.approx(2, abs=0.01)


# -- table laws -----------------------------------------------------------------------------------
TABLE_KINDS = list(KINDS)


@st.composite
def frames(draw, max_rows: int = 30) -> pl.DataFrame:
    kinds = draw(st.lists(st.sampled_from(TABLE_KINDS), min_size=1, max_size=5, unique=True))
    n = draw(st.integers(0, max_rows))
    cols = []
    for kind in kinds:
        values = draw(st.lists(st.one_of(st.none(), KINDS[kind][1]) if kind != "null" else st.none(), min_size=n, max_size=n))
        cols.append(series_of(kind, values).rename(kind))
    return pl.DataFrame(cols)


def table_partial(batches, threshold: int) -> TablePartial:
    return TablePartial.from_batches(batches, ProfileConfig(exact_threshold=threshold))


@pytest.mark.parametrize("threshold", THRESHOLDS)
@SETTINGS
@given(df=frames(), data=st.data())
def test_table_laws(df: pl.DataFrame, threshold: int, data) -> None:
    bounds = data.draw(cuts(df.height), label="cuts")
    chunks = [df.slice(a, b - a) for a, b in zip(bounds, bounds[1:])]
    parts = [table_partial([c], threshold) for c in chunks]
    zero = TablePartial.zero(None, ProfileConfig(exact_threshold=threshold))
    expected = table_partial([df], threshold).finalize()
    check_quantile_sanity(expected)
    # one partial fed batch by batch equals one fed the whole frame
    assert_profiles_equal(table_partial(chunks, threshold).finalize(), expected)
    assert_profiles_equal(merge_tree(parts, data).finalize(), expected)
    assert_profiles_equal(sum(parts).finalize(), expected)
    for p in parts:
        assert_profiles_equal(zero.merge(p).finalize(), p.finalize())
        assert_profiles_equal(p.merge(zero).finalize(), p.finalize())
    a, b, c = (parts + [zero, zero])[:3]
    assert_profiles_equal(a.merge(b).merge(c).finalize(), a.merge(b.merge(c)).finalize())
    assert_profiles_equal(a.merge(b).finalize(), b.merge(a).finalize())
    merged = merge_tree(parts, data)
    raw = merged.to_bytes()
    assert TablePartial.from_bytes(raw).to_bytes() == raw
    assert pickle.loads(pickle.dumps(merged)).to_bytes() == raw
    assert_profiles_equal(TablePartial.from_bytes(raw).finalize(), expected)


@pytest.mark.parametrize("threshold", THRESHOLDS)
@SETTINGS
@given(df=frames(), data=st.data())
def test_table_columns_in_some_batches(df: pl.DataFrame, threshold: int, data) -> None:
    """Batches that lack some columns: the missing cells count as nulls, in any merge order."""
    bounds = data.draw(cuts(df.height), label="cuts")
    chunks = []
    for a, b in zip(bounds, bounds[1:]):
        keep = data.draw(st.lists(st.sampled_from(df.columns), unique=True, min_size=1), label="columns")
        chunks.append(df.slice(a, b - a).select(keep))
    # the frame the batches stand for: missing columns filled with nulls
    full = pl.concat(chunks, how="diagonal_relaxed")
    present = [c for c in df.columns if c in full.columns]
    expected = table_partial([full.select(present)], threshold).finalize()
    parts = [table_partial([c], threshold) for c in chunks]
    for got in (table_partial(chunks, threshold), merge_tree(parts, data), merge_tree(parts[::-1], data)):
        prof = got.finalize()
        assert_profiles_equal(prof, expected, ignore_order=True)


def test_schema_mismatch_on_merge() -> None:
    from truthound_sketch import SchemaMismatchError

    a = table_partial([pl.DataFrame({"v": [1, 2]})], 4096)
    b = table_partial([pl.DataFrame({"v": ["x"]})], 4096)
    with pytest.raises(SchemaMismatchError, match="'v'"):
        a.merge(b)
    c = table_partial([pl.DataFrame({"v": [dt.datetime(2020, 1, 1)]}).cast({"v": pl.Datetime("ns")})], 4096)
    d = table_partial([pl.DataFrame({"v": [dt.datetime(2020, 1, 1)]}).cast({"v": pl.Datetime("ms")})], 4096)
    with pytest.raises(SchemaMismatchError, match="'v'"):
        c.merge(d)


def test_sum_and_bytes_errors() -> None:
    from truthound_sketch import ProfileFormatError

    p = table_partial([pl.DataFrame({"a": [1, 2, 3]})], 4096)
    raw = p.to_bytes()
    assert sum([p, p]).row_count == 6
    bad = bytearray(raw)
    bad[-1] ^= 0xFF
    with pytest.raises(ProfileFormatError, match="checksum"):
        TablePartial.from_bytes(bytes(bad))
    with pytest.raises(ProfileFormatError, match="truncated"):
        TablePartial.from_bytes(raw[:-3])
    with pytest.raises(ProfileFormatError, match="magic"):
        TablePartial.from_bytes(b"XXXX" + raw[4:])
    with pytest.raises(ProfileFormatError, match="column"):
        ColumnPartial.from_bytes(raw)
    assert not math.isnan(p.finalize().columns[0].mean)


# -- frequent values under merges -----------------------------------------------------------------
@SETTINGS
@given(values=st.lists(st.integers(0, 30) | st.integers(0, 10**6), min_size=1, max_size=400),
       capacity=st.integers(1, 12), data=st.data())
def test_frequent_summary_bounds_under_merges(values: list, capacity: int, data) -> None:
    """With a tiny capacity every merge truncates; true counts stay within the reported bounds."""
    s = pl.Series("x", values, dtype=pl.Int64)
    bounds = data.draw(cuts(len(values), max_parts=8), label="cuts")
    parts = [ColumnPartial.zero("x", pl.Int64, exact_threshold=data.draw(st.sampled_from([0, 5, 4096])),
                                frequent_capacity=capacity).update(s.slice(a, b - a))
             for a, b in zip(bounds, bounds[1:])]  # fmt: skip
    merged = merge_tree(parts, data)
    truth = dict(s.value_counts().iter_rows())
    prof = merged.finalize(top_k=10**6)
    if prof.exact:
        assert {t.value: t.count for t in prof.top_values} == truth
        return
    error = merged.frequent.error
    assert error <= len(values) / (capacity + 1)
    for t in prof.top_values:
        assert t.lower_bound <= truth[t.value] <= t.upper_bound
    kept = {t.value for t in prof.top_values}
    assert all(v in kept for v, c in truth.items() if c > error)


@SETTINGS
@given(values=st.lists(st.integers(0, 3000) | st.integers(0, 5), min_size=0, max_size=3000), capacity=st.integers(1, 40))
def test_frequent_from_batch_equals_from_counts(values: list, capacity: int) -> None:
    from truthound_sketch.frequent import FrequentItems, value_counts

    s = pl.Series("value", values, dtype=pl.Int64)
    a = FrequentItems.from_batch(s, capacity)
    b = FrequentItems.from_counts(value_counts(s), capacity)
    assert a.error == b.error
    assert sorted(a.table.iter_rows()) == sorted(b.table.iter_rows())


# -- the byte form rejects malformed records with ProfileFormatError ------------------------------
def _reframe(body: bytes, kind: int = 1) -> bytes:
    import struct
    import zlib

    return struct.pack("<4sHHQI", b"TSKP", 1, kind, len(body), zlib.crc32(body)) + body


_JUNK = st.sampled_from([None, "x", -1, 10**30, [], {}, 1.5, ["i", "zz"], ["f", "nothex"], True, ["s", 3]])


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(["int64", "string", "float64", "decimal", "datetime_tz", "categorical"]),
       threshold=st.sampled_from([4096, 0]), data=st.data())  # fmt: skip
def test_malformed_records_raise_profile_format_error(kind: str, threshold: int, data) -> None:
    """Records with a valid checksum but a bad header field or a bad value table are refused."""
    import json
    import struct

    from truthound_sketch import ProfileFormatError

    values = data.draw(column_values(kind, max_size=20).filter(lambda v: any(x is not None for x in v)))
    raw = col_partial(series_of(kind, values), threshold).to_bytes()
    body = raw[20:]
    (hlen,) = struct.unpack_from("<I", body)
    header = json.loads(body[4 : 4 + hlen])
    field = data.draw(st.sampled_from(sorted(k for k in header if k != "blobs")), label="field")
    header[field] = data.draw(_JUNK, label="junk")
    head = json.dumps(header).encode()
    mutated = _reframe(struct.pack("<I", len(head)) + head + body[4 + hlen :])
    try:
        part = ColumnPartial.from_bytes(mutated)
    except ProfileFormatError:
        return
    part.finalize()  # what decodes must be usable
    part.merge(part).finalize()


@pytest.mark.parametrize(("kind", "field", "junk", "says"), [
    ("int64", "max", ["s", "3"], r"holds '3' \(str\)"),
    ("string", "min", ["i", "3"], r"holds 3 \(int\)"),
    ("float64", "min", ["f", (1e300).hex()], "not a range"),
])  # fmt: skip
def test_range_of_the_wrong_type_or_order_is_refused(kind: str, field: str, junk: list, says: str) -> None:
    import json
    import struct

    from truthound_sketch import ProfileFormatError

    values = {"int64": [1, 5], "string": ["a", "b"], "float64": [1.0, 2.0]}[kind]
    body = col_partial(series_of(kind, values), 0).to_bytes()[20:]
    (hlen,) = struct.unpack_from("<I", body)
    header = json.loads(body[4 : 4 + hlen])
    header[field] = junk
    head = json.dumps(header).encode()
    with pytest.raises(ProfileFormatError, match=says):
        ColumnPartial.from_bytes(_reframe(struct.pack("<I", len(head)) + head + body[4 + hlen :]))


def test_value_table_of_wrong_type_is_refused() -> None:
    import io

    from truthound_sketch import ProfileFormatError
    from truthound_sketch.codec import _frame

    good = col_partial(pl.Series("x", [1, 2, 2]), 4096)
    wrong = pl.DataFrame({"value": ["a"], "count": pl.Series([1], dtype=pl.UInt64)})
    buf = io.BytesIO()
    wrong.write_ipc_stream(buf)
    raw = good.to_bytes()
    import json
    import struct

    body = raw[20:]
    (hlen,) = struct.unpack_from("<I", body)
    header = json.loads(body[4 : 4 + hlen])
    header.pop("blobs")
    with pytest.raises(ProfileFormatError, match="x.values"):
        ColumnPartial.from_bytes(_frame(1, header, [("values", buf.getvalue())]))


# -- sketched and exact modes agree on small inputs -----------------------------------------------
@pytest.mark.parametrize("kind", [k for k in KINDS if k not in ("null", "list")])
@SETTINGS
@given(data=st.data())
def test_sketched_distinct_close_to_exact(kind: str, data) -> None:
    """HLL on a few values counts them (up to rare register collisions at lg_k=12), with the
    same canonical values as the exact table: -0.0 is 0.0, NaNs are one, empty strings count."""
    values = data.draw(column_values(kind), label="values")
    s = series_of(kind, values)
    exact = col_partial(s, 4096).finalize().distinct
    sketched = col_partial(s, 0).finalize().distinct
    if exact is None:
        assert sketched is None
        return
    assert exact.exact and not sketched.exact
    assert abs(round(sketched.estimate) - exact.estimate) <= 2, (exact, sketched)


@pytest.mark.parametrize("threshold", THRESHOLDS)
def test_empty_values_are_counted(threshold: int) -> None:
    for s in (pl.Series("x", [b"", b"a", None, b""]), pl.Series("x", ["", "a", None, ""])):
        d = col_partial(s[:2], threshold).merge(col_partial(s[2:], threshold)).finalize().distinct
        assert round(d.estimate) == 2 and d.lower_bound <= 2 <= d.upper_bound


@pytest.mark.parametrize("kind", ["int8", "float64", "float32", "decimal", "date", "datetime_tz", "duration",
                                  "time", "string", "categorical"])  # fmt: skip
@SETTINGS
@given(data=st.data())
def test_sketched_quantiles_equal_exact_on_small_inputs(kind: str, data) -> None:
    """Below k values KLL keeps every value, so sketched quantiles (turned back into the column's
    type) must equal the exact ones; so must string-length statistics.  (Kinds whose values pass
    2**53 are left out, and datetimes kept within it: the sketch holds float64.)"""
    values = data.draw(column_values(kind), label="values")
    if kind == "datetime_tz":  # the strategy reaches ±5e16 microseconds; float64 is exact to 2**53
        values = [None if v is None else max(-(2**53), min(2**53, v)) for v in values]
    s = series_of(kind, values)
    exact, sketched = col_partial(s, 4096).finalize(), col_partial(s, 0).finalize()
    assert exact.quantiles == sketched.quantiles
    assert exact.string_length == sketched.string_length
