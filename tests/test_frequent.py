"""The frequent-values summary: batch prefilter identical to full counting; merge bounds hold."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import polars as pl
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from truthound_sketch import _hashcount
from truthound_sketch.frequent import FrequentItems, value_counts


@settings(max_examples=150, deadline=None)
@given(
    values=st.lists(st.integers(0, 3000), min_size=1, max_size=6000),
    capacity=st.integers(1, 200),
    kind=st.sampled_from(["int", "text", "short text", "float", "date", "int128", "uint8"]),
)
def test_batch_prefilter_equals_summary_of_exact_counts(values, capacity, kind):
    """From hashes, value bits or short strings' views: the same summary as from exact counts."""
    from truthound_sketch.views import string_array

    s = pl.Series("v", values)
    if kind == "text":
        s = ("a value longer than twelve bytes: " + s.cast(pl.String)).str.slice(0, pl.Series(values) % 40)
    elif kind == "short text":  # every string inline: counted by its view, across chunks
        s = pl.concat([s[: len(s) // 2], s[len(s) // 2 :]], rechunk=False).cast(pl.String)
    elif kind == "float":  # 0.0 and -0.0, NaN from two expressions: polars counts each as one value
        special = {1: -0.0, 2: float("nan"), 3: float("inf") - float("inf")}
        s = pl.Series("v", [special.get(v % 50, v / 8) for v in values], dtype=pl.Float64)
    elif kind == "date":
        s = s.cast(pl.Int32).cast(pl.Date)
    elif kind == "int128":
        s = pl.Series("v", [v * 2**70 for v in values], dtype=pl.Int128)
    elif kind == "uint8":
        s = (s % 256).cast(pl.UInt8)
    fast = FrequentItems.from_batch(s, capacity)
    if kind in ("text", "short text"):
        views = FrequentItems.from_views(s, string_array(s), capacity)  # None as soon as one is long
        inline = bool(s.str.len_bytes().max() <= 12)
        assert (views is not None) == (inline and len(s) > capacity + 1)
        if kind == "short text":
            assert views is not None or len(s) <= capacity + 1
        if views is not None:
            assert views.error == fast.error and views.table.sort("value").equals(fast.table.sort("value"))
    exact = FrequentItems.from_counts(value_counts(s), capacity)
    assert fast.error == exact.error
    assert fast.table.sort("value").equals(exact.table.sort("value"))


@settings(max_examples=150, deadline=None)
@given(a=st.lists(st.integers(0, 60), max_size=400), b=st.lists(st.integers(0, 60), max_size=400),
       capacity=st.integers(1, 30), kind=st.sampled_from(["int64", "int32", "uint64", "float64", "float32", "date", "datetime"]))  # fmt: skip
@example(a=[0] * 5 + [1] * 3 + [2], b=[3] * 4 + [4] * 2, capacity=2, kind="int64")  # the cut: the 3rd largest, 2
def test_merge_of_numbers_equals_a_polars_group_by(a, b, capacity, kind):
    """Summaries of numbers, floats (0.0 and -0.0, NaN from two expressions) and temporals merge
    in numpy by their values' bits: the same table and error as adding the counts with polars."""

    def summary(values: list[int]) -> FrequentItems:
        s = pl.Series("value", values, dtype=pl.Int64)
        if kind.startswith("float"):
            special = {1: -0.0, 2: float("nan"), 3: float("inf") - float("inf"), 4: 0.0}
            s = pl.Series("value", [special.get(v % 10, v / 4) for v in values], dtype=pl.Float64)
        dtype = {"int32": pl.Int32, "uint64": pl.UInt64, "float32": pl.Float32, "date": pl.Date,
                 "datetime": pl.Datetime("ms")}.get(kind)  # fmt: skip
        if kind == "date":
            s = s.cast(pl.Int32)
        return FrequentItems.from_counts(value_counts(s.cast(dtype) if dtype is not None else s), capacity)

    x, y = summary(a), summary(b)
    both = pl.concat([x.table, y.table]).group_by("value").agg(pl.col("count").sum())
    want = FrequentItems.from_counts(both, capacity, x.error + y.error) if x.table.height and y.table.height else None
    got = x.merge(y)
    if want is not None:
        assert got.error == want.error
        assert got.table.sort("value").equals(want.table.sort("value"))


@settings(max_examples=60, deadline=None)
@given(parts=st.lists(st.lists(st.integers(0, 50), min_size=1, max_size=400), min_size=1, max_size=12),
       capacity=st.integers(1, 20))  # fmt: skip
def test_merged_counts_bound_the_truth(parts, capacity):
    summary = None
    for part in parts:
        one = FrequentItems.from_batch(pl.Series("v", part), capacity)
        summary = one if summary is None else summary.merge(one)
    truth = value_counts(pl.Series("v", [v for p in parts for v in p]))
    total = truth["count"].sum()
    assert summary.error <= total / (capacity + 1)
    kept = dict(summary.table.iter_rows())
    for value, count in truth.iter_rows():
        est = kept.get(value, 0)
        assert est <= count <= est + summary.error


@settings(max_examples=100, deadline=None)
@given(hashes=st.lists(st.integers(0, 2**64 - 1) | st.sampled_from([0, 1, 2**64 - 1, 2**63]), max_size=5000),
       k=st.integers(1, 50), floor=st.sampled_from([-2, -1, 1, 2, 3, 4]))  # fmt: skip
def test_heavy_rows_kernel_finds_every_row_above_the_floor(hashes, k, floor):
    h = np.array(hashes, dtype=np.uint64)
    kth, used, found = _hashcount.heavy_rows(h, k, floor)
    distinct, inverse, counts = np.unique(h, return_inverse=True, return_counts=True)
    ordered = np.sort(counts)[::-1]
    assert kth == (int(ordered[k - 1]) if len(ordered) >= k else 0)
    assert used == {-2: kth or len(h), -1: max(kth - 1, 1)}.get(floor, floor)
    want = np.flatnonzero(counts[inverse] > used)
    if len(want) > len(h) // 2:  # more than half the rows: None
        assert found is None
    else:  # ascending
        assert np.frombuffer(found, dtype=np.uint32).tolist() == want.tolist()


@settings(max_examples=100, deadline=None)
@given(keys=st.lists(st.integers(0, 2**64 - 1) | st.sampled_from([0, 1, 2**64 - 1, 2**63]), max_size=5000),
       k=st.integers(1, 50))  # fmt: skip
def test_heavy_keys_kernel_returns_every_key_above_the_kth_multiplicity(keys, k):
    h = np.array(keys, dtype=np.uint64)
    kth, found, counts = _hashcount.heavy_keys(h, k)
    distinct, counted = np.unique(h, return_counts=True)
    ordered = np.sort(counted)[::-1]
    assert kth == (int(ordered[k - 1]) if len(ordered) >= k else 0)
    got = dict(zip(np.frombuffer(found, dtype=np.uint64).tolist(), np.frombuffer(counts, dtype=np.uint32).tolist()))
    above = counted > kth if kth else np.zeros(len(distinct), dtype=bool)
    assert got == dict(zip(distinct[above].tolist(), counted[above].tolist()))


@pytest.mark.parametrize("shape", ["distinct", "some repeats", "pairs first", "one key of 40%", "zipf", "few keys"])
def test_heavy_kernels_on_large_batches(shape):
    """Batches large enough for 256 partitions, with keys spread evenly (one scatter pass) and
    piled on a few partitions (a partition fills up: the kernels count the partitions first);
    keys mostly seen once are sifted out of heavy_keys' partitions by a bitmap first."""
    rng = np.random.default_rng(3)
    n = 600_000
    h = {
        "distinct": rng.permutation(n).astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15),
        "some repeats": _copy_some(rng.integers(0, 2**64 - 1, n, dtype=np.uint64, endpoint=True), 3000, rng),
        "pairs first": np.concatenate([np.repeat(np.arange(1000, dtype=np.uint64), 2), np.arange(1000, n - 1000, dtype=np.uint64)]),
        "one key of 40%": np.where(rng.random(n) < 0.4, 12345, rng.integers(0, 2**63, n)).astype(np.uint64),
        "zipf": rng.zipf(1.3, n).astype(np.uint64),
        "few keys": rng.integers(0, 300, n).astype(np.uint64),
    }[shape]
    distinct, inverse, counted = np.unique(h, return_inverse=True, return_counts=True)
    ordered = np.sort(counted)[::-1]
    for k in (1, 1025):
        kth = int(ordered[k - 1]) if len(ordered) >= k else 0
        got_kth, found, counts = _hashcount.heavy_keys(h, k)
        above = counted > kth if kth else np.zeros(len(distinct), dtype=bool)
        got = dict(zip(np.frombuffer(found, dtype=np.uint64).tolist(), np.frombuffer(counts, dtype=np.uint32).tolist()))
        assert got_kth == kth and got == dict(zip(distinct[above].tolist(), counted[above].tolist()))
        got_kth, used, rows = _hashcount.heavy_rows(h, k, -1)
        assert got_kth == kth and used == max(kth - 1, 1)
        want = np.flatnonzero(counted[inverse] > used)
        if len(want) > n // 2:
            assert rows is None
        else:
            assert np.array_equal(np.frombuffer(rows, dtype=np.uint32), want)


@pytest.mark.parametrize("shape", ["distinct", "repeated ten times", "zipf", "few strings"])
def test_heavy_views_counts_short_strings_exactly(shape):
    """Inline strings (empty, 12 bytes, multi-byte UTF-8 included) counted by their views, in batches
    large enough for 256 partitions and across chunks: the same k-th largest count and the same
    strings above it as polars' value counts; None once a string is longer than 12 bytes."""
    from truthound_sketch.views import string_array

    rng = np.random.default_rng(5)
    n = 600_000
    ints = {
        "distinct": rng.permutation(n),
        "repeated ten times": rng.integers(0, n // 10, n),
        "zipf": rng.zipf(1.3, n) % 10**9,
        "few strings": rng.integers(0, 300, n),
    }[shape]
    words = np.array(["", "é" * 6, "twelve bytes", "k-"], dtype=object)
    text = pl.Series("v", [f"{words[i % 4]}{i}".encode()[:12].decode(errors="ignore") if i % 7 else words[i % 4]
                           for i in ints.tolist()])  # fmt: skip
    s = pl.concat([text[: n // 3], text[n // 3 :]], rechunk=False)  # two chunks
    counts = s.value_counts(name="count").sort("count", descending=True)
    for k in (1, 1025):
        kth = int(counts["count"][k - 1]) if counts.height >= k else 0
        got_kth, strings, got = _hashcount.heavy_views([c.views for c in string_array(s)], k)
        want = dict(counts.filter(pl.col("count") > kth).iter_rows()) if kth else {}
        assert got_kth == kth and dict(zip(strings, np.frombuffer(got, dtype=np.uint32).tolist())) == want
    longer = pl.concat([s, pl.Series("v", ["thirteen byte"])], rechunk=False)
    assert _hashcount.heavy_views([c.views for c in string_array(longer)], 1025) is None


def _copy_some(keys: np.ndarray, m: int, rng: np.random.Generator) -> np.ndarray:
    """``keys`` with ``m`` rows overwritten by copies of other rows: mostly distinct, some repeats."""
    keys[rng.integers(0, len(keys), m)] = keys[rng.integers(0, len(keys), m)]
    return keys


def test_heavy_rows_kernel_rejects_bad_input():
    with pytest.raises(ValueError, match="uint64"):
        _hashcount.heavy_rows(np.arange(10, dtype=np.uint32), 3, -1)
    with pytest.raises(ValueError, match="at least 1"):
        _hashcount.heavy_rows(np.arange(10, dtype=np.uint64), 0, -1)
    for floor in (0, -3):
        with pytest.raises(ValueError, match="floor"):
            _hashcount.heavy_rows(np.arange(10, dtype=np.uint64), 3, floor)
    with pytest.raises(ValueError, match="16 bytes a row"):
        _hashcount.heavy_views([np.zeros(32, np.uint8), np.zeros(15, np.uint8)], 3)
    with pytest.raises(ValueError, match="uint8"):
        _hashcount.heavy_views([np.zeros(16, np.uint16)], 3)
    with pytest.raises(ValueError, match="at least 1"):
        _hashcount.heavy_views([np.zeros(16, np.uint8)], 0)
    with pytest.raises(TypeError, match="sequence"):
        _hashcount.heavy_views(5, 3)
    with pytest.raises(ValueError, match="uint64"):
        _hashcount.heavy_keys(np.arange(10, dtype=np.int32), 3)


@settings(max_examples=80, deadline=None)
@given(ints=st.lists(st.integers(-(2**62), 2**62), min_size=1, max_size=20), spread=st.integers(0, 5000),
       n=st.integers(1024, 4000),
       kind=st.sampled_from(["i8", "u16", "i64", "u64", "u64-low", "date", "datetime", "time", "decimal"]),
       seed=st.integers(0, 2**32 - 1))  # fmt: skip
def test_dense_value_counts_equal_hashed_counts(ints, spread, n, kind, seed):
    rng = np.random.default_rng(seed)
    base = ints[0]
    raw = base + rng.integers(0, spread + 1, n)
    if kind == "i8":
        s = pl.Series("v", (raw % 200) - 100).cast(pl.Int8)
    elif kind == "u16":
        s = pl.Series("v", (raw % 60_000).astype(np.uint16))
    elif kind == "u64":  # above 2**63: polars counts
        s = pl.Series("v", (raw - raw.min()).astype(np.uint64) + np.uint64(2**63 + 7))
    elif kind == "u64-low":
        s = pl.Series("v", (raw - raw.min()).astype(np.uint64) + np.uint64(2**62))
    elif kind == "date":
        s = pl.Series("v", (raw % 100_000)).cast(pl.Int32).cast(pl.Date)
    elif kind == "datetime":
        s = pl.Series("v", raw).cast(pl.Datetime("us", "UTC"))
    elif kind == "time":
        s = pl.Series("v", np.abs(raw) % 86_400_000_000_000).cast(pl.Time)
    elif kind == "decimal":
        s = pl.Series("v", [Decimal(int(x) % 10**15).scaleb(-2) for x in raw], dtype=pl.Decimal(15, 2))
    else:
        s = pl.Series("v", raw)
    got = value_counts(s).sort("value")
    want = s.value_counts(name="count").rename({"v": "value"}).with_columns(pl.col("count").cast(pl.UInt64))
    assert got.schema == want.schema
    assert got.equals(want.sort("value"))


@settings(max_examples=80, deadline=None)
@given(pool=st.lists(st.text(max_size=30), min_size=1, max_size=60), n=st.integers(1030, 3000),
       seed=st.integers(0, 2**32 - 1), limit=st.sampled_from([None, 5]))  # fmt: skip
def test_string_value_counts_equal_hashed_counts(pool, n, seed, limit):
    """Short (inline) and long strings, unicode and empty ones; past the limit, polars counts."""
    import truthound_sketch.frequent as frequent

    rng = np.random.default_rng(seed)
    s = pl.Series("v", [pool[i] for i in rng.integers(0, len(pool), n)])
    saved = frequent._STRING_LIMIT
    frequent._STRING_LIMIT = limit or saved
    try:
        got = value_counts(s.slice(3)).sort("value")  # an offset into the views
    finally:
        frequent._STRING_LIMIT = saved
    want = s.slice(3).value_counts(name="count").rename({"v": "value"}).sort("value")
    assert got["value"].equals(want["value"])
    assert got["count"].cast(pl.Int64).to_list() == want["count"].cast(pl.Int64).to_list()


def test_dense_count_kernel_edges():
    lo, raw = _hashcount.dense_counts(np.array([-3, 2, 2, -3, -3], dtype=np.int32), 10)
    assert (lo, np.frombuffer(raw, dtype=np.uint64).tolist()) == (-3, [3, 0, 0, 0, 0, 2])
    assert _hashcount.dense_counts(np.array([0, 10], dtype=np.int64), 10) is None  # spans 11 values
    assert _hashcount.dense_counts(np.array([-(2**63), 2**63 - 1], dtype=np.int64), 1 << 22) is None
    assert _hashcount.dense_counts(np.array([], dtype=np.int64), 10) is None
    with pytest.raises(ValueError, match="format d"):
        _hashcount.dense_counts(np.ones(3), 10)
    with pytest.raises(ValueError, match="unsigned ones below 2"):
        _hashcount.dense_counts(np.ones(3, dtype=np.uint64), 10)


@settings(max_examples=80, deadline=None)
@given(pool=st.lists(st.text(max_size=20) | st.sampled_from(["ab", "ab\x00", "ab\x00x", "abcd", "abcdefghijklmn",
                                                              "abcdefghijklmo", "é", "ée", "\U0001f600"]),
                     min_size=1, max_size=40),
       n=st.integers(1, 1500), seed=st.integers(0, 2**32 - 1), chunks=st.integers(1, 4))  # fmt: skip
def test_string_stats_kernel_equals_polars(pool, n, seed, chunks):
    """Range in byte order and lengths in characters: inline and long strings, common prefixes,
    NUL characters, multi-byte UTF-8, the empty string; a batch that starts at an offset, and one
    of several chunks (as a batch of several row groups is), counted too."""
    from truthound_sketch.frequent import _string_counts
    from truthound_sketch.views import string_array, string_stats

    rng = np.random.default_rng(seed)
    parts = [pl.Series("v", [pool[i] for i in rng.integers(0, len(pool), n + 2)]).slice(2) for _ in range(chunks)]
    s = pl.concat(parts, rechunk=False)
    assert len(string_array(s)) == chunks
    lo, hi, lengths, counts = string_stats(s, string_array(s))
    assert (lo, hi) == (s.min(), s.max())
    assert sorted(np.repeat(lengths, counts).tolist()) == sorted(s.str.len_chars().to_list())
    counts = _string_counts(s)
    if len(s) >= 1024:  # the kernel's path; shorter batches are polars' to count
        want = s.value_counts(name="count").sort("v")
        assert counts.sort("value")["value"].to_list() == want["v"].to_list()
        assert counts.sort("value")["count"].to_list() == want["count"].to_list()


@settings(max_examples=100, deadline=None)
@given(
    rows=st.lists(st.tuples(st.integers(0, 30), st.integers(0, 2)), min_size=1, max_size=3000),
    unique_tail=st.integers(0, 3000),
)
def test_string_counts_with_shared_and_separate_views(rows, unique_tail):
    """Views as a parquet dictionary leaves them: one long string behind many rows' identical
    views, the same string also stored again elsewhere (another buffer, another offset), short
    strings inline, and a tail of distinct long strings (where the view cache gives up)."""
    words = [f"word number {i:03d} of the dictionary" if i % 3 else f"w{i}" for i in range(31)]
    buffers, where = [bytearray(), bytearray(), bytearray()], {}
    views = bytearray()
    texts = []
    for w, copy in rows + [(1000 + i, 2) for i in range(unique_tail)]:
        text = words[w] if w < 1000 else f"a distinct long string {w:08d}"
        data = text.encode()
        if len(data) <= 12:
            views += len(data).to_bytes(4, "little") + data.ljust(12, b"\0")
        else:
            key = (text, copy)
            if key not in where:  # stored once per copy: rows of one copy share the view
                where[key] = len(buffers[copy])
                buffers[copy] += data
            views += len(data).to_bytes(4, "little") + data[:4] + copy.to_bytes(4, "little") + where[key].to_bytes(4, "little")
        texts.append(text)
    found = _hashcount.count_views(np.frombuffer(bytes(views), np.uint8), [bytes(b) for b in buffers], 1 << 16)
    firsts, counts = np.frombuffer(found[0], np.uint32), np.frombuffer(found[1], np.uint64)
    got = {texts[i]: int(c) for i, c in zip(firsts, counts)}
    want: dict[str, int] = {}
    for t in texts:
        want[t] = want.get(t, 0) + 1
    assert got == want and len(firsts) == len(want)


def test_string_stats_lists_the_lengths_past_its_histogram():
    """Lengths of 4096 characters and more are listed one by one (the kernel's histogram stops
    there), in characters for multi-byte text too, across chunks."""
    from truthound_sketch.views import string_array, string_stats

    s = pl.concat([pl.Series("v", ["x" * 4095, "é" * 4096, "ab", "y" * 5000]),
                   pl.Series("v", ["é" * 4096, "", "z" * 9000])], rechunk=False)  # fmt: skip
    lo, hi, lengths, counts = string_stats(s, string_array(s))
    assert (lo, hi) == (s.min(), s.max())
    assert sorted(np.repeat(lengths, counts).tolist()) == [0, 2, 4095, 4096, 4096, 5000, 9000]


def test_view_chunks_export_polars_string_views():
    """A String column's chunks through the Arrow C stream: each chunk's views (a sliced one from
    its offset) and data buffers, read as the strings they hold; None for other types; a stream
    is consumed once; a column with nulls is refused (callers drop them)."""
    parts = [pl.Series("v", ["a", "a string longer than twelve", "é", ""] * 50), pl.Series("v", ["x" * 30, "y"])]
    s = pl.concat(parts, rechunk=False).slice(3)
    chunks = _hashcount.view_chunks(s.__arrow_c_stream__())
    assert [len(views) // 16 for views, _, _ in chunks] == [197, 2]
    texts = []
    for views, data, _owner in chunks:
        v = np.frombuffer(views, np.uint8).reshape(-1, 16)
        for row in v:
            n = int(row[:4].view(np.int32)[0])
            if n <= 12:
                texts.append(bytes(row[4 : 4 + n]).decode())
            else:
                b, off = row[8:12].view(np.int32)[0], row[12:16].view(np.int32)[0]
                texts.append(bytes(data[b][off : off + n]).decode())
    assert texts == s.to_list()
    assert _hashcount.view_chunks(pl.Series([1, 2]).__arrow_c_stream__()) is None
    stream = s.__arrow_c_stream__()
    _hashcount.view_chunks(stream)
    with pytest.raises(ValueError, match="already consumed"):
        _hashcount.view_chunks(stream)
    with pytest.raises(ValueError, match="with nulls"):
        _hashcount.view_chunks(pl.Series(["a", None]).__arrow_c_stream__())
    with pytest.raises(ValueError):
        _hashcount.view_chunks(object())


def test_string_count_kernel_rejects_views_outside_their_buffers():
    views = np.zeros(32, np.uint8)
    views[16:20] = np.frombuffer(np.int32(40).tobytes(), np.uint8)  # 40 bytes in buffer 0 at offset 0
    with pytest.raises(ValueError, match="row 1 points outside"):
        _hashcount.count_views(views, [b"short"], 10)
    with pytest.raises(ValueError, match="row 1 points outside"):
        _hashcount.string_stats(views, [b"short"])


def test_string_and_dense_counts_take_the_kernel_paths():
    import truthound_sketch.frequent as frequent

    s = pl.Series("v", ["a", "long string over twelve bytes", ""] * 500)
    assert frequent._string_counts(s) is not None
    assert frequent._dense_counts(pl.Series("v", list(range(2000)))) is not None
    assert frequent._string_counts(pl.Series("v", ["a", None] * 600)) is None  # nulls: polars counts


def test_kernels_agree_when_called_from_threads_at_once():
    """The kernels share one scratch block between calls: calls from several threads at once (one
    gets the block, the others their own memory), with string tables that double many times."""
    import threading

    import truthound_sketch.frequent as frequent

    rng = np.random.default_rng(7)
    hashes = [rng.integers(0, 5000, 100_000).astype(np.uint64) for _ in range(4)]
    texts = [pl.Series("v", [f"value-{i:06d}" for i in rng.integers(0, 40_000, 100_000)]) for _ in range(4)]
    want_rows = []
    for h in hashes:  # the rows whose hash occurs more than 25 times
        _, inverse, counts = np.unique(h, return_inverse=True, return_counts=True)
        want_rows.append(np.flatnonzero(counts[inverse] > 25))
    want_counts = [t.value_counts(name="count").sort("v")["count"].cast(pl.Int64).to_list() for t in texts]
    failures: list[str] = []

    def work(i: int) -> None:
        for _ in range(20):
            rows = np.frombuffer(_hashcount.heavy_rows(hashes[i], 10, 25)[2], dtype=np.uint32)
            counts = frequent._string_counts(texts[i])
            if not np.array_equal(rows, want_rows[i]):
                failures.append(f"heavy_rows {i}")
            if counts is None or counts.sort("value")["count"].cast(pl.Int64).to_list() != want_counts[i]:
                failures.append(f"count_views {i}")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures
