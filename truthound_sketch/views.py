"""The Arrow string views of a polars String batch, for the C kernels that read them."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from . import _hashcount

__all__ = ["string_stats", "string_views"]


def string_views(values: pl.Series) -> tuple[np.ndarray, list[Any]] | None:
    """The 16-byte views (uint8, the batch's rows only) and the data buffers of a String batch
    without nulls; None when it has nulls or is not one chunk of string views."""
    import pyarrow as pa

    if values.null_count():
        return None
    arrow = values.to_arrow(compat_level=pl.CompatLevel.newest())
    if isinstance(arrow, pa.ChunkedArray):
        if arrow.num_chunks != 1:
            return None
        arrow = arrow.chunk(0)
    if not pa.types.is_string_view(arrow.type):
        return None
    buffers = arrow.buffers()
    views = np.frombuffer(buffers[1], dtype=np.uint8)[16 * arrow.offset : 16 * (arrow.offset + len(arrow))]
    return views, [b if b is not None else b"" for b in buffers[2:]]


def string_stats(values: pl.Series) -> tuple[str, str, np.ndarray] | None:
    """Smallest and largest string (byte order, as polars orders them) and every string's length
    in characters, in one pass of the C kernel; None where :func:`string_views` gives None."""
    found = string_views(values) if len(values) else None
    if found is None:
        return None
    lo, hi, lengths = _hashcount.string_stats(*found)
    return values[lo], values[hi], np.frombuffer(lengths, dtype=np.uint32)
