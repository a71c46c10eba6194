"""Mergeable first and second moments (count, mean, sum of squared deviations).

The merge is the pairwise update of Chan, Golub and LeVeque, "Algorithms for computing the sample
variance" (1979/1983), equation 2.1, which is stable for partitions of any size.
"""

from __future__ import annotations

from dataclasses import dataclass
import math

__all__ = ["Moments", "merge_moments"]


@dataclass(frozen=True)
class Moments:
    n: int = 0
    mean: float = 0.0
    m2: float = 0.0

    @classmethod
    def from_stats(cls, *, n: int, mean: float | None, var_pop: float | None) -> "Moments":
        if not n:
            return cls()
        return cls(int(n), float(mean), float(var_pop or 0.0) * n)

    def __add__(self, other: "Moments") -> "Moments":
        return merge_moments(first=self, second=other)

    @property
    def variance(self) -> float | None:
        """Sample variance (divisor n - 1); None below two values."""
        return self.m2 / (self.n - 1) if self.n > 1 else None

    @property
    def std(self) -> float | None:
        v = self.variance
        return math.sqrt(max(v, 0.0)) if v is not None else None


def merge_moments(*, first: Moments, second: Moments) -> Moments:
    if not first.n:
        return second
    if not second.n:
        return first
    n = first.n + second.n
    delta = second.mean - first.mean
    mean = first.mean + delta * (second.n / n)
    m2 = first.m2 + second.m2 + delta * delta * (first.n * second.n / n)
    return Moments(n, mean, m2)
