"""HllDistinct is bit-compatible with Apache DataSketches' HLL sketch.

The reference is the ``datasketches`` package's own scalar ``update``.  A DataSketches sketch fed
value by value keeps an in-order HIP accumulator that no register array can reproduce, so the
byte-level comparison is made after both sketches went through ``hll_union`` as a non-first
member (``canonical`` below), which is what every merged sketch looks like: out-of-order flag,
composite estimator.  Registers are compared directly in every mode.
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
from truthound_sketch.hll import HllDistinct

T = ds.tgt_hll_type
TYPES = (T.HLL_4, T.HLL_6, T.HLL_8)
PROPS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

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


def reference(values: list, lg_k: int, tgt=T.HLL_8):
    sk = ds.hll_sketch(lg_k, tgt)
    for v in values:
        sk.update(v)
    return sk


def canonical(sketch, lg_k: int) -> bytes:
    """DataSketches' union result after `sketch` entered a non-empty HLL gadget."""
    u = ds.hll_union(lg_k)
    u.update(sketch)
    u.update(sketch)
    return u.get_result(T.HLL_8).serialize_compact()


def in_hll_mode(sketch) -> bool:
    return sketch.serialize_compact()[0] == 10


def assert_compatible(ours: HllDistinct, values: list, lg_k: int) -> None:
    for tgt in TYPES:
        theirs = reference(values, lg_k, tgt)
        # Registers agree in every mode and serialization of the reference sketch.
        for image in (theirs.serialize_compact(), theirs.serialize_updatable()):
            assert HllDistinct.from_bytes(image) == ours
        assert theirs.is_empty() == ours.is_empty
        if in_hll_mode(theirs):
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
            assert u.get_estimate() == ours.estimate()
    # Our image is a valid DataSketches sketch with the same estimate.
    sk = ds.hll_sketch.deserialize(ours.to_bytes())
    assert sk.lg_config_k == lg_k
    assert sk.get_estimate() == ours.estimate()


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
    # The merged registers are those of one sketch over both inputs at that lg_k.
    assert ours == HllDistinct.zero(ours.lg_k).update_int64(np.array(a + b, dtype=np.int64))
    ref_a, ref_b = reference(a, lg_a), reference(b, lg_b)
    u = ds.hll_union(21)
    u.update(ref_a)
    u.update(ref_b)
    result = u.get_result(T.HLL_8)
    # DataSketches keeps LIST/SET coupons at full resolution, so compare when every input is in HLL mode.
    if all(in_hll_mode(r) or r.is_empty() for r in (ref_a, ref_b)) and not result.is_empty():
        assert result.lg_config_k == ours.lg_k
        assert HllDistinct.from_bytes(result.serialize_compact()) == ours
        assert canonical(result, ours.lg_k) == ours.to_bytes()


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
    for sk in (HllDistinct.zero(7), HllDistinct.zero(12).update_int64(np.arange(1000))):
        blob = pickle.dumps(sk)
        assert sk.to_bytes() in blob
        assert pickle.loads(blob) == sk


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
    assert got == expected  # LIST/SET coupons become registers too
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


def test_c_layer_rejects_bad_buffers():
    regs = np.zeros(4096, np.uint8)
    with pytest.raises(ValueError):
        _hll.update_int64(np.zeros(100, np.uint8), np.arange(3))
    with pytest.raises(ValueError):
        _hll.update_int64(np.zeros(8, np.uint8), np.arange(3))
    with pytest.raises(TypeError):
        _hll.update_int64(bytes(4096), np.arange(3))  # read-only registers
    with pytest.raises(TypeError):
        _hll.update_int64(regs, np.arange(3, dtype=np.int32))
    with pytest.raises(TypeError):
        _hll.update_float64(regs, np.arange(3))
    data = b"abcdef"
    with pytest.raises(ValueError, match="offsets"):
        _hll.update_utf8(regs, np.array([0, 4, 2], np.int32), data, False)
    with pytest.raises(ValueError, match="offsets"):
        _hll.update_utf8(regs, np.array([0, 7], np.int32), data, False)
    with pytest.raises(ValueError, match="offsets"):
        _hll.update_utf8(regs, np.array([-1, 2], np.int64), data, True)
    with pytest.raises(ValueError):
        _hll.update_utf8(regs, np.zeros(3, np.uint8), data, True)
    assert not regs.any()  # the failed calls before hashing touched nothing
    _hll.update_utf8(regs, np.array([0, 3, 3, 6], np.int64), data, True)
    assert regs.astype(bool).sum() == 2
    assert _hll.hash128(b"") != _hll.hash128(b"\x00")


def test_c_layer_rejects_bad_string_views():
    regs = np.zeros(16, np.uint8)

    def view(length: int, idx: int = 0, off: int = 0) -> bytes:
        return struct.pack("<i4sii", length, b"abcd", idx, off)

    data = [b"x" * 40]
    for bad in (view(-1), view(20, idx=1), view(20, idx=-1), view(20, off=30), view(20, off=-1)):
        with pytest.raises(ValueError, match="view"):
            _hll.update_utf8_view(regs, np.frombuffer(view(3) + bad, np.uint8), data)
    with pytest.raises(ValueError):
        _hll.update_utf8_view(regs, np.zeros(15, np.uint8), data)
    with pytest.raises(TypeError):
        _hll.update_utf8_view(regs, np.zeros(16, np.uint8), [object()])
    assert not regs.any()
    _hll.update_utf8_view(regs, np.frombuffer(view(0) + view(20, off=20) + view(3), np.uint8), data)
    assert regs.astype(bool).sum() >= 1
    expected = HllDistinct.zero(4).update_strings(["x" * 20, "abc"])
    assert np.array_equal(regs, expected.registers)


def test_threads_update_independent_sketches_correctly():
    chunks = [np.arange(i * 200_000, (i + 1) * 200_000) for i in range(4)]
    sketches = [HllDistinct.zero(12) for _ in chunks]
    threads = [threading.Thread(target=s.update_int64, args=(c,)) for s, c in zip(sketches, chunks)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert all(not t.is_alive() for t in threads)
    merged = sketches[0] + sketches[1] + sketches[2] + sketches[3]
    assert merged == HllDistinct.zero(12).update_int64(np.concatenate(chunks))


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
