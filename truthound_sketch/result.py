"""The finished profile: ``TableProfile`` and ``ColumnProfile``, read off partials.

``to_dict()``/``to_json()`` follow the versioned JSON schema in ``schema/profile.schema.json``
(documented in docs/profile-format.md).  In JSON, dates and times are ISO 8601 strings, durations
are ISO 8601 durations in seconds (``"PT1.5S"``), decimals are strings, binary values are base64.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
from dataclasses import asdict, dataclass, field, fields
from decimal import Decimal
from typing import Any

import polars as pl

from .config import ProfileConfig
from .kinds import Kind
from .kll import exact_quantiles

__all__ = [
    "SCHEMA_VERSION", "TableProfile", "ColumnProfile", "DistinctCount", "TopValue", "LengthSummary",
    "quantile_label",
]  # fmt: skip

SCHEMA_VERSION = "1.0"


def quantile_label(q: float) -> str:
    return "p" + format(q * 100, ".10g")


@dataclass(frozen=True)
class DistinctCount:
    estimate: float
    lower_bound: float
    upper_bound: float
    exact: bool


@dataclass(frozen=True)
class TopValue:
    value: Any
    count: int
    lower_bound: int
    upper_bound: int


@dataclass(frozen=True)
class LengthSummary:
    min: int | None
    max: int | None
    mean: float | None
    std: float | None
    quantiles: dict[str, int | None]


@dataclass(frozen=True)
class ColumnProfile:
    name: str
    dtype: str
    kind: str
    count: int
    null_count: int
    null_ratio: float
    nan_count: int
    pos_inf_count: int
    neg_inf_count: int
    mean: Any
    std: Any
    variance: float | None
    min: Any
    max: Any
    quantiles: dict[str, Any]
    distinct: DistinctCount | None
    top_values: list[TopValue]
    string_length: LengthSummary | None
    exact: bool

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(asdict(self))


@dataclass(frozen=True)
class TableProfile:
    row_count: int
    column_count: int
    profile_duration_ms: float
    columns: list[ColumnProfile]
    null_cells: int = 0
    null_cell_ratio: float = 0.0
    source: str | None = None
    engine: str | None = None
    partitions: int = 1
    schema_version: str = SCHEMA_VERSION
    partial: Any = field(default=None, repr=False, compare=False)  # the TablePartial it was read from

    def column(self, name: str) -> ColumnProfile:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(f"no column named {name!r}; columns are {[c.name for c in self.columns]}")

    def __getitem__(self, name: str) -> ColumnProfile:
        return self.column(name)

    def __add__(self, other: "TableProfile") -> "TableProfile":
        from .distributed.merger import ProfileMerger

        return ProfileMerger().merge([self, other])

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("partial", "columns")}
        d["columns"] = [c.to_dict() for c in self.columns]
        d = _jsonable(d)
        return {"schema_version": d.pop("schema_version"), **d}

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False, ensure_ascii=False)


# -- finalize ---------------------------------------------------------------------------------
def finalize_table(part, config: ProfileConfig, *, duration_ms: float = 0.0, source: str | None = None,
                   engine: str | None = None, partitions: int = 1) -> TableProfile:  # fmt: skip
    cols = [finalize_column(c, config.quantiles, config.top_k) for c in part.columns.values()]
    nulls = sum(c.null_count for c in cols)
    cells = part.row_count * len(cols)
    return TableProfile(
        row_count=part.row_count, column_count=len(cols), profile_duration_ms=round(duration_ms, 3),
        columns=cols, null_cells=nulls, null_cell_ratio=(nulls / cells) if cells else 0.0,
        source=source, engine=engine, partitions=partitions, partial=part,
    )  # fmt: skip


def finalize_column(col, quantiles=None, top_k: int = 10) -> ColumnProfile:
    qs = tuple(ProfileConfig().quantiles if quantiles is None else quantiles)
    kind = col.kind
    m = col.moments
    to_value = _converter(col.dtype, kind)
    mean = std = variance = None
    if kind.numeric and m.n:
        mean, std, variance = m.mean, m.std, m.variance
        if kind.temporal:
            mean = _temporal_mean(min(max(mean, col.min), col.max), col.dtype, kind)
            std = _duration(std, col.dtype, kind) if std is not None else None
            variance = None
    qvals: list[Any] = []
    if kind.numeric and kind is not Kind.BOOLEAN and m.n:
        if col.values is not None:
            table = col.values.sort("value")
            if kind is Kind.FLOAT:
                table = table.filter(pl.col("value").is_finite())
            qvals = exact_quantiles(table["value"].to_list(), table["count"].to_numpy(), qs)
        elif col.kll is not None:
            raw = col.kll.quantiles(qs)
            if kind is Kind.INTEGER or kind.temporal:
                # the sketch holds float64: integers past 2**53 come back rounded, possibly past
                # the column's (and the type's) range; keep them within [min, max]
                raw = [None if v is None else min(max(int(round(v)), col.min), col.max) for v in raw]
            qvals = to_value(raw)
    quant = {quantile_label(q): v for q, v in zip(qs, qvals)} if qvals else {}
    lo, hi = col.min, col.max
    if kind.temporal and lo is not None:
        lo, hi = to_value([lo, hi])
    distinct = None
    top: list[TopValue] = []
    if kind.valued and col.count > col.null_count:
        if col.values is not None:
            d = col.values.height
            distinct = DistinctCount(d, d, d, True)
            t = col.values.sort(["count", "value"], descending=[True, False]).head(top_k)
            top = [TopValue(v, c, c, c) for v, c in t.iter_rows()]
        else:
            extra = 1 if col.has_empty else 0
            h = col.hll
            distinct = DistinctCount(h.estimate() + extra, h.lower_bound(2) + extra, h.upper_bound(2) + extra, False)
            top = [TopValue(v, c, lb, ub) for v, c, lb, ub in col.frequent.top(top_k).iter_rows()]
    lengths = None
    if col.lengths is not None and col.lengths.moments.n:
        ls = col.lengths
        lq = ls.quantiles(qs)
        lengths = LengthSummary(ls.min, ls.max, ls.moments.mean, ls.moments.std,
                                {quantile_label(q): v for q, v in zip(qs, lq)})  # fmt: skip
    exact = col.values is not None or not kind.valued
    return ColumnProfile(
        name=col.name, dtype=str(col.dtype), kind=kind.value, count=col.count, null_count=col.null_count,
        null_ratio=(col.null_count / col.count) if col.count else 0.0, nan_count=col.nan_count,
        pos_inf_count=col.pos_inf_count, neg_inf_count=col.neg_inf_count, mean=mean, std=std,
        variance=variance, min=lo, max=hi, quantiles=quant, distinct=distinct, top_values=top,
        string_length=lengths, exact=exact,
    )  # fmt: skip


def _converter(dtype: pl.DataType, kind: Kind):
    """Turns sketch outputs (float64 of the numeric view) back into the column's values."""
    if kind is Kind.INTEGER:
        return lambda vs: [None if v is None else int(round(v)) for v in vs]
    if kind.temporal:
        phys = pl.Int32 if kind is Kind.DATE else pl.Int64

        def temporal(vs):
            s = pl.Series([None if v is None else int(round(v)) for v in vs], dtype=phys)
            return s.cast(dtype).to_list()

        return temporal
    if kind is Kind.DECIMAL:
        return lambda vs: pl.Series(vs, dtype=pl.Float64).cast(dtype, strict=False).to_list()
    return lambda vs: list(vs)


