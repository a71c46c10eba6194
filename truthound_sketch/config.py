"""Settings that shape partial profiles and the numbers read from them."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

from .errors import ConfigError

__all__ = ["ProfileConfig", "DEFAULT_QUANTILES"]

DEFAULT_QUANTILES: tuple[float, ...] = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)


@dataclass(frozen=True)
class ProfileConfig:
    """How to profile.

    ``kll_k``, ``hll_lg_k``, ``exact_threshold`` and ``frequent_capacity`` shape the partials (and
    travel with them); ``quantiles`` and ``top_k`` only shape the finished profile.
    """

    quantiles: tuple[float, ...] = DEFAULT_QUANTILES
    top_k: int = 10
    kll_k: int = 200
    hll_lg_k: int = 12
    #: a column keeps exact value counts (exact distinct, top values and quantiles) until it
    #: has more than this many distinct values; only then is it sketched.
    exact_threshold: int = 16384
    #: counters kept by the mergeable Misra-Gries frequent-items summary of a sketched column.
    frequent_capacity: int = 1024
    columns: tuple[str, ...] | None = None
    batch_rows: int = 262_144
    extra: dict = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        qs = tuple(float(q) for q in self.quantiles)
        for q in qs:
            if not 0.0 <= q <= 1.0:
                raise ConfigError(f"quantile {q!r} is outside [0, 1]; pass fractions such as 0.5 for the median")
        object.__setattr__(self, "quantiles", qs)
        if self.columns is not None:
            cols = (self.columns,) if isinstance(self.columns, str) else tuple(self.columns)  # "ab" is one column
            object.__setattr__(self, "columns", cols)
        checks = {
            "top_k": (self.top_k, 0, 1_000_000),
            "kll_k": (self.kll_k, 8, 65_535),
            "hll_lg_k": (self.hll_lg_k, 4, 21),
            "exact_threshold": (self.exact_threshold, 0, 10_000_000),
            "frequent_capacity": (self.frequent_capacity, 1, 10_000_000),
            "batch_rows": (self.batch_rows, 1, 1 << 31),
        }
        for name, (value, lo, hi) in checks.items():
            if not isinstance(value, int) or not lo <= value <= hi:
                raise ConfigError(f"ProfileConfig.{name}={value!r} must be an integer in [{lo}, {hi}]")

    def with_options(self, **changes) -> "ProfileConfig":
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ConfigError(f"unknown profile option(s) {unknown}; options are {sorted(known - {'extra'})}")
        return replace(self, **{k: v for k, v in changes.items() if v is not None})
