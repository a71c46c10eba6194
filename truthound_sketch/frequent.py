"""Frequent values: a mergeable Misra-Gries summary kept as a small polars table.

Agarwal, Cormode, Huang, Phillips, Wei and Yi, "Mergeable summaries" (PODS 2012), section 3: a
summary keeps at most ``capacity`` counters; to merge, counters are added and, if more than
``capacity`` remain, the (capacity+1)-th largest count is subtracted from all of them and the
non-positive ones dropped.  Every kept count ``c`` satisfies ``c <= true <= c + error`` and a value
missing from the summary occurs at most ``error`` times, where ``error`` is the sum of the amounts
subtracted, which never exceeds ``n / (capacity + 1)``.  Batches enter as exact value counts, so
every step is vectorized.
"""

from __future__ import annotations

import polars as pl

__all__ = ["FrequentItems"]


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
