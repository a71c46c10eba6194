"""Partition strategies: how rows and columns are split into tasks.

Whatever the strategy, the profile is the same: exact statistics identical, sketched ones within
their bounds.  Row partitions are merged (``TablePartial.merge``); column groups over the same rows
are joined (:func:`join_columns`).
"""

from __future__ import annotations

from enum import Enum
from typing import Any

import polars as pl

from ..errors import ConfigError, SchemaMismatchError

__all__ = [
    "PartitionStrategy", "RowBasedPartitioner", "ColumnBasedPartitioner", "HybridPartitioner",
    "HashPartitioner", "join_columns", "split_columns",
]  # fmt: skip


class PartitionStrategy(str, Enum):
    ROW_BASED = "row_based"
    COLUMN_BASED = "column_based"
    HYBRID = "hybrid"
    HASH = "hash"


def _lazy(data: Any) -> pl.LazyFrame:
    return data if isinstance(data, pl.LazyFrame) else data.lazy()


def _height(lf: pl.LazyFrame) -> int:
    return lf.select(pl.len()).collect().item()


def split_columns(columns: list[str], groups: int) -> list[list[str]]:
    """Columns dealt into at most ``groups`` non-empty groups, in order."""
    groups = max(1, min(groups, len(columns) or 1))
    size = -(-len(columns) // groups) if columns else 0
    return [columns[i : i + size] for i in range(0, len(columns), size)] if columns else [[]]


class RowBasedPartitioner:
    """Cut the rows into ``num_partitions`` contiguous ranges."""

    def __init__(self, num_partitions: int = 4) -> None:
        if num_partitions < 1:
            raise ConfigError(f"num_partitions must be at least 1, got {num_partitions}")
        self.num_partitions = num_partitions

    def partition(self, data: Any) -> list[pl.LazyFrame]:
        lf = _lazy(data)
        n = _height(lf)
        size = max(1, -(-n // self.num_partitions))
        return [lf.slice(off, size) for off in range(0, max(n, 1), size)]


class ColumnBasedPartitioner:
    """Deal the columns into one group per worker."""

    def partition(self, data: Any, num_workers: int = 4) -> list[list[str]]:
        return split_columns(_lazy(data).collect_schema().names(), num_workers)


class HybridPartitioner:
    """``row_partitions`` x ``column_partitions`` tasks."""

    def __init__(self, row_partitions: int = 4, column_partitions: int = 2) -> None:
        if row_partitions < 1 or column_partitions < 1:
            raise ConfigError("row_partitions and column_partitions must be at least 1")
        self.row_partitions = row_partitions
        self.column_partitions = column_partitions

    def partition(self, data: Any) -> list[pl.LazyFrame]:
        lf = _lazy(data)
        groups = split_columns(lf.collect_schema().names(), self.column_partitions)
        return [part.select(g) for part in RowBasedPartitioner(self.row_partitions).partition(lf) for g in groups]


class HashPartitioner:
    """Rows go to partition ``hash(key columns) % num_partitions`` (all columns if no key)."""

    def __init__(self, num_partitions: int = 4, key: list[str] | None = None, seed: int = 0) -> None:
        if num_partitions < 1:
            raise ConfigError(f"num_partitions must be at least 1, got {num_partitions}")
        self.num_partitions = num_partitions
        self.key = key
        self.seed = seed

    def expr(self, index: int) -> pl.Expr:
        cols = pl.col(self.key) if self.key else pl.all()
        return pl.struct(cols).hash(self.seed) % self.num_partitions == index

    def partition(self, data: Any) -> list[pl.LazyFrame]:
        lf = _lazy(data)
        return [lf.filter(self.expr(i)) for i in range(self.num_partitions)]


def join_columns(parts: list) -> Any:
    """Join partials of disjoint column groups over the same rows into one partial."""
    from ..table import TablePartial

    rows = {p.row_count for p in parts}
    if len(rows) > 1:
        raise SchemaMismatchError(f"column groups disagree on the row count ({sorted(rows)}); they must cover the same rows")
    cols = {}
    for p in parts:
        cols.update(p.columns)
    return TablePartial(cols, parts[0].row_count if parts else 0, **(parts[0].params if parts else {}))
