"""The Arrow string views of a polars String batch, for the C kernels that read them.

A batch is exported through the Arrow C stream interface and read in C
(:func:`truthound_sketch._hashcount.view_chunks`), chunk by chunk as polars holds it, without
pyarrow: ``Series.to_arrow`` would first join the chunks of a batch read from several row groups
into one array, a copy of every view that holds the GIL (3-4 ms per 340,000 rows, measured), and
importing pyarrow costs the command line 20-30 ms.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from . import _hashcount

__all__ = ["ViewChunk", "string_array", "string_stats"]


class ViewChunk:
    """One chunk of a string-view column: its 16-byte views (uint8, the chunk's rows only) and its
    data buffers, valid while the chunk lives (it holds the exported Arrow array)."""

    __slots__ = ("views", "data", "_owner")

    def __init__(self, views: memoryview, data: list[memoryview], owner: object) -> None:
        self.views = np.frombuffer(views, dtype=np.uint8)
        self.data = data
        self._owner = owner

    def __len__(self) -> int:
        return len(self.views) // 16


def string_array(values: pl.Series) -> list[ViewChunk] | None:
    """The chunks of a String batch as string views (zero-copy); None when the batch has nulls or
    its chunks are not string views."""
    if values.null_count():
        return None
    chunks = _hashcount.view_chunks(values.__arrow_c_stream__())
    return None if chunks is None else [ViewChunk(*chunk) for chunk in chunks]


def string_stats(values: pl.Series, chunks: list[ViewChunk]) -> tuple[str, str, np.ndarray, np.ndarray]:
    """Smallest and largest string (byte order, as polars orders them) of a non-empty batch and
    its :func:`string_array`, and the strings' lengths in characters as distinct lengths and their
    counts, in one pass of the C kernel over each chunk."""
    lows, highs, hist, longer, start = [], [], np.zeros(0, np.int64), [], 0
    for chunk in chunks:
        if len(chunk):
            lo, hi, counts, long_lengths = _hashcount.string_stats(chunk.views, chunk.data)
            lows.append(values[start + lo])
            highs.append(values[start + hi])
            counts = np.frombuffer(counts, dtype=np.uint64).astype(np.int64)
            hist = np.pad(hist, (0, max(0, len(counts) - len(hist))))
            hist[: len(counts)] += counts
            longer.append(np.frombuffer(long_lengths, dtype=np.uint32))
        start += len(chunk)
    lengths = np.flatnonzero(hist)
    longer = np.concatenate(longer)
    if len(longer):  # strings of 4096 characters or more, one count each
        lengths, counts = np.concatenate([lengths, longer]), np.concatenate([hist[lengths], np.ones(len(longer), np.int64)])
    else:
        counts = hist[lengths]
    # Python orders str by code point, which is the byte order of their UTF-8
    return min(lows), max(highs), lengths.astype(np.int64), counts
