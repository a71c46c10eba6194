"""KLL quantile sketches (Apache DataSketches' ``kll_doubles_sketch``) and exact quantiles.

The sketch bytes are DataSketches' own serialization, so a sketch made by Java DataSketches or by
Spark's ``kll_sketch_agg_double`` merges in.  Batches are added by the C extension
:mod:`truthound_sketch._kll` over the sketch's bytes with the GIL released: DataSketches' update
algorithm, or, once a sketch is large, sorted runs compacted several levels at once and merged as
DataSketches merges (:func:`run_level`); merges and queries are DataSketches' own.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import datasketches as ds
import numpy as np

from . import _kll
from .errors import ProfileFormatError

__all__ = ["KllQuantiles", "exact_quantiles", "run_level", "KLL_RANK_ERROR_K200", "KLL_ALL_RANKS_ERROR_K200"]

#: DataSketches' published single-sided normalized rank error of KLL at k=200 (99% confidence):
#: the bound of one rank query.
KLL_RANK_ERROR_K200 = 0.0133
#: the double-sided one (99% confidence), for all the ranks of a sketch at once.
KLL_ALL_RANKS_ERROR_K200 = 0.0165


class KllQuantiles:
    """A mergeable quantile sketch over float64 values."""

    __slots__ = ("sketch",)

    def __init__(self, sketch: ds.kll_doubles_sketch) -> None:
        self.sketch = sketch

    @classmethod
    def zero(cls, k: int = 200) -> "KllQuantiles":
        return cls(ds.kll_doubles_sketch(k))

    @property
    def k(self) -> int:
        return self.sketch.k

    @property
    def n(self) -> int:
        return self.sketch.n

    def update(self, values: np.ndarray, *, scratch: bool = False) -> None:
        """Add float64 values (finite, non-null).

        The values go in as sorted runs of ``_RUN`` (a permutation of the batch): KLL's bounds
        hold for any order of arrival.  Once the sketch holds enough values, each run is compacted
        :func:`run_level` times at once and the kept items join the sketch as DataSketches merges
        a sketch (see :mod:`truthound_sketch._kll`); below that, and for the values after the last
        whole run, DataSketches' update one value at a time.  With ``scratch`` (the caller's own
        float64 array, no longer needed) the runs are sorted in place instead of in a copy.
        """
        if len(values):
            runs = _sorted_runs(np.asarray(values, dtype=np.float64), in_place=scratch)
            level = run_level(self.sketch.n + len(runs))
            data = _kll.update(self.sketch.serialize(), runs, int.from_bytes(os.urandom(8), "little"), level)
            self.sketch = ds.kll_doubles_sketch.deserialize(data)

    def update_weighted(self, values: np.ndarray, counts: np.ndarray) -> None:
        """Add each value ``count`` times."""
        if len(values):
            self.update(np.repeat(np.asarray(values, dtype=np.float64), np.asarray(counts, dtype=np.int64)))

    def merge(self, other: "KllQuantiles") -> "KllQuantiles":
        out = self.copy()
        out.sketch.merge(other.sketch)
        return out

    __add__ = merge

    def copy(self) -> "KllQuantiles":
        return KllQuantiles(ds.kll_doubles_sketch.deserialize(self.sketch.serialize()))

    def quantiles(self, qs: Sequence[float]) -> list[float | None]:
        if self.sketch.is_empty():
            return [None for _ in qs]
        return [float(v) for v in self.sketch.get_quantiles(list(qs), True)]

    @property
    def rank_error(self) -> float:
        return float(self.sketch.normalized_rank_error(False))

    def to_bytes(self) -> bytes:
        return bytes(self.sketch.serialize())

    @classmethod
    def from_bytes(cls, data: bytes, *, field: str = "kll") -> "KllQuantiles":
        try:
            return cls(ds.kll_doubles_sketch.deserialize(bytes(data)))
        except Exception as exc:  # datasketches raises plain RuntimeError/ValueError
            raise ProfileFormatError(f"{field}: not a DataSketches KLL doubles sketch ({exc})") from None


#: length of the sorted runs fed to DataSketches (numpy sorts short rows in a few ns a value)
_RUN = 256


def run_level(n: int) -> int:
    """How many times a sketch that will hold ``n`` values compacts each sorted run of a batch at
    once: the largest ``c`` ≤ 5 with ``2**c ≤ sqrt(n) / 20`` (0: one value at a time).

    A run compacted ``c`` times makes one compaction at each level below ``c``; DataSketches'
    update of the same 256 values makes more there (its low levels hold 8 to a few dozen items
    once ``n`` is that large), and at most as many above, so no compaction error is added: each
    compaction's error is at most its level's weight.  Measured (``tests/test_kll.py``): rank
    errors about half of DataSketches' update over the same values.
    """
    c = 0
    while c < 5 and 400 * 4 ** (c + 1) <= n:
        c += 1
    return c


def _sorted_runs(values: np.ndarray, in_place: bool = False) -> np.ndarray:
    """The values sorted within consecutive runs of ``_RUN``: a new C-contiguous array, or
    ``values`` itself (``in_place``, when it is a writable C-contiguous float64 array)."""
    usable = in_place and values.dtype == np.float64 and values.flags.c_contiguous and values.flags.writeable
    out = values if usable else np.array(values, dtype=np.float64, order="C")  # one copy, sorted in place
    whole = len(out) - len(out) % _RUN
    out[:whole].reshape(-1, _RUN).sort(axis=1)
    out[whole:].sort()
    return out


def exact_quantiles(values: np.ndarray, counts: np.ndarray, qs: Sequence[float]) -> list:
    """Quantiles of a weighted, sorted set of values, with KLL's inclusive semantics:
    the smallest value whose cumulative count reaches ``q * n``."""
    if not len(values):
        return [None for _ in qs]
    cum = np.cumsum(counts)
    n = cum[-1]
    idx = np.searchsorted(cum, np.asarray(qs, dtype=np.float64) * n, side="left")
    idx = np.minimum(idx, len(values) - 1)
    return [values[i] for i in idx]
