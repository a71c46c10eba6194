"""Frequent values: a mergeable Misra-Gries summary kept as a small polars table.

Agarwal, Cormode, Huang, Phillips, Wei and Yi, "Mergeable summaries" (PODS 2012), section 3: a
summary keeps at most ``capacity`` counters; to merge, counters are added and, if more than
``capacity`` remain, the (capacity+1)-th largest count is subtracted from all of them and the
non-positive ones dropped.  Every kept count ``c`` satisfies ``c <= true <= c + error`` and a value
missing from the summary occurs at most ``error`` times, where ``error`` is the sum of the amounts
subtracted, which never exceeds ``n / (capacity + 1)``.  Batches enter as exact value counts, so
every step is vectorized.

A batch of a high-cardinality column does not need a full group-by: values that occur once in the
batch are always cut when the batch has more than ``capacity + 1`` distinct values, so
:meth:`FrequentItems.from_batch` first drops rows that a hashed bucket count proves unique, then
counts the rest exactly.  The result is identical to summarising the batch's full value counts.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
import polars as pl

__all__ = ["FrequentItems", "HashBuckets", "value_counts"]


class FrequentItems:
    __slots__ = ("table", "error", "capacity")

    def __init__(self, table: pl.DataFrame, error: int, capacity: int) -> None:
        self.table = table  # columns "value", "count" (UInt64)
        self.error = int(error)
        self.capacity = int(capacity)

    @classmethod
    def from_counts(cls, table: pl.DataFrame, capacity: int, error: int = 0) -> "FrequentItems":
        """A summary of exact value counts (columns ``value`` and ``count``)."""
        table = table.with_columns(pl.col("count").cast(pl.UInt64))
        if table.height > capacity:
            top = table.top_k(capacity + 1, by="count")
            cut = int(top["count"].min())
            table = top.filter(pl.col("count") > cut).with_columns(pl.col("count") - cut)
            error += cut
        return cls(table, error, capacity)

    @classmethod
    def from_batch(cls, values: pl.Series, capacity: int) -> "FrequentItems":
        """The summary of a batch of (non-null) values, as ``from_counts(value_counts(values))``."""
        repeated = HashBuckets(values).repeated
        n_repeated = int(np.count_nonzero(repeated))
        # rows alone in their bucket are distinct values; prefilter only when they prove more than
        # capacity + 1 distinct values and when it removes most rows
        if len(values) - n_repeated < capacity + 2 or n_repeated > len(values) // 2:
            return cls.from_counts(value_counts(values), capacity)
        counts = value_counts(values.filter(repeated))
        if counts.height >= capacity + 1:
            cut = int(counts["count"].top_k(capacity + 1).min())
        else:
            cut = 1  # more than capacity+1 distinct values, the rest occurring once each
        table = counts.filter(pl.col("count") > cut).with_columns(pl.col("count") - cut)
        return cls(table, cut, capacity)

    def merge(self, other: "FrequentItems") -> "FrequentItems":
        capacity = min(self.capacity, other.capacity)
        other_table = other.table
        if other_table.schema != self.table.schema and other_table.height:
            other_table = other_table.cast(self.table.schema)  # type: ignore[arg-type]
        both = pl.concat([self.table, other_table]) if other_table.height else self.table
        if self.table.height and other_table.height:
            both = both.group_by("value").agg(pl.col("count").sum())
        return FrequentItems.from_counts(both, capacity, self.error + other.error)

    __add__ = merge

    def top(self, k: int) -> pl.DataFrame:
        """The k largest counters, largest first (ties by value), with count bounds."""
        t = self.table.sort(["count", "value"], descending=[True, False], nulls_last=True).head(k)
        return t.with_columns(
            pl.col("count").alias("lower_bound"), (pl.col("count") + self.error).alias("upper_bound")
        )


def value_counts(values: pl.Series) -> pl.DataFrame:
    """Exact counts of the (non-null) values: columns ``value`` and ``count`` (UInt64)."""
    counts = values.value_counts(name="count")
    return counts.rename({values.name: "value"}).with_columns(pl.col("count").cast(pl.UInt64))


class HashBuckets:
    """Values hashed into about 4 buckets per row: a row alone in its bucket occurs once."""

    def __init__(self, values: pl.Series) -> None:
        width = 1 << (max(4 * len(values), 1024) - 1).bit_length()
        hashed = values.hash(0x7EA5).to_numpy()
        self.rows = (hashed & np.uint64(width - 1)).view(np.int64)
        self.counts = np.bincount(self.rows, minlength=width)

    @cached_property
    def repeated(self) -> np.ndarray:
        return self.counts[self.rows] >= 2
