"""HyperLogLog distinct counts whose sketches are Apache DataSketches HLL sketches.

:class:`HllDistinct` holds the state of a DataSketches ``HLL_8`` sketch in one of its two forms:

* **coupon mode** (DataSketches' LIST and SET modes) while few distinct values were seen: the
  distinct 32-bit *coupons* (26-bit hash address and 6-bit value) in a sorted ``uint32`` array.
  Its estimate is DataSketches' coupon estimate, exact up to hash collisions;
* **HLL mode** from the coupon count at which DataSketches itself switches (8 coupons when
  ``lg_k < 8``, else ``3 * 2**(lg_k - 5) + 1``): the ``2**lg_k`` one-byte registers.

Whole columns are hashed in C (``truthound_sketch._hll``) exactly the way DataSketches' scalar
``update`` hashes one value, so the coupons and registers are the ones DataSketches builds from
the same values, :meth:`HllDistinct.to_bytes` is a serialized DataSketches HLL sketch (LIST, SET or
HLL_8 image) that ``datasketches.hll_sketch.deserialize``, DataSketches Java and Spark's
``hll_union``/``hll_sketch_estimate`` read, and :meth:`HllDistinct.from_bytes` reads any
DataSketches HLL image (``HLL_4``/``HLL_6``/``HLL_8``, LIST/SET/HLL mode, compact or updatable).

The estimate depends only on ``lg_k`` and the set of coupons, never on the order of updates or
the merge tree.  The empty string is not counted: DataSketches ignores it, so a caller that needs
it must count it separately.  See ``docs/hll.md``.
"""

from __future__ import annotations

import struct
import threading
from typing import Any, Callable

import numpy as np

from truthound_sketch import _hll
from truthound_sketch.errors import ProfileFormatError

__all__ = ["HllDistinct", "DEFAULT_LG_K", "MIN_LG_K", "MAX_LG_K", "coupon_limit"]

DEFAULT_LG_K = 12
MIN_LG_K = 4
MAX_LG_K = 21

# Serialized layout (little-endian), shared by DataSketches C++, Java and Python.
_SER_VER = 1
_FAMILY_HLL = 7
_PREINTS_LIST, _PREINTS_SET, _PREINTS_HLL = 2, 3, 10
_MODE_LIST, _MODE_SET, _MODE_HLL = 0, 1, 2
_TGT_HLL4, _TGT_HLL6, _TGT_HLL8 = 0, 1, 2
_FLAG_EMPTY, _FLAG_COMPACT, _FLAG_OUT_OF_ORDER = 4, 8, 16
_HLL_HEADER_BYTES = 40
_LIST_START, _SET_START = 8, 12
_LIST_LG_ARR = 3  # a LIST holds at most 2**3 - 1 coupons
_LIST_MAX = (1 << _LIST_LG_ARR) - 1
_KEY_MASK_26 = (1 << 26) - 1
_AUX_TOKEN = 15
_MAX_REGISTER = 63
_TGT_NAMES = {_TGT_HLL4: "HLL_4", _TGT_HLL6: "HLL_6", _TGT_HLL8: "HLL_8"}
_MODE_NAMES = {_MODE_LIST: "LIST", _MODE_SET: "SET", _MODE_HLL: "HLL"}
_INV_POW2 = [2.0**-v for v in range(64)]
_NO_COUPONS = np.zeros(0, dtype=np.uint32)
_NO_COUPONS.flags.writeable = False


def _check_lg_k(lg_k: Any) -> int:
    if isinstance(lg_k, bool) or not isinstance(lg_k, (int, np.integer)):
        raise TypeError(f"lg_k must be an int between {MIN_LG_K} and {MAX_LG_K}, got {lg_k!r}")
    lg_k = int(lg_k)
    if not MIN_LG_K <= lg_k <= MAX_LG_K:
        raise ValueError(f"lg_k must be between {MIN_LG_K} and {MAX_LG_K} (DataSketches' range), got {lg_k}")
    return lg_k


def coupon_limit(lg_k: int) -> int:
    """The number of distinct coupons at which a DataSketches sketch leaves coupon mode.

    Below ``lg_k = 8`` a LIST of 8 cells becomes HLL registers when it fills.  From ``lg_k = 8``
    the LIST becomes a SET at 8 coupons; the SET's hash table grows from 2**5 cells whenever more
    than 3/4 of it is used, and once it has 2**(lg_k - 3) cells, passing 3/4 load promotes it to
    HLL: at ``3 * 2**(lg_k - 5) + 1`` coupons (385 at ``lg_k = 12``).
    """
    lg_k = _check_lg_k(lg_k)
    return _LIST_MAX + 1 if lg_k < 8 else 3 * (1 << (lg_k - 5)) + 1


