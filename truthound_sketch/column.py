"""``ColumnPartial``: the mergeable partial profile of one column.

A partial has an identity (:meth:`ColumnPartial.zero`), a vectorized update from a batch
(:meth:`ColumnPartial.absorb`, normally driven by :class:`~truthound_sketch.table.TablePartial`),
an associative and commutative :meth:`merge`, a byte form (:mod:`truthound_sketch.codec`) and a
:meth:`finalize` that turns it into the numbers people read.

State, per column:

* counts: rows, nulls, and for floats NaN, +inf and -inf;
* moments (count, mean, M2) and min/max of the numeric view: finite values of numbers, booleans as
  0/1, temporal values by their physical integer;
* either an exact value-count table, kept while the column has at most ``exact_threshold`` distinct
  values (exact distinct count, top values and quantiles), or, once it outgrows that, sketches: KLL
  quantiles, HLL distinct count and a Misra-Gries frequent-values summary;
* for strings, length statistics (exact histogram of lengths, or KLL when lengths are many).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import numpy as np
import polars as pl

from . import _moments
from .errors import SchemaMismatchError
from .frequent import FrequentItems, dense_histogram, dense_table, value_counts
from .hll import HllDistinct
from .kinds import Kind, kind_of, plain_numbers
from .kll import KllQuantiles
from .lengths import LengthStats
from .moments import Moments
from .views import string_array, string_stats

__all__ = ["ColumnPartial", "stat_exprs"]

_INF = float("inf")


def stat_exprs(i: int, name: str, dtype: pl.DataType, exact: bool = False, finite: bool = False) -> list[pl.Expr]:
    """The per-batch aggregates of one column, aliased ``"{i}:{stat}"``, for one ``select``.

    With ``exact`` (the column keeps exact value counts) only the counts are aggregated: the
    batch's value counts are computed anyway, and range and moments follow from them.  A sketched
    column of plain numbers (:func:`plain_numbers`) aggregates its nulls only: one C pass over its
    values gives the rest (:meth:`ColumnPartial.absorb`).  Otherwise a float column's range and
    moments are aggregated over all its values unless ``finite``.
    """
    kind = kind_of(dtype)
    c = pl.col(name)
    out = [c.null_count().alias(f"{i}:nulls")]
    if not exact and not finite and plain_numbers(dtype):
        return out
    if kind is Kind.FLOAT:
        out += [
            c.is_nan().sum().alias(f"{i}:nan"),
            (c == _INF).sum().alias(f"{i}:pinf"),
            (c == -_INF).sum().alias(f"{i}:ninf"),
        ]
    if exact and kind.valued:
        return out
    if kind is Kind.FLOAT:
        view = c.filter(c.is_finite()) if finite else c
    elif kind is Kind.INTEGER or kind is Kind.BOOLEAN:
        view = c
    elif kind is Kind.DECIMAL:
        view = c
        f = c.cast(pl.Float64)
        out += [f.mean().alias(f"{i}:mean"), f.var(ddof=0).alias(f"{i}:var")]
    elif kind.temporal:
        view = c.to_physical()
    else:  # strings: range and lengths from the counts, or one C pass (absorb)
        return out
    out += [view.count().alias(f"{i}:n"), view.min().alias(f"{i}:min"), view.max().alias(f"{i}:max")]
    if kind is not Kind.DECIMAL:
        f = view.cast(pl.Float64)
        out += [f.mean().alias(f"{i}:mean"), f.var(ddof=0).alias(f"{i}:var")]
    return out


def value_stats(values: pl.Series) -> dict[str, Any]:
    """The aggregates of :func:`stat_exprs` that describe values (range, moments) of a batch
    of non-null values; for strings, their range."""
    if kind_of(values.dtype) is Kind.STRING:
        return {"min": values.min(), "max": values.max()}
    row = values.to_frame().select(stat_exprs(0, values.name, values.dtype, finite=True)).row(0, named=True)
    return {k.split(":", 1)[1]: v for k, v in row.items()}


def counts_stats(counts: pl.DataFrame, kind: Kind) -> dict[str, Any]:
    """The same aggregates as :func:`value_stats`, from a batch's exact value counts."""
    values = counts["value"]
    if kind is Kind.STRING:
        return {"min": values.min(), "max": values.max()}
    if not kind.numeric:
        return {}
    view, keep = _numeric_view(values, kind)
    weights = counts["count"].to_numpy()
    if keep is not None:
        weights = weights[keep]
        values = values.filter(pl.Series(keep))
    if not weights.sum():
        return {"n": 0}
    if kind.temporal:
        values = values.to_physical()
    return {**_weighted_moments(view, weights), "min": values.min(), "max": values.max()}


