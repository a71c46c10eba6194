"""How partial bytes are merged, whatever the engine.

Reducers merge partial bytes into bytes: a tree of merges that each take at most ``fan_in`` partials,
a stream folded with at most log2(n) partials held at once, and the Arrow rows that carry partials
between an engine's stages.  Nothing here imports an engine.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pyarrow as pa

from ..table import TablePartial
from .base import tree_reduce

__all__ = ["merge_bytes", "merge_tree", "fold_partials", "PARTIAL_ROW", "partial_row", "merge_partial_rows"]


def merge_bytes(*items: Any) -> bytes:
    """Partial bytes (or task results whose first item is the bytes) merged into one partial's bytes."""
    blobs = [x[0] if isinstance(x, tuple) else x for x in items]
    return blobs[0] if len(blobs) == 1 else tree_reduce([TablePartial.from_bytes(b) for b in blobs]).to_bytes()


def merge_tree(items: list, fan_in: int, merge: Callable[[list, int, int], Any], *, singles: bool = False) -> tuple[Any, list[int]]:
    """Reduces ``items`` level by level, ``merge(group, depth, offset)`` taking at most ``fan_in`` of them,
    so no merge ever holds every partial.  Returns (root or None, the size of each merge made); a lone
    item at the end of a level is carried up as it is unless ``singles``."""
    sizes, depth = [], 0
    while len(items) > 1:
        groups = [(j, items[j : j + fan_in]) for j in range(0, len(items), fan_in)]
        sizes += [len(g) for _, g in groups if len(g) > 1 or singles]
        items = [merge(g, depth, j) if len(g) > 1 or singles else g[0] for j, g in groups]
        depth += 1
    return (items[0] if items else None), sizes


def fold_partials(blobs: Iterable[bytes]) -> TablePartial | None:
    """Merges a stream of partial bytes; a binary counter keeps at most log2(n) partials at once."""
    stack: list[tuple[int, TablePartial]] = []
    for blob in blobs:
        part, level = TablePartial.from_bytes(blob), 0
        while stack and stack[-1][0] == level:
            part, level = stack.pop()[1].merge(part), level + 1
        stack.append((level, part))
    return tree_reduce([p for _, p in reversed(stack)]) if stack else None


#: Arrow rows that carry partials between an engine's stages: merge group, partial bytes, and a JSON
#: list of [partition, rows, seconds, worker] for each partition merged into it
PARTIAL_ROW = pa.schema([("g", pa.int64()), ("partial", pa.binary()), ("meta", pa.string())])


def partial_row(group: int, blob: bytes, meta: list) -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist([{"g": group, "partial": blob, "meta": json.dumps(meta)}], schema=PARTIAL_ROW)


def merge_partial_rows(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """The partial rows of one merge group folded into one row (at most log2(n) partials held at once)."""
    meta, group = [], [0]

    def blobs() -> Iterator[bytes]:
        for b in batches:
            for group[0], data, m in zip(*(c.to_pylist() for c in b.columns)):
                meta.extend(json.loads(m))
                yield data

    part = fold_partials(blobs())
    if part is not None:
        yield partial_row(group[0], part.to_bytes(), meta)