_LIMITS = {lg: coupon_limit(lg) for lg in range(MIN_LG_K, MAX_LG_K + 1)}


def _rest(values: np.ndarray, consumed: int) -> tuple[np.ndarray] | None:
    return (values[consumed:],) if consumed < values.shape[0] else None


def _fold(registers: np.ndarray, lg_k: int) -> np.ndarray:
    """Registers of a sketch with 2^n slots reduced to 2^lg_k slots (n >= lg_k).

    Slot i of the larger sketch lands in slot i mod 2^lg_k, as in DataSketches' union.
    """
    k = 1 << lg_k
    if registers.shape[0] == k:
        return registers
    return registers.reshape(-1, k).max(axis=0)


def _registers_of(coupons: np.ndarray, lg_k: int, registers: np.ndarray | None = None) -> np.ndarray:
    if registers is None:
        registers = np.zeros(1 << lg_k, dtype=np.uint8)
    if coupons.shape[0]:
        _hll.apply_coupons(registers, coupons)
    return registers


def _frozen(coupons: np.ndarray) -> np.ndarray:
    coupons.flags.writeable = False
    return coupons


def _check_std_dev(num_std_dev: Any) -> int:
    if isinstance(num_std_dev, bool) or not isinstance(num_std_dev, (int, np.integer)) or not 1 <= num_std_dev <= 3:
        raise ValueError(f"num_std_dev must be 1, 2 or 3, got {num_std_dev!r}")
    return int(num_std_dev)