def _weighted_moments(view: np.ndarray, weights: np.ndarray) -> dict[str, Any]:
    """Count, mean and population variance of distinct values (float64) seen ``weights`` times."""
    n = int(weights.sum())
    w = weights.astype(np.float64)
    mean = float(np.dot(view, w)) / n
    return {"n": n, "mean": mean, "var": float(np.dot((view - mean) ** 2, w)) / n}


def _value_dtype(dtype: pl.DataType) -> pl.DataType:
    """The dtype values are kept in (categoricals and enums become strings)."""
    return pl.String if kind_of(dtype) is Kind.STRING else dtype


class ColumnPartial:
    __slots__ = (
        "name", "dtype", "kind", "count", "null_count", "nan_count", "pos_inf_count", "neg_inf_count",
        "moments", "min", "max", "_values", "_dense", "kll", "hll", "frequent", "has_empty", "lengths",
        "kll_k", "hll_lg_k", "exact_threshold", "frequent_capacity",
    )  # fmt: skip

    def __init__(self, name: str, dtype: pl.DataType, *, kll_k: int = 200, hll_lg_k: int = 12,
                 exact_threshold: int = 16384, frequent_capacity: int = 1024) -> None:  # fmt: skip
        self.name = name
        self.dtype = dtype
        self.kind = kind_of(dtype)
        self.count = 0
        self.null_count = 0
        self.nan_count = 0
        self.pos_inf_count = 0
        self.neg_inf_count = 0
        self.moments = Moments()
        self.min: Any = None
        self.max: Any = None
        self.kll_k = kll_k
        self.hll_lg_k = hll_lg_k
        self.exact_threshold = exact_threshold
        self.frequent_capacity = frequent_capacity
        self._values: pl.DataFrame | None = None  # exact value counts ("value", "count")
        self._dense: tuple[int, np.ndarray] | None = None  # counts not in _values yet (see values)
        self.kll: KllQuantiles | None = None
        self.hll: HllDistinct | None = None
        self.frequent: FrequentItems | None = None
        self.has_empty = False
        self.lengths = LengthStats.zero(exact_threshold, kll_k) if self.kind is Kind.STRING else None
        if self.kind.valued:
            self.values = pl.DataFrame(schema={"value": _value_dtype(dtype), "count": pl.UInt64})

    # -- identity -------------------------------------------------------------------------
    @classmethod
    def zero(cls, name: str, dtype: pl.DataType, **params: int) -> "ColumnPartial":
        return cls(name, dtype, **params)

    def params(self) -> dict[str, int]:
        return {
            "kll_k": self.kll_k, "hll_lg_k": self.hll_lg_k,
            "exact_threshold": self.exact_threshold, "frequent_capacity": self.frequent_capacity,
        }  # fmt: skip

    @property
    def exact(self) -> bool:
        """True while distinct count, top values and quantiles are exact."""
        return self._values is not None

    @property
    def values(self) -> pl.DataFrame | None:
        """The exact value counts (columns ``value``, ``count``) while the column is exact, else None.

        Batches of booleans, integers, temporals and decimals in a narrow range add their
        histograms to a running one (numpy, no table work a batch); it joins the table when the
        table is read."""
        if self._dense is not None:
            lo, hist = self._dense
            self._dense = None
            self._values = _add_counts(self._values, dense_table(lo, hist, self._values.schema["value"]))
        return self._values

    @values.setter
    def values(self, table: pl.DataFrame | None) -> None:
        self._dense = None
        self._values = table

    def _add_dense(self, lo: int, hist: np.ndarray) -> None:
        """Add a batch's histogram (from ``lo``) to the running one; leave exact mode when the
        column has more than ``exact_threshold`` distinct values."""
        if self._dense is not None:
            at, run = self._dense
            first, end = min(at, lo), max(at + len(run), lo + len(hist))
            if end - first > _DENSE_RUN:  # too wide a range to keep as a histogram: into the table
                _ = self.values
            else:
                if first < at or end > at + len(run):
                    wider = np.zeros(end - first, dtype=np.uint64)
                    wider[at - first : at - first + len(run)] = run
                    at, run = first, wider
                run[lo - at : lo - at + len(hist)] += hist
                self._dense = (at, run)
        if self._dense is None:
            self._dense = (lo, hist.copy())
        if self._values.height + np.count_nonzero(self._dense[1]) > self.exact_threshold:
            if self.values.height > self.exact_threshold:
                self._start_sketches()

    # -- update ---------------------------------------------------------------------------
    def update(self, series: pl.Series) -> "ColumnPartial":
        """Add a batch of this column's values (vectorized); returns self."""
        self.sketch_if_wide(series)
        frame = series.rename(self.name).to_frame()
        row = frame.select(stat_exprs(0, self.name, self.dtype, self.exact)).row(0, named=True)
        self.absorb({k.split(":", 1)[1]: v for k, v in row.items()}, frame.get_column(self.name))
        return self

    def sketch_if_wide(self, series: pl.Series) -> None:
        """Before the first batch is counted: leave exact mode at once when the batch's head alone
        has more than ``exact_threshold`` distinct values.  (Later batches are counted: a column
        that outgrows the threshold costs one batch's counts.)  Called before the batch's
        aggregates are chosen, since exact and sketched columns aggregate differently."""
        if (self._values is None or self._values.height or self._dense is not None or not self.kind.valued
                or len(series) <= self.exact_threshold):  # fmt: skip
            return
        head = series.slice(0, 2 * self.exact_threshold + 1).drop_nulls()
        if head.n_unique() > self.exact_threshold:
            self._start_sketches()

    def absorb(self, stats: dict[str, Any], series: pl.Series) -> None:
        """Fold one batch in, given its aggregates from :func:`stat_exprs` and its values
        (after :meth:`sketch_if_wide`)."""
        n_rows = len(series)
        if not n_rows:
            return
        self.count += n_rows
        nulls = int(stats["nulls"])
        self.null_count += nulls
        kind = self.kind
        if kind is Kind.FLOAT and "nan" in stats:  # else counted by _absorb_numbers
            self.nan_count += int(stats["nan"])
            self.pos_inf_count += int(stats["pinf"])
            self.neg_inf_count += int(stats["ninf"])
        if not kind.valued or nulls == n_rows:
            self._absorb_value_stats(stats)
            return
        values = series.drop_nulls() if nulls else series
        if kind is Kind.STRING and values.dtype != pl.String:
            values = values.cast(pl.String)
        if self._values is None and plain_numbers(values.dtype):
            self._absorb_numbers(values)
            return
        if self._values is not None and (dense := dense_histogram(values)) is not None:
            self._absorb_value_stats(_dense_stats(*dense, values.dtype))
            self._add_dense(*dense)
            return
        counts = value_counts(values) if self._values is not None else None
        # a sketched string batch as Arrow views: its range, lengths and HLL hashes come from them
        arrow = string_array(values) if counts is None and kind is Kind.STRING else None
        lengths = None  # a string batch's distinct lengths in characters and their counts
        if "min" not in stats:  # aggregated for exact counts only (stat_exprs(exact=True)), or strings
            if arrow is not None:
                lo, hi, *lengths = string_stats(values, arrow)
                stats = {"min": lo, "max": hi}
            else:
                stats = counts_stats(counts, kind) if counts is not None else value_stats(values)
        self._absorb_value_stats(stats)
        if kind is Kind.STRING:
            if counts is not None:  # lengths of the distinct values, weighted by their counts
                lengths = [counts["value"].str.len_chars().to_numpy(), counts["count"].to_numpy()]
            self.has_empty |= self.lengths.update(*(lengths or [values.str.len_chars().to_numpy()]))
        elif kind is Kind.BINARY:  # HLL ignores empty values, as for strings: counted aside
            self.has_empty |= bool((values.bin.size() == 0).any())
        if counts is not None:
            self.values = _add_counts(self.values, counts)
            if self.values.height > self.exact_threshold:
                self._start_sketches()
        else:
            self._sketch(values, arrow)

    def _absorb_value_stats(self, stats: dict[str, Any]) -> None:
        if self.kind.numeric:
            n = int(stats.get("n") or 0)
            if n:
                self.moments = self.moments + Moments.from_stats(n=n, mean=stats["mean"], var_pop=stats["var"])
                self._extend_range(stats["min"], stats["max"])
        elif self.kind is Kind.STRING and stats.get("min") is not None:
            self._extend_range(stats["min"], stats["max"])

    def _extend_range(self, lo: Any, hi: Any) -> None:
        if self.min is None or lo < self.min:
            self.min = lo
        if self.max is None or hi > self.max:
            self.max = hi

    # -- sketches -------------------------------------------------------------------------
    def _start_sketches(self) -> None:
        """Leave exact mode: build the sketches from the exact value counts."""
        table = self.values
        self.values = None
        self.hll = HllDistinct.zero(self.hll_lg_k)
        self.frequent = FrequentItems.from_counts(table, self.frequent_capacity)
        if self.kind.numeric:
            self.kll = KllQuantiles.zero(self.kll_k)
            view, keep = _numeric_view(table["value"], self.kind)
            counts = table["count"].to_numpy()
            self.kll.update_weighted(view, counts[keep] if keep is not None else counts)
        _hash_into(self.hll, table["value"], self.kind)

    def _sketch(self, values: pl.Series, arrow: Any = None) -> None:
        if self.kll is not None:
            self.kll.update(_numeric_view(values, self.kind)[0])
        _hash_into(self.hll, values, self.kind, arrow)
        cap = self.frequent_capacity
        batch = FrequentItems.from_views(values, arrow, cap) if arrow is not None else None  # short strings
        self.frequent = self.frequent.merge(batch if batch is not None else FrequentItems.from_batch(values, cap))

    def _absorb_numbers(self, values: pl.Series) -> None:
        """A batch (no nulls) of a sketched column of :func:`plain_numbers`: one numpy array of its
        physical values feeds the range, moments and non-finite counts (one C pass, which also
        writes the values as doubles: the frequent-value keys of floats and what KLL sorts), KLL,
        HLL and the frequent-value keys, each as :meth:`_sketch` and :func:`stat_exprs` would
        compute them."""
        decimal = self.kind is Kind.DECIMAL
        phys = values.to_physical()
        arr = (phys.cast(pl.Int64) if decimal else phys).to_numpy()
        if decimal:  # scaled integers: the values are arr / 10**scale
            n, lo, hi, mean, m2, nan, pinf, ninf = _moments.summarize(arr)
            scale = values.dtype.scale
            unit = 10.0**scale
            doubles = arr / unit
            mean, m2 = mean / unit, m2 / unit**2
            if n:
                lo, hi = _decimal(lo, scale), _decimal(hi, scale)
        else:  # the doubles of integers; floats as float64, -0.0 made 0.0 and every NaN one NaN
            doubles = np.empty(len(arr))
            n, lo, hi, mean, m2, nan, pinf, ninf = _moments.summarize(arr, doubles)
        self.nan_count += nan
        self.pos_inf_count += pinf
        self.neg_inf_count += ninf
        if n:
            self.moments = self.moments + Moments(n, mean, m2)
            self._extend_range(lo, hi)
        if arr.dtype.kind == "f":
            self.hll.update_float64(doubles)
            keys = doubles.view(np.uint64)
        else:
            ints = arr.view(np.int64) if arr.dtype.itemsize == 8 else arr.astype(np.int64)
            if decimal:  # hashed by value, as _hash_into does
                self.hll.update_float64(doubles)
            else:
                self.hll.update_int64(ints)
            keys = ints.view(np.uint64)
        self.frequent = self.frequent.merge(FrequentItems.from_batch(values, self.frequent_capacity, keys))
        # last: KLL sorts the runs of this method's own array in place (the frequent values no
        # longer need it), or of the finite values picked out of it
        self.kll.update(doubles[np.isfinite(doubles)] if n < len(arr) else doubles, scratch=True)

    def _retyped(self, dtype: pl.DataType) -> "ColumnPartial":
        out = self.copy()
        out.dtype = dtype
        vtype = _value_dtype(dtype)
        if out.values is not None:
            out.values = out.values.with_columns(pl.col("value").cast(vtype))
        if out.frequent is not None:
            table = out.frequent.table.with_columns(pl.col("value").cast(vtype))
            out.frequent = FrequentItems(table, out.frequent.error, out.frequent.capacity)
        return out

    def _as_sketched(self) -> "ColumnPartial":
        out = self.copy()
        if out.values is not None:
            out._start_sketches()
        return out

    # -- merge ----------------------------------------------------------------------------
    def merge(self, other: "ColumnPartial") -> "ColumnPartial":
        """The partial of both inputs together (a new object; neither input changes)."""
        a, b = self, other
        if a.kind is Kind.NULL and b.kind is not Kind.NULL:
            a, b = b, a
        if b.kind is Kind.NULL and a.kind is not Kind.NULL:
            b = _retype_null(b, a)
        if a.kind is not b.kind:
            msg = (
                f"column '{a.name}' is {a.dtype} in one partial profile and {b.dtype} in the other; "
                "cast it to one type before profiling, or profile the two separately"
            )
            raise SchemaMismatchError(msg)
        dtype = a.dtype if a.dtype == b.dtype else _common_dtype(a.name, a.dtype, b.dtype)
        if dtype != a.dtype or dtype != b.dtype:
            a, b = a._retyped(dtype), b._retyped(dtype)
        params = {k: min(v, b.params()[k]) for k, v in a.params().items()}
        out = ColumnPartial(a.name, dtype, **params)
        out.count = a.count + b.count
        out.null_count = a.null_count + b.null_count
        out.nan_count = a.nan_count + b.nan_count
        out.pos_inf_count = a.pos_inf_count + b.pos_inf_count
        out.neg_inf_count = a.neg_inf_count + b.neg_inf_count
        out.moments = a.moments + b.moments
        out.min, out.max = a.min, a.max
        if b.min is not None:
            out._extend_range(b.min, b.max)
        out.has_empty = a.has_empty or b.has_empty
        if a.lengths is not None:
            out.lengths = a.lengths.merge(b.lengths)
        if not out.kind.valued:
            out.values = None
            return out
        if a.values is not None and b.values is not None:
            out.values = _add_counts(a.values, b.values)
            if out.values.height > out.exact_threshold:
                out._start_sketches()
            return out
        a, b = a._as_sketched(), b._as_sketched()
        out.values = None
        out.hll = a.hll.merge(b.hll)
        out.frequent = a.frequent.merge(b.frequent)
        if a.kll is not None:
            out.kll = a.kll.merge(b.kll)
        return out

    __add__ = merge

    def copy(self) -> "ColumnPartial":
        _ = self.values  # the running histogram into the table, which is never changed in place
        out = ColumnPartial(self.name, self.dtype, **self.params())
        for slot in ColumnPartial.__slots__:
            setattr(out, slot, getattr(self, slot))
        if self.kll is not None:
            out.kll = self.kll.copy()
        return out

    # -- bytes ----------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        from .codec import encode_column

        return encode_column(self)

    @classmethod
    def from_bytes(cls, data: bytes) -> "ColumnPartial":
        from .codec import decode_column

        return decode_column(data)

    def __reduce__(self):
        return (ColumnPartial.from_bytes, (self.to_bytes(),))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ColumnPartial) and self.to_bytes() == other.to_bytes()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        mode = "exact" if self.exact else "sketched"
        return f"ColumnPartial({self.name!r}, {self.dtype}, count={self.count}, nulls={self.null_count}, {mode})"

    # -- results --------------------------------------------------------------------------
    def finalize(self, quantiles=None, top_k: int = 10):
        from .result import finalize_column

        return finalize_column(self, quantiles, top_k)


