"""``TablePartial``: the mergeable partial profile of a whole table (one ColumnPartial a column)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import polars as pl

from .column import ColumnPartial, stat_exprs
from .config import ProfileConfig
from .errors import InputError

__all__ = ["TablePartial", "as_polars"]


def as_polars(batch: Any) -> pl.DataFrame:
    """A batch (polars frame, Arrow table or record batch) as a polars DataFrame: zero-copy, except
    that an Arrow table of several chunks is made one chunk a column."""
    if isinstance(batch, pl.DataFrame):
        return batch
    import pyarrow as pa  # here: polars batches (the command line's) need no pyarrow

    if isinstance(batch, pa.RecordBatch):
        return pl.from_arrow(batch, rechunk=False)  # type: ignore[return-value]
    if isinstance(batch, pa.Table):  # one chunk a column, as the vectorized kernels want
        return pl.from_arrow(batch, rechunk=batch.num_rows > 0 and any(c.num_chunks > 1 for c in batch.columns))  # type: ignore[return-value]
    raise InputError(f"cannot profile a batch of type {type(batch).__name__}; pass a polars DataFrame or an Arrow batch")


class TablePartial:
    """Partial profile of a table: row count and one :class:`ColumnPartial` per column.

    ``zero()`` is the identity, ``update(batch)`` adds rows (vectorized, one ``select`` for all
    columns), ``merge``/``+`` combine partials of disjoint row sets, ``to_bytes``/``from_bytes``
    round-trip through the versioned, checksummed format of :mod:`truthound_sketch.codec`.
    """

    __slots__ = ("row_count", "columns", "params")

    def __init__(self, columns: dict[str, ColumnPartial] | None = None, row_count: int = 0, **params: int) -> None:
        self.row_count = row_count
        self.columns: dict[str, ColumnPartial] = columns or {}
        self.params = params or _params(ProfileConfig())

    @classmethod
    def zero(cls, schema: pl.Schema | dict | None = None, config: ProfileConfig | None = None) -> "TablePartial":
        params = _params(config or ProfileConfig())
        cols = {name: ColumnPartial.zero(name, dtype, **params) for name, dtype in (schema or {}).items()}
        return cls(cols, 0, **params)

    @classmethod
    def from_batches(cls, batches: Iterable[Any], config: ProfileConfig | None = None, *,
                     consume: bool = False) -> "TablePartial":  # fmt: skip
        return cls.zero(None, config).update_all(batches, consume=consume)

    def update_all(self, batches: Iterable[Any], *, consume: bool = False) -> "TablePartial":
        """Add every batch of an iterable (returns self); a batch is let go before the next one is
        read, so that a reader decoding the next batch never runs beside the last one
        (``consume``: as :meth:`update`'s, for batches nobody else holds)."""
        it = iter(batches)
        while (batch := next(it, None)) is not None:
            self.update(batch, consume=consume)
            del batch
        return self

    def update(self, batch: Any, *, consume: bool = False) -> "TablePartial":
        """Add a batch of rows (returns self).  ``consume``: the batch (a polars DataFrame) is this
        call's to take apart, each column let go once it is added (the frame is left empty), so
        that a batch's memory shrinks while it is profiled."""
        df = as_polars(batch)
        for name, dtype in df.schema.items():
            if name not in self.columns:
                col = ColumnPartial.zero(name, dtype, **self.params)
                if self.row_count:  # a column that appears later was null before
                    col.count = col.null_count = self.row_count
                self.columns[name] = col
        if not df.height:
            return self
        exprs, names, given = [], [], df
        for i, name in enumerate(df.columns):
            col = self.columns[name]
            dtype = df.schema[name]
            if dtype != col.dtype:
                if dtype != pl.Null:
                    # the column's type so far and this batch's meet in a common type (or raise
                    # SchemaMismatchError naming the column), as two partials would in merge()
                    self.columns[name] = col = col.merge(ColumnPartial.zero(name, dtype, **self.params))
                if col.dtype != dtype and col.kind.name != "NULL":
                    df = df.with_columns(pl.col(name).cast(col.dtype))
            col.sketch_if_wide(df.get_column(name))
            exprs += stat_exprs(i, name, col.dtype, col.exact)
            names.append(name)
        if consume and given is not df:  # columns were cast: the given frame is let go now, the copy below
            for name in given.columns:
                given.drop_in_place(name)
        row = df.select(exprs).row(0)
        stats: list[dict[str, Any]] = [{} for _ in names]
        for key, value in zip(exprs_names(exprs), row):
            i, stat = key.split(":", 1)
            stats[int(i)][stat] = value
        height, present = df.height, set(df.columns)
        for i, name in enumerate(names):
            self.columns[name].absorb(stats[i], df.drop_in_place(name) if consume else df.get_column(name))
        for name, col in self.columns.items():
            if name not in present:  # missing from this batch: nulls
                col.count += height
                col.null_count += height
        self.row_count += height
        return self

    def merge(self, other: "TablePartial") -> "TablePartial":
        """The partial of both row sets together; a column missing on one side counts as null there."""
        cols: dict[str, ColumnPartial] = {}
        for name in list(self.columns) + [n for n in other.columns if n not in self.columns]:
            a, b = self.columns.get(name), other.columns.get(name)
            a = a if a is not None else _nulls(name, b, self.row_count)
            b = b if b is not None else _nulls(name, a, other.row_count)
            cols[name] = a.merge(b)
        params = {k: min(v, other.params.get(k, v)) for k, v in self.params.items()}
        return TablePartial(cols, self.row_count + other.row_count, **params)

    __add__ = merge

    def __radd__(self, other: Any) -> "TablePartial":
        if other == 0:  # so that sum(partials) works
            return self
        return NotImplemented

    def to_bytes(self) -> bytes:
        from .codec import encode_table

        return encode_table(self)

    @classmethod
    def from_bytes(cls, data: bytes) -> "TablePartial":
        from .codec import decode_table

        return decode_table(data)

    def __reduce__(self):
        return (TablePartial.from_bytes, (self.to_bytes(),))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TablePartial) and self.to_bytes() == other.to_bytes()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"TablePartial(rows={self.row_count}, columns={list(self.columns)})"

    def finalize(self, config: ProfileConfig | None = None, **meta: Any):
        from .result import finalize_table

        return finalize_table(self, config or ProfileConfig(), **meta)


def exprs_names(exprs: list[pl.Expr]) -> list[str]:
    return [e.meta.output_name() for e in exprs]


def _params(config: ProfileConfig) -> dict[str, int]:
    return {
        "kll_k": config.kll_k, "hll_lg_k": config.hll_lg_k,
        "exact_threshold": config.exact_threshold, "frequent_capacity": config.frequent_capacity,
    }  # fmt: skip


def _nulls(name: str, like: ColumnPartial, rows: int) -> ColumnPartial:
    col = ColumnPartial.zero(name, like.dtype, **like.params())
    col.count = col.null_count = rows
    return col
