"""Comparing finished profiles: exact fields must be identical, floating-point fields close.

Used by the core's law, exactness, source and engine tests.  Fields that depend on how a run was
made (duration, engine, source label, partition count) are ignored.

Tolerances of the floating-point fields follow from how they are computed: a mean carries an
error of a few ulps of the largest magnitude in the column (``scale``), a variance one of about
``eps * scale * spread`` (Chan's merge), so the bounds below are many times those, yet far below
any real difference.
"""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal
from typing import Any

__all__ = ["assert_profiles_equal", "assert_columns_equal", "FLOAT_FIELDS", "seconds_of"]

#: fields computed in floating point from merged moments: compared with a tolerance
FLOAT_FIELDS = ("mean", "std", "variance")
_RUN_FIELDS = ("profile_duration_ms", "engine", "source", "partitions")
_EPOCH = dt.datetime(1970, 1, 1)


def seconds_of(v: Any) -> float:
    """A number, date, datetime, time or duration as a float (temporal ones in seconds)."""
    if isinstance(v, dt.datetime):
        return (v.replace(tzinfo=None) - _EPOCH).total_seconds() if v.tzinfo is None else v.timestamp()
    if isinstance(v, dt.date):
        return (v - _EPOCH.date()).days * 86400.0
    if isinstance(v, dt.time):
        return v.hour * 3600 + v.minute * 60 + v.second + v.microsecond / 1e6
    if isinstance(v, dt.timedelta):
        return v.total_seconds()
    if isinstance(v, bool):
        return float(v)
    return float(v)


def _close(a: Any, b: Any, *, rel: float, abs_tol: float, unit: float, where: str) -> None:
    if a is None or b is None:
        assert a is None and b is None, f"{where}: {a!r} != {b!r}"
        return
    x, y = seconds_of(a), seconds_of(b)
    if math.isnan(x) or math.isnan(y):
        assert math.isnan(x) and math.isnan(y), f"{where}: {a!r} != {b!r}"
        return
    assert math.isclose(x, y, rel_tol=rel, abs_tol=abs_tol + unit), f"{where}: {a!r} != {b!r} (tol {abs_tol + unit})"


def _unit(col) -> float:
    """The rounding step of a temporal mean or std after it is turned back into a value."""
    if col.kind == "date":
        return 86400.0
    if col.kind in ("datetime", "duration", "time"):
        return 2e-6
    return 0.0


def _split(col) -> tuple[dict, dict]:
    d = col.to_dict()
    floats = {f: getattr(col, f) for f in FLOAT_FIELDS}
    for f in FLOAT_FIELDS:
        d.pop(f)
    if col.string_length is not None:
        floats["len_mean"] = col.string_length.mean
        floats["len_std"] = col.string_length.std
        d["string_length"] = {k: v for k, v in d["string_length"].items() if k not in ("mean", "std")}
    return d, floats


def assert_columns_equal(a, b, *, rel: float = 1e-9, where: str = "", strict: bool = True) -> None:
    """Two ``ColumnProfile``s agree: exact fields identical, floating point within tolerance.

    With ``strict=False``, a sketched column's quantiles and top values (whose sketches depend on
    how rows were split, within their error bounds) are left out; its counts, moments, min, max
    and distinct estimate (HLL unions are exact) must still agree.
    """
    where = where or a.name
    da, fa = _split(a)
    db, fb = _split(b)
    if not strict and not (a.exact and b.exact):
        for d in (da, db):
            d.pop("quantiles"), d.pop("top_values")
            if d["string_length"] is not None:
                d["string_length"].pop("quantiles")
    assert da == db, f"{where}: exact statistics differ:\n{da}\n{db}"
    scale = spread = 0.0
    if a.min is not None and not isinstance(a.min, str) and not isinstance(a.min, bytes):
        lo, hi = seconds_of(a.min), seconds_of(a.max)
        scale, spread = max(abs(lo), abs(hi), 1.0), hi - lo
    unit = _unit(a)
    tol = {
        "mean": 1e-12 * scale, "std": 1e-11 * scale, "variance": 1e-11 * scale * spread + 1e-24 * scale * scale,
        "len_mean": 1e-12, "len_std": 1e-9,
    }  # fmt: skip
    for key in fa:
        _close(fa[key], fb[key], rel=rel, abs_tol=tol[key], unit=unit if key in ("mean", "std") else 0.0,
               where=f"{where}.{key}")  # fmt: skip


def assert_profiles_equal(a, b, *, rel: float = 1e-9, ignore_order: bool = False, strict: bool = True) -> None:
    """Two ``TableProfile``s agree (column order ignored when ``ignore_order``; see
    :func:`assert_columns_equal` for ``strict``)."""
    names_a, names_b = [c.name for c in a.columns], [c.name for c in b.columns]
    if ignore_order:
        assert sorted(names_a) == sorted(names_b), (names_a, names_b)
    else:
        assert names_a == names_b
    assert a.row_count == b.row_count, (a.row_count, b.row_count)
    assert a.null_cells == b.null_cells, (a.null_cells, b.null_cells)
    for name in names_a:
        assert_columns_equal(a.column(name), b.column(name), rel=rel, where=name, strict=strict)
    da, db = a.to_dict(), b.to_dict()
    for d in (da, db):
        for f in _RUN_FIELDS:
            d.pop(f)
        d.pop("columns")
    assert da == db


def as_decimal(v: Any) -> Decimal:
    return v if isinstance(v, Decimal) else Decimal(str(v))
