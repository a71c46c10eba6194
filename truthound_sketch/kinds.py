"""What kind of statistics a column gets, decided from its polars data type."""

from __future__ import annotations

from enum import Enum

import polars as pl

__all__ = ["Kind", "kind_of", "plain_numbers"]


class Kind(str, Enum):
    INTEGER = "integer"
    FLOAT = "float"
    DECIMAL = "decimal"
    BOOLEAN = "boolean"
    STRING = "string"  # also categoricals and enums
    BINARY = "binary"
    DATE = "date"
    DATETIME = "datetime"
    DURATION = "duration"
    TIME = "time"
    NESTED = "nested"  # lists, arrays, structs: counts and nulls only
    NULL = "null"  # a column of nothing but nulls, type unknown

    @property
    def numeric(self) -> bool:
        """Has a numeric view: moments and quantiles."""
        return self in _NUMERIC

    @property
    def temporal(self) -> bool:
        return self in (Kind.DATE, Kind.DATETIME, Kind.DURATION, Kind.TIME)

    @property
    def valued(self) -> bool:
        """Has values we count, hash and rank (everything but nested and null)."""
        return self not in (Kind.NESTED, Kind.NULL)


_NUMERIC = {Kind.INTEGER, Kind.FLOAT, Kind.DECIMAL, Kind.BOOLEAN, Kind.DATE, Kind.DATETIME, Kind.DURATION, Kind.TIME}


def plain_numbers(dtype: pl.DataType) -> bool:
    """Integers (up to 64 bits), floats, temporals and decimals of up to 18 digits: types whose
    physical values numpy holds (a decimal's as its scaled int64)."""
    if dtype.is_decimal():
        return dtype.precision is not None and dtype.precision <= 18
    return dtype.is_float() or dtype.is_temporal() or (dtype.is_integer() and dtype not in (pl.Int128, pl.UInt128))


def kind_of(dtype: pl.DataType) -> Kind:
    if dtype.is_integer():
        return Kind.INTEGER
    if dtype.is_float():
        return Kind.FLOAT
    if dtype.is_decimal():
        return Kind.DECIMAL
    if dtype == pl.Boolean:
        return Kind.BOOLEAN
    if dtype in (pl.String, pl.Categorical) or isinstance(dtype, (pl.Categorical, pl.Enum)):
        return Kind.STRING
    if dtype == pl.Binary:
        return Kind.BINARY
    if dtype == pl.Date:
        return Kind.DATE
    if isinstance(dtype, pl.Datetime):
        return Kind.DATETIME
    if isinstance(dtype, pl.Duration):
        return Kind.DURATION
    if dtype == pl.Time:
        return Kind.TIME
    if dtype == pl.Null:
        return Kind.NULL
    return Kind.NESTED
