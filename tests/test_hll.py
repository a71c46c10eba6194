"""HllDistinct is bit-compatible with Apache DataSketches' HLL sketch at every cardinality.

The reference is the ``datasketches`` package's own scalar ``update``.  Below DataSketches' switch
to HLL mode both hold the same distinct coupons (LIST/SET mode), and our image is byte for byte the
one DataSketches writes when it was fed the values in ascending coupon order.  In HLL mode a
DataSketches sketch fed value by value keeps an in-order HIP accumulator that no register array can
reproduce, so the byte-level comparison is made after both sketches went through ``hll_union`` as a
non-first member (``canonical`` below), which is what every merged sketch looks like: out-of-order
flag, composite estimator.  Coupons and registers are compared directly in every mode.
"""

from __future__ import annotations

import math
import pickle
import struct
import threading

import datasketches as ds
import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from truthound_sketch import _hll
from truthound_sketch.errors import ProfileFormatError
from truthound_sketch.hll import HllDistinct, coupon_limit

T = ds.tgt_hll_type
TYPES = (T.HLL_4, T.HLL_6, T.HLL_8)
PROPS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MASK26 = (1 << 26) - 1
MODES = {0: "LIST", 1: "SET", 2: "HLL"}

INT64_EXTREMES = [-(2**63), -(2**63) + 1, -1, 0, 1, 2**31 - 1, 2**31, 2**32, 2**63 - 1]
# Inputs whose hash gives a register value >= 32 (found by search), exercising KxQ1.
HIGH_REGISTER_INTS = [5366044298, 5411159528]


def bits_to_float(bits: int) -> float:
    return struct.unpack("<d", struct.pack("<Q", bits))[0]


SPECIAL_FLOATS = [
    0.0, -0.0, math.inf, -math.inf, math.nan, -math.nan,
    bits_to_float(0x7FF0000000000001),  # signalling NaN
    bits_to_float(0xFFF8000000000123),  # negative NaN with payload
    5e-324, -5e-324, 2.2250738585072009e-308, 1.0, -1.0, 1e308,
]

ints_st = st.lists(st.one_of(st.integers(-(2**63), 2**63 - 1), st.sampled_from(INT64_EXTREMES)), max_size=300)
floats_st = st.lists(
    st.one_of(st.floats(), st.sampled_from(SPECIAL_FLOATS), st.integers(0, 2**64 - 1).map(bits_to_float)),
    max_size=300,
)
text_st = st.one_of(
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40),
    st.sampled_from(["", "a", "é", "日本語", "😀", "👩‍👩‍👧‍👦", "x" * 16, "y" * 17, "z" * 33]),
)
strings_st = st.lists(text_st, max_size=300)
# Small lg_k reaches HLL mode with few values; any lg_k must work.
lg_k_st = st.one_of(st.integers(4, 8), st.integers(4, 21))


def datum(value) -> bytes | None:
    """The bytes DataSketches hashes for a Python value (None: not counted)."""
    if isinstance(value, str):
        return value.encode() or None
    if isinstance(value, float):
        if value == 0.0:
            return bytes(8)
        if value != value:
            return struct.pack("<Q", 0x7FF8000000000000)
        return struct.pack("<d", value)
    return struct.pack("<q", value)


def coupon(value) -> int | None:
    b = datum(value)
    if b is None:
        return None
    h1, h2 = _hll.hash128(b)
    lz = 64 - h2.bit_length()
    return ((min(lz, 62) + 1) << 26) | (h1 & MASK26)


def coupons_of(values) -> list[int]:
    return sorted({c for c in map(coupon, values) if c is not None})


def expected_mode(n_coupons: int, lg_k: int) -> str:
    return "HLL" if n_coupons >= coupon_limit(lg_k) else "LIST" if n_coupons < 8 else "SET"


def reference(values, lg_k: int, tgt=T.HLL_8):
    sk = ds.hll_sketch(lg_k, tgt)
    for v in values:
        sk.update(v)
    return sk


def in_coupon_order(values) -> list:
    """The values with coupons in ascending order (uncounted values dropped)."""
    return sorted((v for v in values if coupon(v) is not None), key=coupon)


def canonical(sketch, lg_k: int) -> bytes:
    """DataSketches' union result after `sketch` entered a non-empty HLL gadget."""
    u = ds.hll_union(lg_k)
    u.update(sketch)
    u.update(sketch)
    return u.get_result(T.HLL_8).serialize_compact()


def mode_of(sketch) -> str:
    return MODES[sketch.serialize_compact()[7] & 3]


def in_hll_mode(sketch) -> bool:
    return mode_of(sketch) == "HLL"


def assert_same_numbers(ours: HllDistinct, theirs) -> None:
    assert ours.estimate() == theirs.get_estimate()
    for n in (1, 2, 3):
        assert ours.lower_bound(n) == theirs.get_lower_bound(n)
        assert ours.upper_bound(n) == theirs.get_upper_bound(n)


def assert_compatible(ours: HllDistinct, values: list, lg_k: int) -> None:
    expected = coupons_of(values)
    assert ours.mode == expected_mode(len(expected), lg_k)
    if ours.mode != "HLL":
        assert ours.coupons.tolist() == expected
    for tgt in TYPES:
        theirs = reference(values, lg_k, tgt)
        # The same coupons or registers in every mode and serialization of the reference sketch.
        for image in (theirs.serialize_compact(), theirs.serialize_updatable()):
            assert HllDistinct.from_bytes(image) == ours
        assert theirs.is_empty() == ours.is_empty
        assert mode_of(theirs) == ours.mode
        if ours.mode == "HLL":
            # union(ours) alone and union(theirs) give the same bytes, which are our image.
            u = ds.hll_union(lg_k)
            u.update(ours.to_datasketches())
            union_of_ours = u.get_result(T.HLL_8).serialize_compact()
            assert union_of_ours == ours.to_bytes()
            assert canonical(theirs, lg_k) == ours.to_bytes()
            assert canonical(ours.to_datasketches(), lg_k) == ours.to_bytes()
            u = ds.hll_union(lg_k)
            u.update(theirs)
            u.update(theirs)
            assert_same_numbers(ours, u)
        else:
            # Coupon mode: DataSketches' numbers depend on the coupon count only.
            assert_same_numbers(ours, theirs)
    if ours.mode != "HLL":
        # Our LIST/SET image is the one DataSketches writes for these coupons added in order.
        ordered = reference(in_coupon_order(values), lg_k)
        assert ours.to_bytes() == ordered.serialize_compact()
    # Our image is a valid DataSketches sketch with the same numbers.
    sk = ds.hll_sketch.deserialize(ours.to_bytes())
    assert sk.lg_config_k == lg_k
    assert_same_numbers(ours, sk)
    assert HllDistinct.from_bytes(ours.to_bytes()) == ours


# ---------------------------------------------------------------------------- compatibility


@PROPS
@given(values=ints_st, lg_k=lg_k_st)
def test_int64_matches_datasketches(values, lg_k):
    ours = HllDistinct.zero(lg_k).update_int64(np.array(values, dtype=np.int64))
    assert_compatible(ours, values, lg_k)


