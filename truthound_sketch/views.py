"""The Arrow string views of a polars String batch, for the C kernels that read them."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from . import _hashcount

__all__ = ["string_array", "string_stats", "string_views"]


def string_array(values: pl.Series) -> Any:
    """The batch as one pyarrow string-view array (zero-copy); None when the String batch has
    nulls or is not one chunk of string views."""
    import pyarrow as pa

    if values.null_count():
        return None
    arrow = values.to_arrow(compat_level=pl.CompatLevel.newest())
    if isinstance(arrow, pa.ChunkedArray):
        if arrow.num_chunks != 1:
            return None
        arrow = arrow.chunk(0)
    return arrow if pa.types.is_string_view(arrow.type) else None


def string_views(arrow: Any) -> tuple[np.ndarray, list[Any]]:
    """The 16-byte views (uint8, the array's rows only) and the data buffers of a string-view array."""
    buffers = arrow.buffers()
    views = np.frombuffer(buffers[1], dtype=np.uint8)[16 * arrow.offset : 16 * (arrow.offset + len(arrow))]
    return views, [b if b is not None else b"" for b in buffers[2:]]


def string_stats(values: pl.Series, arrow: Any) -> tuple[str, str, np.ndarray]:
    """Smallest and largest string (byte order, as polars orders them) and every string's length
    in characters of a non-empty batch and its :func:`string_array`, in one pass of the C kernel."""
    lo, hi, lengths = _hashcount.string_stats(*string_views(arrow))
    return values[lo], values[hi], np.frombuffer(lengths, dtype=np.uint32)