_MICROS = {"ns": 1e-3, "us": 1.0, "ms": 1e3}


def _temporal_mean(x: float, dtype: pl.DataType, kind: Kind) -> Any:
    """A mean of physical values as a value of the column's type, to the microsecond (dates: the day)."""
    if kind is Kind.DATE:
        return pl.Series([int(round(x))], dtype=pl.Int32).cast(pl.Date).item()
    unit = getattr(dtype, "time_unit", None) or "ns"
    micros = int(round(x * _MICROS[unit]))
    if kind is Kind.DATETIME:
        return pl.Series([micros], dtype=pl.Int64).cast(pl.Datetime("us", getattr(dtype, "time_zone", None))).item()
    if kind is Kind.DURATION:
        return dt.timedelta(microseconds=micros)
    return pl.Series([micros * 1000], dtype=pl.Int64).cast(pl.Time).item()


def _duration(x: float, dtype: pl.DataType, kind: Kind) -> dt.timedelta:
    if kind is Kind.DATE:
        return dt.timedelta(days=x)
    unit = getattr(dtype, "time_unit", None) or "ns"
    return dt.timedelta(microseconds=x / {"ns": 1000, "us": 1, "ms": 0.001}[unit])


# -- JSON -------------------------------------------------------------------------------------
def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, float):
        return v if math.isfinite(v) else ("NaN" if math.isnan(v) else "Infinity" if v > 0 else "-Infinity")
    if isinstance(v, (dt.datetime, dt.date, dt.time)):
        return v.isoformat()
    if isinstance(v, dt.timedelta):
        return f"PT{v.total_seconds():.9g}S"
    if isinstance(v, Decimal):
        return str(v)
    if isinstance(v, (bytes, bytearray)):
        return base64.b64encode(v).decode()
    return v