class HllDistinct:
    """A DataSketches ``HLL_8`` sketch: a mergeable approximate distinct count.

    In coupon mode (``mode`` ``"LIST"`` or ``"SET"``) it keeps the distinct coupons; from
    :func:`coupon_limit` coupons on (``mode`` ``"HLL"``) it keeps ``2**lg_k`` registers.  Updates
    change the sketch in place (one at a time: each sketch has a lock); :meth:`merge` returns a new
    object.
    """

    __slots__ = ("lg_k", "_coupons", "_registers", "_lock")

    def __init__(self, lg_k: int = DEFAULT_LG_K, registers: np.ndarray | None = None) -> None:
        """An empty sketch, or one in HLL mode over ``registers`` (``np.uint8``, ``2**lg_k`` values).

        All-zero registers make an empty sketch.  Use :meth:`from_coupons` for coupon mode.
        """
        lg_k = _check_lg_k(lg_k)
        if registers is not None:
            k = 1 << lg_k
            registers = np.ascontiguousarray(registers)
            if registers.dtype != np.uint8 or registers.shape != (k,):
                raise ValueError(
                    f"registers must be a uint8 array of shape ({k},) for lg_k={lg_k}, "
                    f"got {registers.dtype} array of shape {registers.shape}"
                )
            if int(registers.max()) > _MAX_REGISTER:
                raise ValueError(f"HLL register values must be at most {_MAX_REGISTER}")
            if not registers.any():
                registers = None
            elif not registers.flags.writeable:
                registers = registers.copy()
        self._set(lg_k, _NO_COUPONS if registers is None else None, registers)

    def _set(self, lg_k: int, coupons: np.ndarray | None, registers: np.ndarray | None) -> None:
        self.lg_k = lg_k
        self._coupons = coupons
        self._registers = registers
        self._lock = threading.Lock()

    def _state(self) -> tuple[np.ndarray, None] | tuple[None, np.ndarray]:
        """(coupons, None) or (None, registers), consistent even while another thread promotes the
        sketch: a promotion sets the registers before it drops the coupons, so the coupons are read
        first."""
        coupons = self._coupons
        if coupons is not None:
            return coupons, None
        return None, self._registers

    @classmethod
    def _make(cls, lg_k: int, coupons: np.ndarray | None = None, registers: np.ndarray | None = None) -> HllDistinct:
        """From trusted state: sorted unique read-only coupons, or registers (promotes/demotes as needed)."""
        sk = cls.__new__(cls)
        if registers is None and coupons is not None and coupons.shape[0] >= _LIMITS[lg_k]:
            registers, coupons = _registers_of(coupons, lg_k), None
        if registers is not None and not registers.any():
            registers, coupons = None, _NO_COUPONS
        sk._set(lg_k, coupons, registers)
        return sk

    # ------------------------------------------------------------------ construction

    @classmethod
    def zero(cls, lg_k: int = DEFAULT_LG_K) -> HllDistinct:
        """The empty sketch (estimate 0), the identity of :meth:`merge`."""
        return cls(lg_k)

    @classmethod
    def from_coupons(cls, lg_k: int, coupons: Any) -> HllDistinct:
        """A sketch holding these coupons (``value << 26 | address``, value 1..63).

        Duplicates are dropped; from :func:`coupon_limit` distinct coupons on, the sketch is in HLL
        mode, as DataSketches would be.
        """
        lg_k = _check_lg_k(lg_k)
        arr = np.asarray(coupons)
        if arr.size == 0 and arr.ndim == 1:
            arr = arr.astype(np.uint32)
        if arr.dtype.kind not in "iu" or arr.ndim != 1:
            raise TypeError(f"coupons must be a 1-d integer array, got {arr.dtype} array of shape {arr.shape}")
        if arr.size and (int(arr.min()) < (1 << 26) or int(arr.max()) > 0xFFFFFFFF):
            raise ValueError("every coupon must be value << 26 | address with a value of 1..63")
        return cls._make(lg_k, coupons=_frozen(np.unique(arr.astype(np.uint32))))

    def copy(self) -> HllDistinct:
        coupons, registers = self._state()
        if registers is not None:
            return HllDistinct._make(self.lg_k, registers=registers.copy())
        return HllDistinct._make(self.lg_k, coupons=coupons)  # read-only: shared

    # ------------------------------------------------------------------ state

    @property
    def mode(self) -> str:
        """``"LIST"``, ``"SET"`` or ``"HLL"``: the mode DataSketches would be in (an empty sketch is a LIST)."""
        coupons, _ = self._state()
        if coupons is None:
            return "HLL"
        return "LIST" if coupons.shape[0] <= _LIST_MAX else "SET"

    @property
    def coupons(self) -> np.ndarray | None:
        """The distinct coupons, sorted (read-only ``uint32`` array), or None in HLL mode."""
        coupons, registers = self._state()
        return None if registers is not None else coupons

    @property
    def registers(self) -> np.ndarray:
        """The ``2**lg_k`` HLL_8 registers.  In HLL mode, the sketch's own array; in coupon mode, a
        new array the coupons fold into (changing it does not change the sketch)."""
        coupons, registers = self._state()
        if registers is not None:
            return registers
        return _registers_of(coupons, self.lg_k)

    # ------------------------------------------------------------------ updates

    def _collect(self, update: Callable[..., None], collect: Callable[..., tuple[bytes, int]], args: tuple,
                 rest: Callable[[int], tuple | None]) -> None:
        """Hash one batch into a coupon-mode sketch (lock held): collect its coupons and, once
        DataSketches would promote the sketch, fold them into registers and hash the rest of the
        batch (``rest(consumed)``) into the registers."""
        limit = _LIMITS[self.lg_k]
        raw, consumed = collect(self._coupons, *args, limit)
        found = np.frombuffer(raw, dtype=np.uint32)
        if found.shape[0] < limit:
            self._coupons = _frozen(np.sort(found))
            return
        registers = _registers_of(found, self.lg_k)
        remainder = rest(consumed)
        if remainder is not None:
            update(registers, *remainder)
        # _state() reads the coupons first: set the registers before dropping them
        self._registers = registers
        self._coupons = None

    def update_int64(self, values: Any) -> HllDistinct:
        """Count the integers of a numpy array (any integer or bool dtype; nulls already dropped).

        Each value is hashed as its signed 64-bit two's-complement bytes, like DataSketches'
        ``update(int64)`` (Python ``update(int)``, Java ``update(long)``, Spark bigint).  uint64
        values >= 2**63 are hashed by their bit pattern.  datetime64/timedelta64 arrays are hashed
        as their int64 representation.  Returns ``self``.
        """
        arr = np.asarray(values)
        kind = arr.dtype.kind
        if kind in "iub":
            if arr.dtype.itemsize == 8 and kind in "iu":
                arr = arr.view(np.int64) if kind == "u" else arr
            else:
                arr = arr.astype(np.int64)
        elif kind in "mM":
            arr = arr.view(np.int64)
        else:
            raise TypeError(f"update_int64 needs an integer array, got dtype {arr.dtype}")
        arr = np.ascontiguousarray(arr.ravel(), dtype=np.int64)
        if arr.size:
            with self._lock:
                if self._registers is not None:
                    _hll.update_int64(self._registers, arr)
                else:
                    self._collect(_hll.update_int64, _hll.collect_int64, (arr,), lambda c: _rest(arr, c))
        return self

    def update_float64(self, values: Any) -> HllDistinct:
        """Count the floats of a numpy array (float16/32/64; nulls already dropped).

        Hashed like DataSketches' ``update(double)``: -0.0 counts as 0.0 and every NaN as one
        value.  Returns ``self``.
        """
        arr = np.asarray(values)
        if arr.dtype.kind != "f":
            raise TypeError(
                f"update_float64 needs a floating-point array, got dtype {arr.dtype} "
                "(use update_int64 for integers)"
            )
        arr = np.ascontiguousarray(arr.ravel(), dtype=np.float64)
        if arr.size:
            with self._lock:
                if self._registers is not None:
                    _hll.update_float64(self._registers, arr)
                else:
                    self._collect(_hll.update_float64, _hll.collect_float64, (arr,), lambda c: _rest(arr, c))
        return self

    def update_strings(self, values: Any) -> HllDistinct:
        """Count the strings of an Arrow or polars column, hashing their UTF-8 bytes.

        Accepts a pyarrow ``string``/``large_string``/``string_view`` (or binary) Array or
        ChunkedArray, a dictionary-encoded one, or a polars String/Categorical/Enum Series; any
        other sequence of ``str`` is converted with ``pyarrow.array``.  Nulls are skipped.  The
        empty string is not counted (DataSketches ignores it).  Returns ``self``.
        """
        chunks = _polars_views(values)
        if chunks is not None:  # a polars String column: its string views, read without pyarrow
            return self.update_string_views(chunks)
        for chunk in _arrow_chunks(values):
            self._update_arrow_chunk(chunk)
        return self

    def update_string_views(self, chunks: Any) -> HllDistinct:
        """Count the strings of :func:`truthound_sketch.views.string_array` chunks (no nulls)."""
        for chunk in chunks:
            if len(chunk):
                self._update_views(chunk.views, chunk.data)
        return self

    def _update_views(self, views: np.ndarray, data: list[Any]) -> None:
        """Hash the strings of 16-byte Arrow views (uint8) and their data buffers."""
        n = len(views) // 16
        with self._lock:
            if self._registers is not None:
                _hll.update_utf8_view(self._registers, views, data)
            else:
                self._collect(
                    _hll.update_utf8_view, _hll.collect_utf8_view, (views, data),
                    lambda c: (views[16 * c :], data) if c < n else None,
                )

    def _update_arrow_chunk(self, chunk: Any) -> None:
        import pyarrow as pa

        t = chunk.type
        if pa.types.is_dictionary(t):
            import pyarrow.compute as pc  # only here: importing it costs 70 ms

            indices = chunk.indices
            if indices.null_count:
                indices = indices.drop_null()
            used = pc.unique(indices)
            self._update_arrow_chunk(chunk.dictionary.take(used))
            return
        is_view = pa.types.is_string_view(t) or pa.types.is_binary_view(t)
        if pa.types.is_string(t) or pa.types.is_binary(t):
            wide, dtype = False, np.int32
        elif pa.types.is_large_string(t) or pa.types.is_large_binary(t):
            wide, dtype = True, np.int64
        elif not is_view:
            raise TypeError(f"update_strings needs a string or binary column, got Arrow type {t}")
        n = len(chunk)
        if n == 0 or chunk.null_count == n:
            return
        if is_view:
            buffers = chunk.buffers()
            views = np.frombuffer(buffers[1], dtype=np.uint8)[16 * chunk.offset : 16 * (chunk.offset + n)]
            if views.shape[0] != 16 * n:
                raise ValueError("string view buffer is shorter than the column")
            if chunk.null_count:
                # A null's view may hold anything: give it length 0 (skipped) in a copy.
                valid = np.unpackbits(np.frombuffer(buffers[0], dtype=np.uint8), bitorder="little")
                valid = valid[chunk.offset : chunk.offset + n].astype(bool)
                views = views.reshape(n, 16).copy()
                views[~valid, :4] = 0
                views = views.reshape(-1)
            self._update_views(views, [b if b is not None else b"" for b in buffers[2:]])
            return
        if chunk.null_count:
            chunk = chunk.drop_null()
            n = len(chunk)
        buffers = chunk.buffers()
        offsets_buf, data_buf = buffers[1], buffers[2]
        if offsets_buf is None:
            return
        offsets = np.frombuffer(offsets_buf, dtype=dtype)[chunk.offset : chunk.offset + n + 1]
        if offsets.shape[0] != n + 1:
            raise ValueError("string column offsets buffer is shorter than the column")
        data = data_buf if data_buf is not None else b""
        with self._lock:
            if self._registers is not None:
                _hll.update_utf8(self._registers, offsets, data, wide)
            else:
                self._collect(
                    _hll.update_utf8, _hll.collect_utf8, (offsets, data, wide),
                    lambda c: (offsets[c:], data, wide) if c < n else None,
                )

    # ------------------------------------------------------------------ monoid

    def merge(self, other: HllDistinct) -> HllDistinct:
        """Union of two sketches as a new object.

        Two coupon-mode sketches give the union of their coupons, in coupon mode while DataSketches
        would stay there; otherwise the coupons fold into the registers of the other.  With
        different ``lg_k`` the result has the smaller one: the larger sketch's registers are folded
        (slot i -> i mod 2^lg_k, keeping the maximum), as DataSketches' union does.  An empty
        sketch is ignored whatever its ``lg_k`` (DataSketches' union skips empty sketches too), so
        ``zero(any lg_k)`` is an identity.
        """
        if not isinstance(other, HllDistinct):
            raise TypeError(f"can only merge an HllDistinct with another HllDistinct, got {type(other).__name__}")
        a_cp, a_reg = self._state()
        b_cp, b_reg = other._state()
        a_empty = a_reg is None and a_cp.shape[0] == 0
        b_empty = b_reg is None and b_cp.shape[0] == 0
        if b_empty and not a_empty:
            return self.copy()
        if a_empty and not b_empty:
            return other.copy()
        lg_k = min(self.lg_k, other.lg_k)
        if a_reg is None and b_reg is None:
            return HllDistinct._make(lg_k, coupons=_frozen(np.union1d(a_cp, b_cp).astype(np.uint32, copy=False)))
        if a_reg is None:
            a_reg, a_cp, b_reg, b_cp = b_reg, b_cp, a_reg, a_cp
        merged = _fold(a_reg, lg_k).copy()
        if b_reg is not None:
            np.maximum(merged, _fold(b_reg, lg_k), out=merged)
        else:
            _registers_of(b_cp, lg_k, merged)
        return HllDistinct._make(lg_k, registers=merged)

    def __add__(self, other: HllDistinct) -> HllDistinct:
        if not isinstance(other, HllDistinct):
            return NotImplemented
        return self.merge(other)

    def downsample(self, lg_k: int) -> HllDistinct:
        """A copy with 2^lg_k registers (lg_k <= self.lg_k), as DataSketches' union would reduce it.

        Coupons stay coupons while fewer than :func:`coupon_limit` of ``lg_k``.
        """
        lg_k = _check_lg_k(lg_k)
        if lg_k > self.lg_k:
            raise ValueError(f"cannot raise lg_k from {self.lg_k} to {lg_k}; only smaller lg_k is possible")
        coupons, registers = self._state()
        if registers is None:
            return HllDistinct._make(lg_k, coupons=coupons)
        return HllDistinct._make(lg_k, registers=_fold(registers, lg_k).copy())

    def __eq__(self, other: object) -> bool:
        """Same ``lg_k``, same mode and the same coupons or registers."""
        if not isinstance(other, HllDistinct):
            return NotImplemented
        a_cp, a_reg = self._state()
        b_cp, b_reg = other._state()
        if self.lg_k != other.lg_k or (a_reg is None) != (b_reg is None):
            return False
        if a_reg is not None:
            return bool(np.array_equal(a_reg, b_reg))
        return bool(np.array_equal(a_cp, b_cp))

    __hash__ = None  # type: ignore[assignment]

    def __reduce__(self) -> tuple[Any, tuple[bytes]]:
        # Crosses process boundaries (pickle, Dask, Ray) as its DataSketches bytes.
        return (HllDistinct.from_bytes, (self.to_bytes(),))

    def __repr__(self) -> str:
        coupons, registers = self._state()
        if registers is not None:
            return f"HllDistinct(lg_k={self.lg_k}, mode=HLL, non_zero_registers={int(np.count_nonzero(registers))})"
        return f"HllDistinct(lg_k={self.lg_k}, mode={self.mode}, coupons={coupons.shape[0]})"

    # ------------------------------------------------------------------ estimates

    @property
    def is_empty(self) -> bool:
        """True when no value has been counted."""
        coupons, registers = self._state()
        return registers is None and coupons.shape[0] == 0

    def estimate(self) -> float:
        """DataSketches' distinct-count estimate for this state (0.0 when empty)."""
        if self.is_empty:
            return 0.0
        return float(self.to_datasketches().get_estimate())

    def lower_bound(self, num_std_dev: int = 2) -> float:
        """DataSketches' lower bound at 1, 2 or 3 standard deviations."""
        num_std_dev = _check_std_dev(num_std_dev)
        if self.is_empty:
            return 0.0
        return float(self.to_datasketches().get_lower_bound(num_std_dev))

    def upper_bound(self, num_std_dev: int = 2) -> float:
        """DataSketches' upper bound at 1, 2 or 3 standard deviations."""
        num_std_dev = _check_std_dev(num_std_dev)
        if self.is_empty:
            return 0.0
        return float(self.to_datasketches().get_upper_bound(num_std_dev))

    # ------------------------------------------------------------------ serialization

    def to_bytes(self) -> bytes:
        """A compact serialized DataSketches HLL sketch.

        * empty: DataSketches' 8-byte empty image;
        * coupon mode: the LIST (up to 7 coupons) or SET image DataSketches writes for these coupons
          when they were added in ascending order;
        * HLL mode: an ``HLL_8`` image with the out-of-order flag, equal to the one DataSketches'
          own ``hll_union`` produces for the same registers.
        """
        lg_k = self.lg_k
        coupons, registers = self._state()
        if registers is None:
            n = coupons.shape[0]
            if n == 0:
                return bytes(
                    (_PREINTS_LIST, _SER_VER, _FAMILY_HLL, lg_k, _LIST_LG_ARR, _FLAG_EMPTY | _FLAG_COMPACT, 0,
                     (_TGT_HLL8 << 2) | _MODE_LIST)
                )
            if n <= _LIST_MAX:
                header = bytes(
                    (_PREINTS_LIST, _SER_VER, _FAMILY_HLL, lg_k, _LIST_LG_ARR, _FLAG_COMPACT, n,
                     (_TGT_HLL8 << 2) | _MODE_LIST)
                )
                return header + coupons.astype("<u4", copy=False).tobytes()
            lg_arr, table = _hll.set_layout(coupons, lg_k)
            header = struct.pack(
                "<8Bi", _PREINTS_SET, _SER_VER, _FAMILY_HLL, lg_k, lg_arr, _FLAG_COMPACT, 0,
                (_TGT_HLL8 << 2) | _MODE_SET, n,
            )
            return header + np.frombuffer(table, dtype=np.uint32).astype("<u4", copy=False).tobytes()
        counts = np.bincount(registers, minlength=64).tolist()
        # Both sums are exact in binary64 whatever the order (see docs/hll.md), so they match
        # DataSketches' incremental values bit for bit.
        kxq0 = 0.0
        for v in range(32):
            if counts[v]:
                kxq0 += counts[v] * _INV_POW2[v]
        kxq1 = 0.0
        for v in range(32, 64):
            if counts[v]:
                kxq1 += counts[v] * _INV_POW2[v]
        header = struct.pack(
            "<8B3d2I",
            _PREINTS_HLL, _SER_VER, _FAMILY_HLL, lg_k, 0, _FLAG_COMPACT | _FLAG_OUT_OF_ORDER, 0,
            (_TGT_HLL8 << 2) | _MODE_HLL,
            0.0, kxq0, kxq1, counts[0], 0,
        )
        return header + registers.tobytes()

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview) -> HllDistinct:
        """Read any DataSketches HLL serialization (C++, Java, Python, Spark).

        ``HLL_4``, ``HLL_6`` and ``HLL_8``; LIST, SET and HLL mode; compact or updatable.  LIST and
        SET images stay in coupon mode.  Raises :class:`ProfileFormatError` for anything else.
        """
        try:
            buf = bytes(data)
        except TypeError as exc:
            raise ProfileFormatError(
                f"HLL sketch must be bytes, bytearray or memoryview, got {type(data).__name__}"
            ) from exc
        lg_k, coupons, registers = _parse_image(buf)
        return cls._make(lg_k, coupons=coupons, registers=registers)

    def to_datasketches(self) -> Any:
        """This sketch as a ``datasketches.hll_sketch`` (``HLL_8``)."""
        import datasketches

        return datasketches.hll_sketch.deserialize(self.to_bytes())

    @classmethod
    def from_datasketches(cls, sketch: Any) -> HllDistinct:
        """The state of a ``datasketches.hll_sketch`` (any type and mode) or ``hll_union``."""
        import datasketches

        if isinstance(sketch, datasketches.hll_union):
            sketch = sketch.get_result(datasketches.tgt_hll_type.HLL_8)
        if not isinstance(sketch, datasketches.hll_sketch):
            raise TypeError(f"expected a datasketches.hll_sketch or hll_union, got {type(sketch).__name__}")
        return cls.from_bytes(sketch.serialize_updatable())