@PROPS
@given(values=floats_st, lg_k=lg_k_st)
def test_float64_matches_datasketches(values, lg_k):
    ours = HllDistinct.zero(lg_k).update_float64(np.array(values, dtype=np.float64))
    assert_compatible(ours, values, lg_k)


@PROPS
@given(ints=st.lists(st.integers(-(2**63), 2**63 - 1), max_size=100),
       bits=st.lists(st.integers(0, 2**64 - 1) | st.sampled_from([0, 2**63, 0x7FF8000000000000, 0xFFF0000000000001]),
                     max_size=100),
       lg_k=lg_k_st)  # fmt: skip
def test_eight_at_a_time_fills_the_registers_one_at_a_time_does(ints, bits, lg_k):
    """Where the processor has AVX-512, update_int64/update_float64 hash eight values at a time:
    the same registers as the scalar loop, for lengths that are not multiples of eight and for
    doubles of every bit pattern (-0.0, NaNs of any payload, subnormals)."""
    floats = np.array(bits, dtype=np.uint64).view(np.float64)
    for update, values in ((_hll.update_int64, np.array(ints, dtype=np.int64)), (_hll.update_float64, floats)):
        wide, scalar = _registers_both_ways(lg_k, update, values)
        assert np.array_equal(wide, scalar)


def _registers_both_ways(lg_k, update, *args):
    """The registers ``update(registers, *args)`` fills eight at a time, then one at a time (the
    test is skipped where the processor has no AVX-512: there only the scalar loop exists)."""
    if not _hll.use_wide(True):
        pytest.skip("this processor has no AVX-512 (F, DQ, CD): only the scalar loop runs")
    found = []
    try:
        for wide in (True, False):
            _hll.use_wide(wide)
            registers = np.zeros(1 << lg_k, np.uint8)
            update(registers, *args)
            found.append(registers)
    finally:
        _hll.use_wide(True)
    return found


@PROPS
@given(texts=st.lists(st.text(max_size=14) | st.sampled_from(["", "a", "key-012345", "abcdefghijkl", "abcdefghijklm"]),
                      min_size=1, max_size=400),
       inline_run=st.integers(0, 600), lg_k=lg_k_st)  # fmt: skip
def test_eight_string_views_at_a_time_fill_the_registers_one_at_a_time_does(texts, inline_run, lg_k):
    """Groups of eight inline strings (1-12 bytes) are hashed together with AVX-512: the same
    registers as one at a time, for groups with empty or longer strings among them, multi-byte
    text, a run of inline strings long enough for the wide path, and any length of batch."""
    from truthound_sketch.views import string_array

    series = pl.Series("v", [f"k{i % 97}" for i in range(inline_run)] + texts, dtype=pl.String)
    chunk = string_array(series)[0]  # holds the exported array while its views are read
    wide, scalar = _registers_both_ways(lg_k, _hll.update_utf8_view, chunk.views, chunk.data)
    assert np.array_equal(wide, scalar)