# -- helpers --------------------------------------------------------------------------------
def _add_counts(a: pl.DataFrame, b: pl.DataFrame) -> pl.DataFrame:
    if not a.height:
        return b if b.schema == a.schema else b.cast(a.schema)  # type: ignore[arg-type]
    if not b.height:
        return a
    if b.schema != a.schema:
        b = b.cast(a.schema)  # type: ignore[arg-type]
    return pl.concat([a, b]).group_by("value").agg(pl.col("count").sum())


def _decimal(scaled: int, scale: int) -> Decimal:
    """The decimal whose scaled integer (value * 10**scale) is ``scaled``, as polars returns it."""
    return Decimal(scaled).scaleb(-scale)


#: the widest range of integers a running histogram of exact counts spans (8 bytes a value)
_DENSE_RUN = 1 << 20


def _dense_stats(lo: int, hist: np.ndarray, dtype: pl.DataType) -> dict[str, Any]:
    """Range and moments of a batch from its :func:`~truthound_sketch.frequent.dense_histogram`,
    as :func:`stat_exprs` gives them (temporal values by their physical integer)."""
    present = np.flatnonzero(hist)
    view = (present + lo).astype(np.float64)
    lo_int, hi_int = lo + int(present[0]), lo + int(present[-1])
    if dtype.is_decimal():
        view /= 10.0**dtype.scale
        low, high = _decimal(lo_int, dtype.scale), _decimal(hi_int, dtype.scale)
    elif dtype == pl.Boolean:
        low, high = bool(lo_int), bool(hi_int)
    else:
        low, high = lo_int, hi_int
    return {**_weighted_moments(view, hist[present]), "min": low, "max": high}