# ---------------------------------------------------------------------- input adapters


def _polars_views(values: Any) -> Any:
    """The string-view chunks of a polars String series (nulls dropped: they are not counted), or
    None for anything else."""
    if not (type(values).__module__ or "").startswith("polars"):
        return None
    import polars as pl

    if not isinstance(values, pl.Series) or values.dtype != pl.String:
        return None
    from .views import string_array

    return string_array(values.drop_nulls() if values.null_count() else values)


def _arrow_chunks(values: Any) -> list[Any]:
    import pyarrow as pa

    if isinstance(values, pa.ChunkedArray):
        return list(values.chunks)
    if isinstance(values, pa.Array):
        return [values]
    mod = type(values).__module__ or ""
    if mod.startswith("polars"):
        import polars as pl

        if isinstance(values, pl.Series):
            if values.dtype in (pl.Categorical, pl.Enum) or isinstance(values.dtype, (pl.Categorical, pl.Enum)):
                values = values.cast(pl.String)
            if values.dtype not in (pl.String, pl.Binary):
                raise TypeError(f"update_strings needs a String series, got polars dtype {values.dtype}")
            # The newest Arrow layout of a polars String column is string_view: zero-copy.
            try:
                arrow = values.to_arrow(compat_level=pl.CompatLevel.newest())
            except (AttributeError, TypeError):  # older polars
                arrow = values.to_arrow()
            return _chunks_of(arrow)
    if isinstance(values, np.ndarray) and values.dtype.kind not in "OUS":
        raise TypeError(f"update_strings needs strings, got numpy dtype {values.dtype}")
    return [pa.array(values, type=pa.large_string())]


