"""The Arrow string views of a polars String batch, for the C kernels that read them.

A batch is exported through the Arrow C stream interface, chunk by chunk as polars holds it:
``Series.to_arrow`` would first join the chunks of a batch read from several row groups into one
array, a copy of every view that holds the GIL (3-4 ms per 340,000 rows, measured).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from . import _hashcount

__all__ = ["inline_keys", "string_array", "string_stats", "string_views"]


def string_array(values: pl.Series) -> Any:
    """The batch as a pyarrow ChunkedArray of string views (zero-copy); None when the String
    batch has nulls or its chunks are not string views."""
    import pyarrow as pa

    if values.null_count():
        return None
    arrow = pa.chunked_array(values)
    return arrow if pa.types.is_string_view(arrow.type) else None


def string_views(chunk: Any) -> tuple[np.ndarray, list[Any]]:
    """The 16-byte views (uint8, the chunk's rows only) and the data buffers of a string-view array."""
    buffers = chunk.buffers()
    views = np.frombuffer(buffers[1], dtype=np.uint8)[16 * chunk.offset : 16 * (chunk.offset + len(chunk))]
    return views, [b if b is not None else b"" for b in buffers[2:]]


def inline_keys(arrow: Any) -> np.ndarray | None:
    """64-bit keys of the rows of a :func:`string_array` (equal strings, equal keys) taken from the
    views themselves when every string is inline (at most 12 bytes); None otherwise."""
    keys = []
    for chunk in arrow.chunks:
        found = _hashcount.inline_keys(string_views(chunk)[0])
        if found is None:
            return None
        keys.append(np.frombuffer(found, dtype=np.uint64))
    return keys[0] if len(keys) == 1 else np.concatenate(keys)


def string_stats(values: pl.Series, arrow: Any) -> tuple[str, str, np.ndarray, np.ndarray]:
    """Smallest and largest string (byte order, as polars orders them) of a non-empty batch and
    its :func:`string_array`, and the strings' lengths in characters as distinct lengths and their
    counts, in one pass of the C kernel over each chunk."""
    lows, highs, hist, longer, start = [], [], np.zeros(0, np.int64), [], 0
    for chunk in arrow.chunks:
        if len(chunk):
            lo, hi, counts, long_lengths = _hashcount.string_stats(*string_views(chunk))
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