@PROPS
@given(values=strings_st, lg_k=lg_k_st, prefix=st.lists(text_st, max_size=5), suffix=st.lists(text_st, max_size=5))
def test_strings_match_datasketches_in_every_layout(values, lg_k, prefix, suffix):
    ours = HllDistinct.zero(lg_k).update_strings(pa.array(values, pa.string()))
    assert_compatible(ours, values, lg_k)
    padded = prefix + values + suffix
    layouts = [
        pa.array(values, pa.large_string()),
        pa.array(padded, pa.string()).slice(len(prefix), len(values)),  # sliced: offsets not at 0
        pa.array(padded, pa.large_string()).slice(len(prefix), len(values)),
        pa.array(values, pa.string_view()),
        pa.array(padded, pa.string_view()).slice(len(prefix), len(values)),
        pa.array(padded, pa.binary()).slice(len(prefix), len(values)),
        pl.Series(padded, dtype=pl.String).slice(len(prefix), len(values)),
        pa.chunked_array(
            [pa.array(values[: len(values) // 2], pa.string()), pa.array(values[len(values) // 2 :], pa.string())]
        ),
        pa.array(values + [None, None], pa.string()),  # nulls are skipped
        pa.array(prefix + [None] + values + [None], pa.string_view()).slice(len(prefix)),
        pl.Series([None] + values + [None], dtype=pl.String),
        pa.array(values, pa.string()).dictionary_encode(),
        pl.Series(values, dtype=pl.String),
        pl.Series(values, dtype=pl.String).cast(pl.Categorical),
        values,
    ]
    for layout in layouts:
        assert HllDistinct.zero(lg_k).update_strings(layout) == ours, type(layout)


def test_int_dtypes_hash_by_value():
    values = np.array([-5, 0, 7, 120], dtype=np.int8)
    expected = HllDistinct.zero(8).update_int64(values.astype(np.int64))
    for dtype in (np.int8, np.int16, np.int32):
        assert HllDistinct.zero(8).update_int64(values.astype(dtype)) == expected
    unsigned = np.array([0, 7, 120, 2**32 - 1], dtype=np.uint32)
    assert HllDistinct.zero(8).update_int64(unsigned) == HllDistinct.zero(8).update_int64(unsigned.astype(np.int64))
    assert HllDistinct.zero(8).update_int64(np.array([True, False])) == HllDistinct.zero(8).update_int64([1, 0])
    assert HllDistinct.zero(8).update_float64(np.array([1.5, -0.0], np.float32)) == HllDistinct.zero(
        8
    ).update_float64([1.5, 0.0])
    # uint64 above 2**63 hashes by bit pattern, like DataSketches' update(uint64_t) / Java update(long).
    big = np.array([2**64 - 1], dtype=np.uint64)
    assert HllDistinct.zero(8).update_int64(big) == HllDistinct.zero(8).update_int64(np.array([-1]))


def test_high_register_values_and_kxq1_are_bit_identical():
    values = list(range(20000)) + HIGH_REGISTER_INTS
    for lg_k in (4, 12):
        ours = HllDistinct.zero(lg_k).update_int64(np.array(values))
        assert int(ours.registers.max()) >= 32
        kxq1 = struct.unpack_from("<d", ours.to_bytes(), 24)[0]
        assert kxq1 > 0
        assert_compatible(ours, values, lg_k)


def test_large_inputs_match_datasketches_in_hll_mode():
    lg_k = 12
    ints = np.random.default_rng(7).integers(-(2**63), 2**63 - 1, 30000, dtype=np.int64)
    floats = np.random.default_rng(8).standard_normal(30000)
    strings = [f"row-{i}-é" for i in range(30000)]
    for ours, values in (
        (HllDistinct.zero(lg_k).update_int64(ints), ints.tolist()),
        (HllDistinct.zero(lg_k).update_float64(floats), floats.tolist()),
        (HllDistinct.zero(lg_k).update_strings(pa.array(strings)), strings),
    ):
        assert in_hll_mode(reference(values, lg_k))
        assert_compatible(ours, values, lg_k)


def test_empty_string_is_not_counted():
    assert HllDistinct.zero().update_strings(pa.array(["", "", ""])).is_empty
    assert HllDistinct.zero().update_strings(pl.Series(["", None], dtype=pl.String)).is_empty
    one = HllDistinct.zero().update_strings(["", "a"])
    assert one == HllDistinct.zero().update_strings(["a"])
    assert reference([""], 12).is_empty()


def test_empty_sketch():
    for lg_k in range(4, 22):
        z = HllDistinct.zero(lg_k)
        assert z.is_empty
        assert z.estimate() == 0.0 and z.lower_bound() == 0.0 and z.upper_bound() == 0.0
        assert z.to_bytes() == ds.hll_sketch(lg_k, T.HLL_8).serialize_compact()
        assert HllDistinct.from_bytes(z.to_bytes()) == z
        assert z.to_datasketches().is_empty()
    z = HllDistinct.zero()
    assert z.update_int64(np.array([], dtype=np.int64)).is_empty
    assert z.update_float64(np.array([])).is_empty
    assert z.update_strings(pa.array([], pa.string())).is_empty


def test_bounds_are_datasketches_bounds():
    ours = HllDistinct.zero(12).update_int64(np.arange(50000))
    sk = ds.hll_sketch.deserialize(ours.to_bytes())
    for n in (1, 2, 3):
        assert ours.lower_bound(n) == sk.get_lower_bound(n)
        assert ours.upper_bound(n) == sk.get_upper_bound(n)
        assert ours.lower_bound(n) < ours.estimate() < ours.upper_bound(n)
    for bad in (0, 4, 1.5, True):
        with pytest.raises(ValueError):
            ours.lower_bound(bad)


@pytest.mark.parametrize("n", [100_000, 1_000_000])
def test_relative_error_within_three_standard_errors(n):
    rse = 1.04 / math.sqrt(4096)  # composite (non-HIP) estimator, lg_k=12: about 1.6%
    ints = HllDistinct.zero(12).update_int64(np.arange(n, dtype=np.int64) * 7919 - 10**9)
    floats = HllDistinct.zero(12).update_float64(np.arange(n, dtype=np.float64) / 3.0)
    strings = HllDistinct.zero(12).update_strings(pl.int_range(0, n, eager=True).cast(pl.String))
    for sk in (ints, floats, strings):
        assert abs(sk.estimate() / n - 1.0) < 3 * rse
        assert sk.lower_bound(3) <= n <= sk.upper_bound(3)


# ---------------------------------------------------------------------------- small cardinalities


def test_two_values_count_two():
    ours = HllDistinct.zero(12).update_int64(np.array([13, -36]))
    assert ours.mode == "LIST" and ours.coupons.shape == (2,)
    theirs = reference([13, -36], 12)
    assert_same_numbers(ours, theirs)
    assert ours.estimate() == pytest.approx(2.0, abs=1e-6)
    assert ours.lower_bound(2) <= 2 <= ours.upper_bound(2)
    assert ours.to_bytes() == reference(in_coupon_order([13, -36]), 12).serialize_compact()


# every count up to 70, both sides of each switch, then about 30 counts up to 5000
SWEEP = sorted(
    set(range(71))
    | {n + d for lg in range(4, 22) for n in (coupon_limit(lg),) if n <= 5000 for d in (-1, 0, 1)}
    | {int(x) for x in np.geomspace(71, 5000, 30)}
)


@pytest.mark.parametrize("lg_k", [4, 7, 8, 10, 12, 21])
def test_every_cardinality_from_0_to_5000(lg_k):
    rng = np.random.default_rng(lg_k)
    for n in SWEEP:
        values = rng.integers(-(2**63), 2**63 - 1, n, dtype=np.int64)
        assert_compatible(HllDistinct.zero(lg_k).update_int64(values), values.tolist(), lg_k)


def updatable_mode(sketch) -> str:
    """The mode from the updatable size, which DataSketches computes without serializing: a LIST
    has 8 cells (40 bytes), an HLL_8 array 40 + 2**lg_k bytes, a SET 12 + 4 * 2**lg_arr."""
    size = sketch.get_updatable_serialization_bytes()
    return "LIST" if size == 40 else "HLL" if size == 40 + (1 << sketch.lg_config_k) else "SET"


@pytest.mark.parametrize("lg_k", range(4, 22))
def test_mode_switches_where_datasketches_switches(lg_k):
    n = 2 * coupon_limit(lg_k) + 10
    values = np.random.default_rng(lg_k).integers(-(2**63), 2**63 - 1, n, dtype=np.int64)
    sk = ds.hll_sketch(lg_k, T.HLL_8)
    switches = {}
    mode = "LIST"
    for i, v in enumerate(values.tolist()):
        sk.update(v)
        if updatable_mode(sk) != mode:
            mode = updatable_mode(sk)
            switches[mode] = i + 1
    assert mode_of(sk) == "HLL"
    assert set(switches) == ({"HLL"} if lg_k < 8 else {"SET", "HLL"})
    for m, at in switches.items():
        before = HllDistinct.zero(lg_k).update_int64(values[: at - 1])
        after = HllDistinct.zero(lg_k).update_int64(values[:at])
        assert after.mode == m and before.mode != m
        # one value at a time from `before` crosses it too
        assert before.update_int64(values[at - 1 : at]) == after
    if lg_k >= 8:
        assert HllDistinct.zero(lg_k).update_int64(values[: switches["SET"]]).coupons.shape == (8,)
    # DataSketches promotes to HLL when its coupon count reaches coupon_limit(lg_k)
    last = HllDistinct.zero(lg_k).update_int64(values[: switches["HLL"] - 1])
    assert last.coupons.shape == (coupon_limit(lg_k) - 1,)


def test_bounds_cover_the_truth():
    rng = np.random.default_rng(2024)
    # 2000 random sets of 2 to 60 values: coupon mode is exact, so every bound holds.
    for _ in range(2000):
        values = np.unique(rng.integers(-100, 100, rng.integers(2, 61)))
        sk = HllDistinct.zero(12).update_int64(values)
        assert sk.lower_bound(2) <= values.shape[0] <= sk.upper_bound(2)
        assert sk.estimate() == pytest.approx(values.shape[0], rel=1e-4)
    # 400 sets of log-uniform size 1..5000 across the switch to HLL mode: 2-sigma bounds hold
    # at least 95% of the time.
    inside = 0
    for _ in range(400):
        n = int(np.exp(rng.uniform(0, math.log(5000))))
        values = rng.integers(-(2**63), 2**63 - 1, n, dtype=np.int64)
        sk = HllDistinct.zero(12).update_int64(values)
        inside += sk.lower_bound(2) <= n <= sk.upper_bound(2)
    assert inside >= 0.95 * 400


batch_values_st = st.one_of(
    st.tuples(st.just("int"), st.lists(st.integers(-(2**63), 2**63 - 1), max_size=700)),
    st.tuples(st.just("float"), st.lists(st.floats(), max_size=700)),
    st.tuples(st.just("str"), st.lists(text_st, max_size=700)),
)


@PROPS
@given(kv=batch_values_st, lg_k=st.sampled_from([4, 8, 9, 12]), data=st.data())
def test_batches_and_order_do_not_change_the_sketch(kv, lg_k, data):
    kind, values = kv
    cuts = sorted(data.draw(st.lists(st.integers(0, len(values)), max_size=6), label="cuts"))
    parts = [values[i:j] for i, j in zip([0] + cuts, cuts + [len(values)])]

    def fed(sk, part):
        if kind == "int":
            return sk.update_int64(np.array(part, dtype=np.int64))
        if kind == "float":
            return sk.update_float64(np.array(part, dtype=np.float64))
        layout = data.draw(st.sampled_from([pa.string(), pa.large_string(), pa.string_view()]), label="layout")
        return sk.update_strings(pa.array(part, layout))

    whole = fed(HllDistinct.zero(lg_k), values)
    batched = HllDistinct.zero(lg_k)
    for part in parts:
        fed(batched, part)
    backwards = HllDistinct.zero(lg_k)
    for part in reversed(parts):
        fed(backwards, part[::-1])
    assert batched == whole == backwards
    assert batched.to_bytes() == whole.to_bytes() == backwards.to_bytes()
    assert batched.mode == expected_mode(len(coupons_of(values)), lg_k)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(0, 5000), seed=st.integers(0, 2**32 - 1), lg_k=st.sampled_from([4, 7, 8, 10, 12]),
       data=st.data())
def test_estimate_is_that_of_datasketches_union_of_the_parts(n, seed, lg_k, data):
    values = np.random.default_rng(seed).integers(0, max(1, n), n, dtype=np.int64)  # with repeats
    cuts = sorted(data.draw(st.lists(st.integers(0, n), max_size=5), label="cuts"))
    parts = [values[i:j] for i, j in zip([0] + cuts, cuts + [n])]
    ours_parts = [HllDistinct.zero(lg_k).update_int64(p) for p in parts]
    while len(ours_parts) > 1:  # a random merge tree
        i = data.draw(st.integers(0, len(ours_parts) - 2), label="merge at")
        ours_parts[i : i + 2] = [ours_parts[i].merge(ours_parts[i + 1])]
    ours = ours_parts[0]
    assert ours == HllDistinct.zero(lg_k).update_int64(values)
    u = ds.hll_union(lg_k)
    for p in parts:
        u.update(reference(p.tolist(), lg_k))
    result = u.get_result(T.HLL_8)
    assert HllDistinct.from_bytes(result.serialize_compact()) == ours
    if ours.mode == "HLL":
        # DataSketches keeps an in-order HIP estimate where its union promoted coupons itself; any
        # union with another HLL-mode sketch drops it, and then the bytes are ours.
        assert canonical(result, lg_k) == ours.to_bytes()
        u.update(ds.hll_sketch.deserialize(canonical(result, lg_k)))
    assert_same_numbers(ours, u)


# ---------------------------------------------------------------------------- monoid


sketch_st = st.builds(
    lambda lg_k, values: HllDistinct.zero(lg_k).update_int64(np.array(values, dtype=np.int64)),
    st.integers(4, 10),
    st.lists(st.integers(-(2**63), 2**63 - 1), max_size=200),
)


@PROPS
@given(a=sketch_st, b=sketch_st, c=sketch_st)
def test_merge_is_a_commutative_idempotent_monoid(a, b, c):
    assert (a + b) + c == a + (b + c)
    assert a + b == b + a
    assert a + a == a
    assert a + HllDistinct.zero(a.lg_k) == a
    assert a.is_empty or a + HllDistinct.zero(4) == a + HllDistinct.zero(21) == a
    before = a.registers.copy()
    a.merge(b)
    assert np.array_equal(a.registers, before)  # merge returns a new object


@PROPS
@given(a=st.lists(st.integers(-(2**63), 2**63 - 1), max_size=300), b=st.lists(st.integers(0, 10**6), max_size=300),
       lg_a=st.integers(4, 12), lg_b=st.integers(4, 12))
def test_merge_across_lg_k_matches_datasketches_union(a, b, lg_a, lg_b):
    sk_a = HllDistinct.zero(lg_a).update_int64(np.array(a, dtype=np.int64))
    sk_b = HllDistinct.zero(lg_b).update_int64(np.array(b, dtype=np.int64))
    ours = sk_a + sk_b
    # Empty sketches are ignored; otherwise the smaller lg_k wins.
    non_empty = [s.lg_k for s in (sk_a, sk_b) if not s.is_empty] or [lg_a, lg_b]
    assert ours.lg_k == min(non_empty)
    # The merge is one sketch over both inputs at that lg_k, in the mode that count of coupons gives.
    assert ours == HllDistinct.zero(ours.lg_k).update_int64(np.array(a + b, dtype=np.int64))
    assert ours.mode == expected_mode(len(coupons_of(a + b)), ours.lg_k)
    # DataSketches' union with that lg_k as its maximum holds the same coupons or registers.  (The
    # sketch of smaller lg_k goes first: DataSketches 5.2 can take a union that downsampled a tiny
    # HLL-mode sketch into its empty gadget for empty, and drop it at the next update.)
    u = ds.hll_union(ours.lg_k)
    for lg, values in sorted([(lg_a, a), (lg_b, b)], key=lambda p: p[0]):
        u.update(reference(values, lg))
    result = u.get_result(T.HLL_8)
    assert result.lg_config_k == ours.lg_k
    assert HllDistinct.from_bytes(result.serialize_compact()) == ours
    if ours.mode == "HLL":
        assert canonical(result, ours.lg_k) == ours.to_bytes()
    else:
        assert_same_numbers(ours, result)


def test_coupon_mode_merges():
    lg_k = 12
    limit = coupon_limit(lg_k)
    a = HllDistinct.zero(lg_k).update_int64(np.arange(0, 200))
    b = HllDistinct.zero(lg_k).update_int64(np.arange(100, 300))
    assert (a + b).mode == "SET" and (a + b).coupons.shape == (300,)
    assert (a + b) == HllDistinct.zero(lg_k).update_int64(np.arange(300))
    # the union reaches DataSketches' switch: registers
    c = HllDistinct.zero(lg_k).update_int64(np.arange(300, 300 + limit))
    assert c.mode == "HLL" and (a + c).mode == "HLL"
    d_values = np.arange(10_000, 10_000 + limit - 300)  # 300 + these = DataSketches' switch
    d = HllDistinct.zero(lg_k).update_int64(d_values)
    assert d.mode == "SET" and (a + b).mode == "SET" and (a + b + d).mode == "HLL"
    assert (a + b + d) == HllDistinct.zero(lg_k).update_int64(np.r_[np.arange(300), d_values])
    # coupons + registers: the coupons fold into the registers, whichever side they are on
    big = HllDistinct.zero(lg_k).update_int64(np.arange(5000, 10_000))
    assert (a + big) == (big + a) == HllDistinct.zero(lg_k).update_int64(np.r_[np.arange(200), np.arange(5000, 10_000)])
    assert (a + big).to_bytes() == (big + a).to_bytes()
    # smaller lg_k: coupon mode while the union is below that lg_k's switch
    small = HllDistinct.zero(8).update_int64(np.arange(3))
    tiny = HllDistinct.zero(12).update_int64(np.arange(2, 10))
    assert (small + tiny).lg_k == 8 and (small + tiny).mode == "SET" and (small + tiny).coupons.shape == (10,)
    assert (small + a).lg_k == 8 and (small + a).mode == "HLL"
    assert (small + a) == HllDistinct.zero(8).update_int64(np.arange(200))


def test_from_coupons_and_downsample_in_coupon_mode():
    sk = HllDistinct.zero(12).update_int64(np.arange(50))
    assert HllDistinct.from_coupons(12, sk.coupons[::-1]) == sk
    assert HllDistinct.from_coupons(12, np.r_[sk.coupons, sk.coupons]) == sk
    assert HllDistinct.from_coupons(12, []) == HllDistinct.zero(12)
    assert sk.downsample(10) == HllDistinct.zero(10).update_int64(np.arange(50))
    assert sk.downsample(10).mode == "SET"
    assert sk.downsample(9).mode == "HLL"  # 50 coupons are past lg_k 9's switch (49)
    assert sk.downsample(9) == HllDistinct.zero(9).update_int64(np.arange(50))
    assert sk.registers.max() > 0 and not sk.coupons.flags.writeable
    sk.registers[:] = 0  # a fresh array in coupon mode: the sketch is unchanged
    assert sk == HllDistinct.zero(12).update_int64(np.arange(50))
    with pytest.raises(ValueError):
        HllDistinct.from_coupons(12, [5])  # value bits 0
    with pytest.raises(ValueError):
        HllDistinct.from_coupons(12, [2**32])
    with pytest.raises(TypeError):
        HllDistinct.from_coupons(12, [1.5])
    assert HllDistinct(12, np.zeros(4096, np.uint8)).is_empty  # all-zero registers: empty
    # A SET image holding as many coupons as its lg_k's switch (not written by DataSketches) is read
    # in HLL mode, where DataSketches' next update would put it.
    image = bytearray(HllDistinct.zero(12).update_int64(np.arange(30)).to_bytes())
    image[3] = 8
    assert HllDistinct.from_bytes(bytes(image)) == HllDistinct.zero(8).update_int64(np.arange(30))
    assert HllDistinct.from_bytes(bytes(image)).mode == "HLL"


def test_merge_with_a_datasketches_sketch_of_another_partition():
    values = np.arange(40000)
    ours = HllDistinct.zero(12).update_int64(values[:15000])
    theirs = reference(values[15000:].tolist(), 12)
    u = ds.hll_union(12)
    u.update(ours.to_datasketches())
    u.update(theirs)
    whole = HllDistinct.zero(12).update_int64(values)
    assert u.get_result(T.HLL_8).serialize_compact() == whole.to_bytes()
    assert ours + HllDistinct.from_datasketches(theirs) == whole
    assert HllDistinct.from_datasketches(u) == whole


def test_pickles_as_datasketches_bytes():
    for sk in (HllDistinct.zero(7), HllDistinct.zero(12).update_int64(np.arange(3)),
               HllDistinct.zero(12).update_int64(np.arange(300)), HllDistinct.zero(12).update_int64(np.arange(1000))):
        blob = pickle.dumps(sk)
        assert sk.to_bytes() in blob
        assert pickle.loads(blob) == sk and pickle.loads(blob).mode == sk.mode


def test_downsample_and_validation():
    sk = HllDistinct.zero(14).update_int64(np.arange(5000))
    assert sk.downsample(10) == HllDistinct.zero(10).update_int64(np.arange(5000))
    with pytest.raises(ValueError):
        sk.downsample(15)
    for bad in (3, 22):
        with pytest.raises(ValueError):
            HllDistinct.zero(bad)
    with pytest.raises(TypeError):
        HllDistinct.zero(12.0)
    with pytest.raises(ValueError):
        HllDistinct(12, np.zeros(100, np.uint8))
    with pytest.raises(ValueError):
        HllDistinct(4, np.full(16, 64, np.uint8))
    with pytest.raises(TypeError):
        HllDistinct.zero().update_int64(np.array([1.5]))
    with pytest.raises(TypeError):
        HllDistinct.zero().update_float64(np.array([1, 2]))
    with pytest.raises(TypeError):
        HllDistinct.zero().update_strings(pa.array([1, 2]))
    with pytest.raises(TypeError):
        HllDistinct.zero().update_strings(pl.Series([1, 2]))
    with pytest.raises(TypeError):
        HllDistinct.zero().update_strings(pa.array([None], pa.int64()))
    with pytest.raises(TypeError):
        HllDistinct.zero().merge(object())


# ---------------------------------------------------------------------------- from_bytes


IMAGE_SOURCES = {"list": (12, 5), "set": (12, 300), "hll": (12, 20000), "hll-exc": (4, 5000), "hll-lo": (6, 50)}


def _images() -> dict[str, tuple[bytes, HllDistinct]]:
    """Images of every type, mode and form DataSketches writes (and ours), with expected registers."""
    out: dict[str, tuple[bytes, HllDistinct]] = {}
    for label, (lg_k, n) in IMAGE_SOURCES.items():
        expected = HllDistinct.zero(lg_k).update_int64(np.arange(n))
        for tgt in TYPES:
            sk = reference(list(range(n)), lg_k, tgt)
            out[f"{label}-{tgt.name}-compact"] = (sk.serialize_compact(), expected)
            out[f"{label}-{tgt.name}-updatable"] = (sk.serialize_updatable(), expected)
    for lg_k, n in ((12, 20000), (4, 20)):
        ours = HllDistinct.zero(lg_k).update_int64(np.arange(n))
        out[f"ours-{lg_k}"] = (ours.to_bytes(), ours)
    return out


EXPECTED = _images()
IMAGES = {name: image for name, (image, _) in EXPECTED.items()}


def test_images_cover_every_mode_and_type():
    modes = {(img[7] & 3, (img[7] >> 2) & 3, bool(img[5] & 8)) for img in IMAGES.values()}
    assert modes == {(m, t, c) for m in (0, 1, 2) for t in (0, 1, 2) for c in (False, True)}
    hll4_with_exceptions = [k for k, img in IMAGES.items() if img[7] == 2 and struct.unpack_from("<I", img, 36)[0]]
    assert hll4_with_exceptions


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_from_bytes_reads_every_datasketches_image(name):
    image, expected = EXPECTED[name]
    got = HllDistinct.from_bytes(image)
    assert got == expected  # LIST/SET images stay in coupon mode
    assert got.mode == MODES[image[7] & 3]
    if got.mode != "HLL":
        cells = np.frombuffer(image, "<u4", offset=8 if got.mode == "LIST" else 12)
        assert got.coupons.tolist() == sorted(cells[cells != 0].tolist())
    sk = ds.hll_sketch.deserialize(image)
    assert got.lg_k == sk.lg_config_k
    # Where DataSketches itself converts the image to HLL_8 registers, they are ours.
    u = ds.hll_union(sk.lg_config_k)
    u.update(sk)
    result = u.get_result(T.HLL_8)
    if in_hll_mode(result):
        assert got.registers.tobytes() == result.serialize_updatable()[40 : 40 + (1 << got.lg_k)]
    assert HllDistinct.from_bytes(memoryview(image)) == got
    assert HllDistinct.from_bytes(bytearray(image)) == got


def _expect_format_error(data, fragment: str = "") -> None:
    with pytest.raises(ProfileFormatError) as info:
        HllDistinct.from_bytes(data)
    assert fragment in str(info.value)


def test_specific_corruptions_are_reported():
    good = IMAGES["hll-HLL_8-compact"]

    def patched(image: bytes, pos: int, value: int) -> bytes:
        b = bytearray(image)
        b[pos] = value
        return bytes(b)

    _expect_format_error(b"", "too short")
    _expect_format_error(good[:7], "too short")
    _expect_format_error(patched(good, 2, 3), "family")
    _expect_format_error(patched(good, 1, 2), "version")
    for lg in (0, 3, 22, 255):
        _expect_format_error(patched(good, 3, lg), "lg_k")
    _expect_format_error(patched(good, 7, 0x0B), "mode")
    _expect_format_error(patched(good, 7, 0x0E), "mode")
    _expect_format_error(patched(good, 7, 0x4A), "mode")
    _expect_format_error(patched(good, 0, 2), "preamble")
    _expect_format_error(patched(good, 40, 64), "register")
    _expect_format_error(patched(good, 36, 1), "aux")
    _expect_format_error(patched(IMAGES["list-HLL_8-compact"], 6, 6), "truncated")
    _expect_format_error(patched(IMAGES["list-HLL_8-updatable"], 6, 4), "LIST header counts")
    _expect_format_error(patched(IMAGES["set-HLL_8-updatable"], 8, 7), "SET header counts")
    _expect_format_error(patched(IMAGES["set-HLL_8-compact"], 11, 0x80), "SET coupon count")
    listed = IMAGES["list-HLL_8-compact"]
    _expect_format_error(listed[:12] + listed[8:12] + listed[16:], "twice")
    _expect_format_error(listed[:8] + bytes(4) + listed[12:], "LIST header counts")
    _expect_format_error(listed[:8] + struct.pack("<I", 77) + listed[12:], "value 0")
    exc = IMAGES["hll-exc-HLL_4-compact"]
    _expect_format_error(patched(exc, 36, exc[36] + 1), "exception")
    _expect_format_error(exc[:-1], "truncated")
    _expect_format_error(123, "bytes")
    _expect_format_error("not bytes", "bytes")


@pytest.mark.parametrize("name", [n for n in sorted(IMAGES) if "compact" in n or "HLL_4" not in n])
def test_every_truncation_is_reported(name):
    image = IMAGES[name]
    if image[5] & 4:  # empty-flagged images are complete after 8 bytes
        return
    step = max(1, len(image) // 97)
    for cut in range(0, len(image), step):
        _expect_format_error(image[:cut])


@settings(max_examples=1000, deadline=None)
@given(
    name=st.sampled_from(sorted(IMAGES)),
    edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=6),
    cut=st.one_of(st.none(), st.integers(0, 10**6)),
    tail=st.binary(max_size=8),
)
def test_fuzzed_bytes_never_crash(name, edits, cut, tail):
    data = bytearray(IMAGES[name])
    for pos, value in edits:
        data[pos % len(data)] = value
    if cut is not None:
        data = data[: cut % (len(data) + 1)]
    data += tail
    try:
        sk = HllDistinct.from_bytes(bytes(data))
    except ProfileFormatError:
        return
    assert sk.registers.dtype == np.uint8 and int(sk.registers.max(initial=0)) <= 63
    assert HllDistinct.from_bytes(sk.to_bytes()) == sk
    assert sk.estimate() >= 0.0


# ---------------------------------------------------------------------------- C layer


def test_c_layer_rejects_bad_registers():
    values = np.arange(3, dtype=np.int64)
    bad_lengths = [np.zeros(n, np.uint8) for n in (0, 1, 8, 100, 4095, 4097, 2**22)]
    for regs in bad_lengths:
        with pytest.raises(ValueError, match="2\\^lg_k"):
            _hll.update_int64(regs, values)
        with pytest.raises(ValueError, match="2\\^lg_k"):
            _hll.apply_coupons(regs, np.array([1 << 26], np.uint32))
    read_only = np.zeros(4096, np.uint8)
    read_only.flags.writeable = False
    for regs in (
        bytes(4096),  # read-only
        read_only,
        np.zeros(8192, np.uint8)[::2],  # not contiguous
        np.zeros(2048, np.int16),  # 4096 bytes of the wrong item size
        np.zeros(4096, np.int8),  # the wrong format
        np.zeros(4096, bool),
        "not a buffer",
        None,
    ):
        with pytest.raises(TypeError, match="registers"):
            _hll.update_int64(regs, values)
        with pytest.raises(TypeError, match="registers"):
            _hll.update_utf8_view(regs, np.zeros(16, np.uint8), [])
    # any writable contiguous uint8 buffer of 2^lg_k bytes works, and an empty input changes nothing
    for regs in (bytearray(16), np.zeros(2**21, np.uint8), memoryview(bytearray(64))):
        _hll.update_int64(regs, np.zeros(0, np.int64))
        assert not any(bytes(regs))
        _hll.update_int64(regs, values)
        assert any(bytes(regs))


def test_c_layer_rejects_bad_values():
    regs = np.zeros(4096, np.uint8)
    for values in (
        np.arange(3, dtype=np.int32),
        np.arange(3, dtype=np.uint8),
        np.arange(3, dtype=np.float64),
        np.arange(3, dtype=">i8"),  # big-endian
        np.arange(6, dtype=np.int64)[::2],  # not contiguous
        np.broadcast_to(np.int64(1), (2**40,)),  # huge, but a zero-stride view: refused at once
        np.array(["a"], object),
        b"12345678",
        42,
    ):
        with pytest.raises(TypeError, match="values"):
            _hll.update_int64(regs, values)
        with pytest.raises(TypeError, match="values"):
            _hll.collect_int64(np.zeros(0, np.uint32), values, 10)
    for values in (np.arange(3), np.arange(3, dtype=np.float32), np.arange(6.0)[::2]):
        with pytest.raises(TypeError, match="values"):
            _hll.update_float64(regs, values)
        with pytest.raises(TypeError, match="values"):
            _hll.collect_float64(np.zeros(0, np.uint32), values, 10)
    assert not regs.any()
    # 2-d C-contiguous arrays are read as their flat values; uint64 as bit patterns
    _hll.update_int64(regs, np.arange(6, dtype=np.uint64).reshape(2, 3))
    assert np.array_equal(regs, HllDistinct.zero(12).update_int64(np.arange(6)).registers)


def test_c_layer_rejects_bad_string_offsets():
    regs = np.zeros(4096, np.uint8)
    data = b"abcdef"
    for offsets, wide in (
        ([0, 4, 2], False),  # decreasing
        ([0, 7], False),  # past the data
        ([-1, 2], True),  # negative
        ([2, 1], True),
        ([0, 2**62], True),
        ([0, 2**31 - 1], False),
    ):
        with pytest.raises(ValueError, match="offsets"):
            _hll.update_utf8(regs, np.array(offsets, np.int64 if wide else np.int32), data, wide)
        with pytest.raises(ValueError, match="offsets"):
            _hll.collect_utf8(np.zeros(0, np.uint32), np.array(offsets, np.int64 if wide else np.int32), data, wide, 9)
    for offsets, wide in (
        (np.zeros(3, np.uint8), True),  # wrong item size
        (np.zeros(3, np.int64), False),
        (np.zeros(3, np.int32), True),
        (np.zeros(6, np.int32)[::2], False),  # not contiguous
        (np.zeros(3, np.float32), False),
    ):
        with pytest.raises(TypeError, match="offsets"):
            _hll.update_utf8(regs, offsets, data, wide)
    with pytest.raises(TypeError, match="data"):
        _hll.update_utf8(regs, np.array([0, 1], np.int32), np.zeros(8, np.uint8)[::2], False)
    assert not regs.any()  # the failed calls touched nothing
    for offsets in ([], [0], [3, 3, 3]):  # no strings, or only empty ones
        _hll.update_utf8(regs, np.array(offsets, np.int32), data, False)
    assert not regs.any()
    _hll.update_utf8(regs, np.array([0, 3, 3, 6], np.int64), data, True)
    assert np.array_equal(regs, HllDistinct.zero(12).update_strings(["abc", "def"]).registers)
    assert _hll.hash128(b"") != _hll.hash128(b"\x00")


def test_c_layer_rejects_bad_string_views():
    regs = np.zeros(16, np.uint8)

    def view(length: int, idx: int = 0, off: int = 0) -> bytes:
        return struct.pack("<i4sii", length, b"abcd", idx, off)

    data = [b"x" * 40]
    for bad in (view(-1), view(20, idx=1), view(20, idx=-1), view(20, off=30), view(20, off=-1),
                view(2**31 - 1, off=2**31 - 1), view(20, off=2**31 - 1)):
        with pytest.raises(ValueError, match="view"):
            _hll.update_utf8_view(regs, np.frombuffer(view(3) + bad, np.uint8), data)
        with pytest.raises(ValueError, match="view"):
            _hll.collect_utf8_view(np.zeros(0, np.uint32), np.frombuffer(view(3) + bad, np.uint8), data, 9)
    with pytest.raises(ValueError):
        _hll.update_utf8_view(regs, np.zeros(15, np.uint8), data)
    with pytest.raises(TypeError):
        _hll.update_utf8_view(regs, np.zeros(16, np.uint8), [object()])
    with pytest.raises(TypeError):
        _hll.update_utf8_view(regs, np.zeros(16, np.uint8), 42)
    with pytest.raises(TypeError):
        _hll.update_utf8_view(regs, np.zeros(32, np.uint8)[::2], data)
    assert not regs.any()
    _hll.update_utf8_view(regs, np.frombuffer(view(0) + view(20, off=20) + view(3), np.uint8), data)
    assert regs.astype(bool).sum() >= 1
    expected = HllDistinct.zero(4).update_strings(["x" * 20, "abc"])
    assert np.array_equal(regs, expected.registers)


def test_c_layer_collects_coupons():
    values = np.random.default_rng(3).integers(-(2**63), 2**63 - 1, 1000, dtype=np.int64)
    expected = [coupon(int(v)) for v in values]
    raw, consumed = _hll.collect_int64(np.zeros(0, np.uint32), values, 5000)
    assert consumed == 1000
    assert sorted(np.frombuffer(raw, np.uint32).tolist()) == sorted(set(expected))
    # it stops at the value that makes `limit` distinct coupons, starting from the given ones
    seed = np.array(sorted(set(expected[:10])), np.uint32)
    raw, consumed = _hll.collect_int64(seed, values, 25)
    assert consumed == 25 - 10 + 10  # the first 10 values are already there
    assert sorted(np.frombuffer(raw, np.uint32).tolist()) == sorted(set(expected[:25]))
    raw, consumed = _hll.collect_int64(seed, values, 10)  # already at the limit
    assert consumed == 0 and len(raw) == 40
    raw, consumed = _hll.collect_int64(np.r_[seed, seed], values[:0], 20)  # duplicates collapse
    assert consumed == 0 and len(raw) == 40
    for limit in (0, -1, _hll.MAX_COLLECT_LIMIT + 1):
        with pytest.raises(ValueError, match="limit"):
            _hll.collect_int64(np.zeros(0, np.uint32), values, limit)
    with pytest.raises(ValueError, match="limit"):
        _hll.collect_int64(seed, values, 5)  # more coupons than the limit
    with pytest.raises(ValueError, match="not a coupon"):
        _hll.collect_int64(np.array([0, 1 << 26], np.uint32), values, 50)
    for bad in (seed.astype(np.int64), seed.astype(np.uint16), np.r_[seed, seed][::2], list(seed)):
        with pytest.raises(TypeError, match="coupons"):
            _hll.collect_int64(bad, values, 50)
    # apply_coupons checks every cell before it writes
    regs = np.zeros(16, np.uint8)
    with pytest.raises(ValueError, match="not a coupon"):
        _hll.apply_coupons(regs, np.array([1 << 26 | 3, 7], np.uint32))
    assert not regs.any()
    _hll.apply_coupons(regs, np.array([0, 5 << 26 | 3, 2 << 26 | 19, 63 << 26 | 35], np.uint32))
    assert regs.tolist() == [0, 0, 0, 63] + [0] * 12
    # set_layout refuses what DataSketches' SET cannot hold
    with pytest.raises(ValueError, match="lg_k"):
        _hll.set_layout(seed, 7)
    with pytest.raises(ValueError, match="duplicate"):
        _hll.set_layout(np.r_[seed, seed[:1]], 12)
    with pytest.raises(ValueError, match="not a coupon"):
        _hll.set_layout(np.r_[seed, np.uint32(9)], 12)
    with pytest.raises(ValueError, match="exceed"):
        _hll.set_layout(np.arange(1, 26, dtype=np.uint32) << np.uint32(26), 8)


def test_threads_update_independent_sketches_correctly():
    chunks = [np.arange(i * 200_000, (i + 1) * 200_000) for i in range(4)]
    for make in (lambda c: c, lambda c: c % 50):  # HLL mode, and coupon mode throughout
        sketches = [HllDistinct.zero(12) for _ in chunks]
        threads = [threading.Thread(target=s.update_int64, args=(make(c),)) for s, c in zip(sketches, chunks)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert all(not t.is_alive() for t in threads)
        merged = sketches[0] + sketches[1] + sketches[2] + sketches[3]
        assert merged == HllDistinct.zero(12).update_int64(make(np.concatenate(chunks)))


def run_threads(target, n: int = 4) -> list[BaseException]:
    """Runs target(i) in n threads started together; returns what they raised."""
    errors: list[BaseException] = []
    barrier = threading.Barrier(n)

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            target(i)
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert all(not t.is_alive() for t in threads)
    return errors


def test_four_threads_on_one_sketch_serialize_on_its_lock():
    rng = np.random.default_rng(11)
    ints = rng.integers(-(2**63), 2**63 - 1, (4, 20, 5000), dtype=np.int64)
    strings = [[pa.array([f"{t}-{b}-{i}" for i in range(300)], pa.string_view()) for b in range(10)] for t in range(4)]
    for lg_k in (12, 21):  # promoted early / still in coupon mode for a while
        shared = HllDistinct.zero(lg_k)

        def work(t: int) -> None:
            for b in range(20):
                shared.update_int64(ints[t, b])
                if b < 10:
                    shared.update_strings(strings[t][b])
                    shared.update_float64(ints[t, b].astype(np.float64))

        assert run_threads(work) == []
        alone = HllDistinct.zero(lg_k)
        for t in range(4):
            work_alone = alone.update_int64(ints[t].ravel())
            for b in range(10):
                work_alone.update_strings(strings[t][b]).update_float64(ints[t, b].astype(np.float64))
        assert shared == alone


def test_readers_see_a_whole_state_while_another_thread_promotes():
    values = np.random.default_rng(9).integers(-(2**63), 2**63 - 1, 2_000_000, dtype=np.int64)
    for _ in range(10):
        sk = HllDistinct.zero(16)  # coupon mode up to 6144 coupons
        seen: set[str] = set()

        def work(t: int) -> None:
            if t == 0:
                for i in range(0, values.shape[0], 250_000):
                    sk.update_int64(values[i : i + 250_000])
                return
            for _ in range(200):
                seen.add(sk.mode)
                image = sk.to_bytes()
                assert HllDistinct.from_bytes(image).lg_k == 16
                assert (sk + HllDistinct.zero(16)).lg_k == 16 and sk.registers.shape == (65536,)
                assert sk.coupons is None or sk.coupons.shape[0] < coupon_limit(16)

        assert run_threads(work) == []
        assert sk == HllDistinct.zero(16).update_int64(values) and sk.mode == "HLL"
        assert seen <= {"LIST", "SET", "HLL"}


def test_four_threads_on_one_register_buffer_stay_in_bounds():
    """The C functions do not lock: the same registers from 4 threads at once may lose updates but
    every register holds a value some thread wrote, never more than the true maximum."""
    values = np.random.default_rng(5).integers(-(2**63), 2**63 - 1, (4, 400_000), dtype=np.int64)
    expected = HllDistinct.zero(10).update_int64(values.ravel()).registers
    for _ in range(3):
        regs = np.zeros(1024, np.uint8)
        assert run_threads(lambda t: _hll.update_int64(regs, values[t])) == []
        assert (regs <= expected).all() and (regs[expected > 0] > 0).all()
    # values and registers in one buffer (aliasing) is safe too
    blob = np.zeros(4096, np.uint8)
    _hll.update_int64(blob, blob.view(np.int64))
    assert blob.max() <= 63


def test_buffers_mutated_by_another_thread_never_crash():
    """While a call runs without the GIL another thread rewrites its offsets and views; the call
    re-checks every offset and view it uses, so it hashes or raises ValueError, nothing else."""
    n = 100_000
    strings = pa.array([f"value-{i:09d}" for i in range(n)], pa.string())  # 15 bytes: out of line in views
    offsets = np.frombuffer(strings.buffers()[1], np.int32).copy()
    data = strings.buffers()[2]
    views = np.frombuffer(pa.array(strings.to_pylist(), pa.string_view()).buffers()[1], np.uint8).copy()
    view_data = list(pa.array(strings.to_pylist(), pa.string_view()).buffers()[2:])
    stop = threading.Event()

    def vandal() -> None:
        rng = np.random.default_rng(1)
        view_words = views.view(np.int32)
        while not stop.is_set():
            i = int(rng.integers(1, n))
            old_o, old_v = offsets[i], view_words[4 * i + 3]
            offsets[i] = 2**31 - 1
            view_words[4 * i + 3] = 2**31 - 100
            offsets[i], view_words[4 * i + 3] = old_o, old_v

    calls = [
        lambda: _hll.update_utf8(np.zeros(4096, np.uint8), offsets, data, False),
        lambda: _hll.collect_utf8(np.zeros(0, np.uint32), offsets, data, False, 100_000),
        lambda: _hll.update_utf8_view(np.zeros(4096, np.uint8), views, view_data),
        lambda: _hll.collect_utf8_view(np.zeros(0, np.uint32), views, view_data, 100_000),
    ]
    outcomes = {"ok": 0, "ValueError": 0}
    thread = threading.Thread(target=vandal)
    thread.start()
    try:
        for _ in range(30):
            for call in calls:
                try:
                    call()
                    outcomes["ok"] += 1
                except ValueError:
                    outcomes["ValueError"] += 1
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive()
    assert sum(outcomes.values()) == 120
    # unharmed buffers still give the right answer
    as_views = strings.cast(pa.string_view())
    assert HllDistinct.zero(12).update_strings(strings) == HllDistinct.zero(12).update_strings(as_views)


# ---------------------------------------------------------------------------- Spark (Java)


@pytest.fixture(scope="module")
def spark():
    pyspark = pytest.importorskip("pyspark")
    from pyspark.sql import SparkSession

    assert pyspark
    existing = SparkSession.getActiveSession()
    session = existing or (
        SparkSession.builder.master("local[1]")
        .appName("test_hll")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "1")
        .getOrCreate()
    )
    yield session
    if existing is None:
        session.stop()


@pytest.mark.spark
def test_spark_sketches_and_ours_are_interchangeable(spark):
    from pyspark.sql import functions as F

    n = 30000
    df = spark.range(0, n).withColumn("s", F.col("id").cast("string"))
    row = df.agg(
        F.hll_sketch_agg("id", 12).alias("ints"),
        F.hll_sketch_agg("s", 12).alias("strs"),
        F.hll_sketch_agg("id", 5).alias("ints5"),
    ).collect()[0]
    ints = HllDistinct.zero(12).update_int64(np.arange(n))
    strs = HllDistinct.zero(12).update_strings(pl.int_range(0, n, eager=True).cast(pl.String))
    assert HllDistinct.from_bytes(bytes(row["ints"])) == ints
    assert HllDistinct.from_bytes(bytes(row["strs"])) == strs
    assert HllDistinct.from_bytes(bytes(row["ints5"])) == HllDistinct.zero(5).update_int64(np.arange(n))

    # Spark reads our bytes, and a union of ours with Spark's estimates like ours alone.
    half = HllDistinct.zero(12).update_int64(np.arange(n // 2))
    pdf = spark.createDataFrame(
        [(bytearray(half.to_bytes()), 0), (bytearray(bytes(row["ints"])), 1), (bytearray(ints.to_bytes()), 2)],
        "h binary, i int",
    )
    est = pdf.where("i < 2").agg(F.hll_union_agg("h").alias("u")).select(F.hll_sketch_estimate("u")).collect()[0][0]
    assert est == round(ints.estimate())
    own = pdf.where("i = 2").select(F.hll_sketch_estimate("h")).collect()[0][0]
    assert own == round(ints.estimate())

    # Small counts: Java's LIST and SET images hold our coupons, and Java reads ours.
    small = spark.range(0, 300).withColumn("s", F.col("id").cast("string"))
    for n, mode in ((5, "LIST"), (300, "SET")):
        row = small.where(F.col("id") < n).agg(
            F.hll_sketch_agg("id", 12).alias("ints"), F.hll_sketch_agg("s", 12).alias("strs")
        ).collect()[0]
        ints = HllDistinct.zero(12).update_int64(np.arange(n))
        strs = HllDistinct.zero(12).update_strings([str(i) for i in range(n)])
        assert HllDistinct.from_bytes(bytes(row["ints"])) == ints and ints.mode == mode
        assert HllDistinct.from_bytes(bytes(row["strs"])) == strs and strs.mode == mode
        pdf = spark.createDataFrame([(bytearray(ints.to_bytes()), bytearray(bytes(row["ints"])))], "a binary, b binary")
        got = pdf.select(
            F.hll_sketch_estimate("a"), F.hll_sketch_estimate(F.hll_union("a", "b"))
        ).collect()[0]
        assert got[0] == got[1] == round(ints.estimate()) == n