def _chunks_of(arr: Any) -> list[Any]:
    import pyarrow as pa

    if isinstance(arr, pa.ChunkedArray):
        return list(arr.chunks)
    return [arr]


# ---------------------------------------------------------------------- deserialization


def _bad(msg: str) -> ProfileFormatError:
    return ProfileFormatError(f"invalid DataSketches HLL sketch bytes: {msg}")


def _coupon_cells(cells: np.ndarray, count: int, where: str) -> np.ndarray:
    """The coupons of a LIST/SET image's cells (uint32: value << 26 | 26-bit address; 0 = empty),
    sorted, after checking them against the header's count."""
    coupons = cells[cells != 0]
    if coupons.shape[0] != count:
        raise _bad(f"{where} header counts {count} coupons but {coupons.shape[0]} are present")
    if coupons.shape[0] and int((coupons >> 26).min()) == 0:
        raise _bad(f"{where} holds a coupon with value 0")
    coupons = np.unique(coupons)
    if coupons.shape[0] != count:
        raise _bad(f"{where} lists a coupon twice")
    return _frozen(coupons)


def _parse_image(buf: bytes) -> tuple[int, np.ndarray | None, np.ndarray | None]:
    """(lg_k, coupons, None) for a LIST/SET image, (lg_k, None, registers) for an HLL image."""
    n = len(buf)
    if n < 8:
        raise _bad(f"{n} bytes is too short; an HLL sketch has at least an 8-byte preamble")
    pre_ints, ser_ver, family, lg_k, lg_arr, flags, byte6, mode_byte = buf[:8]
    if family != _FAMILY_HLL:
        raise _bad(f"family id is {family}, expected {_FAMILY_HLL} (HLL); these are not HLL sketch bytes")
    if ser_ver != _SER_VER:
        raise _bad(f"serialization version {ser_ver} is not supported (expected {_SER_VER})")
    if not MIN_LG_K <= lg_k <= MAX_LG_K:
        raise _bad(f"lg_k {lg_k} is outside {MIN_LG_K}..{MAX_LG_K}")
    if mode_byte & 0xF0:
        raise _bad(f"mode byte {mode_byte:#04x} has unknown high bits set")
    cur_mode, tgt = mode_byte & 3, (mode_byte >> 2) & 3
    if cur_mode not in _MODE_NAMES or tgt not in _TGT_NAMES:
        raise _bad(f"mode byte {mode_byte:#04x} names no known mode/target type")
    expected_pre = {_MODE_LIST: _PREINTS_LIST, _MODE_SET: _PREINTS_SET, _MODE_HLL: _PREINTS_HLL}[cur_mode]
    if (pre_ints & 0x3F) != expected_pre:
        raise _bad(f"{_MODE_NAMES[cur_mode]} mode needs {expected_pre} preamble ints, header says {pre_ints}")
    compact = bool(flags & _FLAG_COMPACT)
    empty = bool(flags & _FLAG_EMPTY)
    k = 1 << lg_k

    if cur_mode == _MODE_LIST:
        if empty:
            return lg_k, _NO_COUPONS, None
        count = byte6
        if compact:
            cells = count
        elif lg_arr <= 3:
            cells = 8
        elif lg_arr <= 8:
            cells = 1 << lg_arr
        else:
            raise _bad(f"LIST image has lg_arr {lg_arr}, more than a coupon list holds")
        need = _LIST_START + 4 * cells
        if n < need:
            raise _bad(f"LIST image of {count} coupons needs {need} bytes, got {n} (truncated)")
        coupons = np.frombuffer(buf, dtype="<u4", count=cells, offset=_LIST_START).astype(np.uint32)
        return lg_k, _coupon_cells(coupons, count, "LIST"), None

    if cur_mode == _MODE_SET:
        if lg_k <= 7:
            raise _bad(f"SET mode is impossible with lg_k {lg_k} (needs lg_k > 7)")
        if empty:
            return lg_k, _NO_COUPONS, None
        if n < _SET_START:
            raise _bad(f"SET image needs at least {_SET_START} bytes, got {n} (truncated)")
        (count,) = struct.unpack_from("<i", buf, 8)
        if count < 0 or count > k:
            raise _bad(f"SET coupon count {count} is impossible for lg_k {lg_k}")
        if compact:
            cells = count
        else:
            if lg_arr < 5:
                raise _bad(f"updatable SET image has lg_arr {lg_arr}; the smallest hash set has lg_arr 5")
            if lg_arr > lg_k:
                raise _bad(f"updatable SET image has lg_arr {lg_arr}, larger than lg_k {lg_k}")
            cells = 1 << lg_arr
        need = _SET_START + 4 * cells
        if n < need:
            raise _bad(f"SET image of {cells} coupon cells needs {need} bytes, got {n} (truncated)")
        coupons = np.frombuffer(buf, dtype="<u4", count=cells, offset=_SET_START).astype(np.uint32)
        return lg_k, _coupon_cells(coupons, count, "SET"), None

    # HLL mode
    if tgt == _TGT_HLL8:
        arr_bytes = k
    elif tgt == _TGT_HLL6:
        arr_bytes = ((k * 3) >> 2) + 1
    else:
        arr_bytes = k >> 1
    need = _HLL_HEADER_BYTES + arr_bytes
    if n < need:
        raise _bad(f"{_TGT_NAMES[tgt]} image with lg_k {lg_k} needs {need} bytes, got {n} (truncated)")
    cur_min = byte6
    (aux_count,) = struct.unpack_from("<I", buf, 36)
    raw = np.frombuffer(buf, dtype=np.uint8, count=arr_bytes, offset=_HLL_HEADER_BYTES)

    if tgt == _TGT_HLL8:
        if aux_count:
            raise _bad(f"HLL_8 image has an aux count of {aux_count}; only HLL_4 has exceptions")
        registers = raw.copy()
    elif tgt == _TGT_HLL6:
        if aux_count:
            raise _bad(f"HLL_6 image has an aux count of {aux_count}; only HLL_4 has exceptions")
        start_bit = np.arange(k, dtype=np.int64) * 6
        byte_idx = start_bit >> 3
        pairs = raw[byte_idx].astype(np.uint16) | (raw[byte_idx + 1].astype(np.uint16) << 8)
        registers = ((pairs >> (start_bit & 7).astype(np.uint16)) & 0x3F).astype(np.uint8)
    else:
        registers = _decode_hll4(buf, raw, lg_k, cur_min, aux_count, lg_arr, compact, need)
    if int(registers.max()) > _MAX_REGISTER:
        raise _bad(f"a register holds {int(registers.max())}; HLL values are at most {_MAX_REGISTER}")
    return lg_k, None, registers


