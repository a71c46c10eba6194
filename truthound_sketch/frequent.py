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
        """The summary of a batch of (non-null) values, as ``from_counts(value_counts(values))``.

        Only values that can survive the Misra-Gries cut are counted.  A value's bucket count
        bounds its count from above, so rows whose bucket holds at most ``floor`` rows cannot
        belong to a value seen more than ``floor`` times.  If at least ``capacity + 1`` of the
        counted values occur more than ``floor`` times, the cut (the (capacity+1)-th largest count)
        is above ``floor`` and every value above the cut was counted: the summary is exact.
        Otherwise the floor is lowered, down to counting every row that may repeat.
        """
        k = capacity + 1
        if len(values) <= k:
            return cls.from_counts(value_counts(values), capacity)
        buckets = HashBuckets(values)
        floor = max(buckets.kth_largest(k) - 1, 1)
        while True:
            keep = buckets.counts[buckets.rows] > floor
            if np.count_nonzero(keep) > len(values) // 2:
                return cls.from_counts(value_counts(values), capacity)
            counts = value_counts(values.filter(keep))
            above = counts.filter(pl.col("count") > floor)
            if above.height >= k:
                cut = int(above["count"].top_k(k).min())
                break
            if floor == 1:
                # values alone in their bucket occur once: with them, more than k distinct values?
                if len(values) - int(np.count_nonzero(keep)) + counts.height <= k:
                    return cls.from_counts(value_counts(values), capacity)
                cut = 1
                break
            floor = max(floor // 2, 1)
        table = above.filter(pl.col("count") > cut).with_columns(pl.col("count") - cut)
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
    """Values hashed into about 4 buckets per row; a bucket's count bounds its values' counts."""

    def __init__(self, values: pl.Series) -> None:
        width = 1 << (max(4 * len(values), 1024) - 1).bit_length()
        hashed = values.hash(0x7EA5).to_numpy()
        self.rows = (hashed & np.uint64(width - 1)).view(np.int64)
        self.counts = np.bincount(self.rows, minlength=width)

    def kth_largest(self, k: int) -> int:
        """The k-th largest bucket count (counts are small integers: histogram them)."""
        hist = np.bincount(self.counts)
        above = np.cumsum(hist[::-1])
        return int(len(hist) - 1 - np.searchsorted(above, k))

