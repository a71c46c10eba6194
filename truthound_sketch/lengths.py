"""String length statistics: an exact histogram of lengths, or KLL once lengths are many."""

from __future__ import annotations

import numpy as np

from .kll import KllQuantiles, exact_quantiles
from .moments import Moments

__all__ = ["LengthStats"]

_BINCOUNT_LIMIT = 1 << 20


class LengthStats:
    __slots__ = ("lengths", "counts", "kll", "moments", "min", "max", "threshold", "kll_k")

    def __init__(self, threshold: int, kll_k: int) -> None:
        self.lengths: np.ndarray | None = np.empty(0, np.int64)  # sorted distinct lengths (exact mode)
        self.counts = np.empty(0, np.int64)
        self.kll: KllQuantiles | None = None
        self.moments = Moments()
        self.min: int | None = None
        self.max: int | None = None
        self.threshold = threshold
        self.kll_k = kll_k

    zero = classmethod(lambda cls, threshold=16384, kll_k=200: cls(threshold, kll_k))

    def update(self, lens: np.ndarray, counts: np.ndarray | None = None) -> bool:
        """Add the lengths of a batch of (non-null) strings, each ``counts`` times if given;
        returns whether one was empty."""
        if not len(lens):
            return False
        lo, hi = int(lens.min()), int(lens.max())
        if hi < _BINCOUNT_LIMIT:
            hist = np.bincount(lens, weights=counts).astype(np.int64) if counts is not None else np.bincount(lens)
            values = np.flatnonzero(hist)
            hist = hist[values]
        elif counts is not None:
            values, inverse = np.unique(lens, return_inverse=True)
            hist = np.zeros(len(values), np.int64)
            np.add.at(hist, inverse, counts)
        else:
            values, hist = np.unique(lens, return_counts=True)
        self._add(values.astype(np.int64), hist.astype(np.int64), lo, hi, raw=lens if counts is None else None)
        return lo == 0

    def _add(self, values: np.ndarray, counts: np.ndarray, lo: int, hi: int, raw: np.ndarray | None) -> None:
        n = int(counts.sum())
        mean = float(np.dot(values, counts)) / n
        var = float(np.dot((values - mean) ** 2, counts)) / n
        self.moments = self.moments + Moments(n, mean, var * n)
        self.min = lo if self.min is None else min(self.min, lo)
        self.max = hi if self.max is None else max(self.max, hi)
        if self.lengths is not None:
            self.lengths, self.counts = _add_hist(self.lengths, self.counts, values, counts)
            if len(self.lengths) > self.threshold:
                self.kll = KllQuantiles.zero(self.kll_k)
                self.kll.update_weighted(self.lengths, self.counts)
                self.lengths, self.counts = None, np.empty(0, np.int64)
        elif raw is not None:
            self.kll.update(raw.astype(np.float64))
        else:
            self.kll.update_weighted(values, counts)

    def merge(self, other: "LengthStats") -> "LengthStats":
        out = LengthStats(min(self.threshold, other.threshold), min(self.kll_k, other.kll_k))
        out.moments = self.moments + other.moments
        bounds = [x for x in (self.min, other.min) if x is not None]
        out.min = min(bounds) if bounds else None
        bounds = [x for x in (self.max, other.max) if x is not None]
        out.max = max(bounds) if bounds else None
        if self.lengths is not None and other.lengths is not None:
            out.lengths, out.counts = _add_hist(self.lengths, self.counts, other.lengths, other.counts)
            if len(out.lengths) <= out.threshold:
                return out
        out.lengths = None
        out.kll = KllQuantiles.zero(out.kll_k)
        for part in (self, other):
            if part.lengths is not None:
                out.kll.update_weighted(part.lengths, part.counts)
            else:
                out.kll = out.kll.merge(part.kll)
        return out

    def quantiles(self, qs) -> list:
        if self.lengths is not None:
            return [None if v is None else int(v) for v in exact_quantiles(self.lengths, self.counts, qs)]
        return [None if v is None else int(round(v)) for v in self.kll.quantiles(qs)]


def _add_hist(a: np.ndarray, ac: np.ndarray, b: np.ndarray, bc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if not len(a):
        return b, bc
    values, inverse = np.unique(np.concatenate([a, b]), return_inverse=True)
    counts = np.zeros(len(values), np.int64)
    np.add.at(counts, inverse, np.concatenate([ac, bc]))
    return values, counts
