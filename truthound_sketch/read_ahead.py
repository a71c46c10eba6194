"""The first batches of a local parquet file, decoded while the rest of the program is imported.

``th profile FILE.parquet`` spends its first quarter second importing polars, numpy and the
sketches, on one core.  Once polars is imported, :func:`read_ahead` starts a thread that
decodes the batches the run will read first (polars releases the GIL while it decodes), and the
run's reader takes them (:func:`take`) instead of decoding them again; a batch is only ever taken
by a read of the same file, rows and columns, so a guess that does not match the run costs a
decode, never a wrong batch.  The batches are cut by the rule the planner and the reader use
(:func:`slice_target`, :func:`batch_spans`); the row counts come from the footer
(:mod:`truthound_sketch.parquet_footer`).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Iterator
from typing import Any

__all__ = ["batch_spans", "decode", "forget", "read_ahead", "slice_target", "take"]

#: rows per slice of a parquet file (row groups are never split)
TARGET_SLICE_ROWS = 1_000_000

_lock = threading.Lock()
_ahead: dict[tuple, "_Batch"] = {}


class _Batch:
    __slots__ = ("done", "frame")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.frame: Any = None  # None when the decode failed: the run decodes it and reports why


def slice_target(total_rows: int, min_slices: int) -> int:
    """Rows per slice: whole row groups are added to a slice until it holds this many."""
    return max(1, min(TARGET_SLICE_ROWS, total_rows // max(min_slices, 1) or 1))


def batch_spans(group_rows: Iterable[int], target: int, batch_rows: int) -> Iterator[tuple[int, int]]:
    """(first row, rows) of the batches of a file whose row groups have ``group_rows`` rows, in
    order: a batch is a run of row groups of one slice that ends once it holds ``batch_rows``
    rows or at the slice's end."""
    first = in_slice = in_batch = 0
    for rows in group_rows:
        in_slice += rows
        in_batch += rows
        if in_batch >= batch_rows or in_slice >= target:
            yield first, in_batch
            first, in_batch = first + in_batch, 0
            if in_slice >= target:
                in_slice = 0
    if in_batch:
        yield first, in_batch


def decode(path: str, columns: tuple[str, ...] | None, first: int, rows: int) -> Any:
    """Rows ``first`` to ``first + rows`` of a local parquet file, by polars' own reader."""
    import polars as pl

    lf = pl.scan_parquet(path)
    return (lf.select(list(columns)) if columns else lf).slice(first, rows).collect()


def read_ahead(path: str, *, columns: tuple[str, ...] | None, batch_rows: int, min_slices: int,
               batches: int) -> None:  # fmt: skip
    """Start decoding the first ``batches`` batches of ``path`` in a thread, when it is a local
    parquet file whose footer reads; otherwise do nothing (the run reports what is wrong)."""
    path = path.removeprefix("file://")
    if not path.lower().endswith((".parquet", ".pq")) or not os.path.isfile(path):
        return
    import polars  # noqa: F401 - here, not in the thread: the caller's imports would wait for it

    from .parquet_footer import row_counts

    try:
        total, groups = row_counts(path)
        spans = []
        for span in batch_spans(groups, slice_target(total, min_slices), batch_rows):
            spans.append(span)
            if len(spans) == batches:
                break
    except (OSError, ValueError):
        return
    key, columns = os.path.realpath(path), tuple(columns) if columns else None
    jobs = [(span, _Batch()) for span in spans]
    with _lock:
        for (first, rows), job in jobs:
            _ahead[(key, first, rows, columns)] = job

    def run() -> None:
        for (first, rows), job in jobs:
            try:
                job.frame = decode(path, columns, first, rows)
            except Exception:  # noqa: BLE001 - the run decodes this batch itself and reports the error
                job.frame = None
            finally:
                job.done.set()

    threading.Thread(target=run, name="truthound-sketch-read-ahead", daemon=True).start()


def take(path: str, columns: tuple[str, ...] | None, first: int, rows: int) -> Any:
    """The batch decoded ahead for these rows and columns of ``path`` (waiting for it if it is
    still being decoded), or None; a batch is taken once."""
    if not _ahead:
        return None
    with _lock:
        job = _ahead.pop((os.path.realpath(path), first, rows, tuple(columns) if columns else None), None)
    if job is None:
        return None
    job.done.wait()
    return job.frame


def forget() -> None:
    """Drop the batches decoded ahead that no read took."""
    with _lock:
        _ahead.clear()