def _numeric_view(values: pl.Series, kind: Kind) -> tuple[np.ndarray, np.ndarray | None]:
    """float64 numbers for quantile sketches, and the mask of the values kept (None: all)."""
    if kind.temporal:
        values = values.to_physical()
    arr = values.cast(pl.Float64).to_numpy()  # read-only is enough: KllQuantiles.update copies
    if kind is Kind.FLOAT:
        keep = np.isfinite(arr)
        if not keep.all():
            return np.ascontiguousarray(arr[keep]), keep
    return arr, None


def _hash_into(hll: HllDistinct, values: pl.Series, kind: Kind, arrow: Any = None) -> None:
    """Hash values the way DataSketches does for the matching Java/Python update call (strings:
    their Arrow array when the caller has it)."""
    if kind is Kind.STRING:
        if arrow is not None:
            hll.update_string_views(arrow)
        else:
            hll.update_strings(values.cast(pl.String))
    elif kind is Kind.BINARY:
        hll.update_strings(values.to_arrow())
    elif kind is Kind.FLOAT:
        hll.update_float64(values.cast(pl.Float64).to_numpy())
    elif kind is Kind.DECIMAL:
        # hashed by value as a double, not by the scaled integer, so that 1.50 (scale 2) and 1.500
        # (scale 3) are one value when partials of two scales merge; up to 15 digits the unscaled
        # integer and 10**scale are exact doubles, so the quotient is the same whatever the scale
        unscaled = values.to_physical().cast(pl.Float64).to_numpy()
        hll.update_float64(unscaled / 10.0 ** values.dtype.scale)
    else:
        if kind.temporal:
            values = values.to_physical()
        if values.dtype == pl.UInt64:
            hll.update_int64(values.to_numpy().view(np.int64))
        elif values.dtype in (pl.Int128, pl.UInt128):
            hll.update_strings(values.cast(pl.String))
        else:
            hll.update_int64(values.cast(pl.Int64).to_numpy())


def _retype_null(null: ColumnPartial, like: ColumnPartial) -> ColumnPartial:
    """An all-null column seen without a type takes the type of its partner."""
    out = ColumnPartial(like.name, like.dtype, **like.params())
    out.count = null.count
    out.null_count = null.null_count
    return out


def _common_dtype(name: str, a: pl.DataType, b: pl.DataType) -> pl.DataType:
    if kind_of(a).temporal:
        if getattr(a, "time_unit", None) == getattr(b, "time_unit", None):
            return a  # same physical unit; time zones only change how values are shown
        msg = f"column '{name}' is {a} in one partial profile and {b} in the other; cast both to one time unit"
        raise SchemaMismatchError(msg)
    try:
        frames = [pl.DataFrame(schema={"x": a}), pl.DataFrame(schema={"x": b})]
        return pl.concat(frames, how="vertical_relaxed").schema["x"]
    except Exception:
        msg = f"column '{name}' has types {a} and {b} in two partial profiles, and they have no common type"
        raise SchemaMismatchError(msg) from None