def _decode_hll4(
    buf: bytes, raw: np.ndarray, lg_k: int, cur_min: int, aux_count: int, lg_arr: int, compact: bool, aux_start: int
) -> np.ndarray:
    k = 1 << lg_k
    if cur_min > _MAX_REGISTER - 14:
        raise _bad(f"HLL_4 cur_min {cur_min} is impossible (at most {_MAX_REGISTER - 14})")
    nibbles = np.empty(k, dtype=np.uint8)
    nibbles[0::2] = raw & 0x0F
    nibbles[1::2] = raw >> 4
    is_exc = nibbles == _AUX_TOKEN
    registers = nibbles.astype(np.uint8) + np.uint8(cur_min)
    n_exc = int(np.count_nonzero(is_exc))
    if n_exc != aux_count:
        raise _bad(f"HLL_4 image marks {n_exc} registers as exceptions but its aux count is {aux_count}")
    if aux_count == 0:
        return registers
    n = len(buf)
    if compact:
        cells = aux_count
    else:
        if lg_arr > lg_k or (1 << lg_arr) < aux_count:
            raise _bad(f"HLL_4 aux table lg_arr {lg_arr} cannot hold {aux_count} exceptions")
        cells = 1 << lg_arr
    need = aux_start + 4 * cells
    if n < need:
        raise _bad(f"HLL_4 image with {aux_count} exceptions needs {need} bytes, got {n} (truncated)")
    aux = np.frombuffer(buf, dtype="<u4", count=cells, offset=aux_start).astype(np.uint32)
    aux = aux[aux != 0]
    if aux.shape[0] != aux_count:
        raise _bad(f"HLL_4 aux table holds {aux.shape[0]} exceptions, header says {aux_count}")
    slots = (aux & np.uint32(_KEY_MASK_26) & np.uint32(k - 1)).astype(np.intp)
    values = (aux >> 26).astype(np.uint8)
    if np.unique(slots).shape[0] != slots.shape[0]:
        raise _bad("HLL_4 aux table lists a register twice")
    if not bool(is_exc[slots].all()):
        raise _bad("HLL_4 aux table has an exception for a register not marked as one")
    if bool((values < cur_min + _AUX_TOKEN).any()):
        raise _bad("HLL_4 aux table holds a value too small to be an exception")
    registers[slots] = values
    return registers
