"""What every engine shares: turn data into one ``TablePartial`` (the engine's job), then finalize.

An engine (``ProfilingBackend`` subclass) implements :meth:`ProfilingBackend.partial`: it decides
where batches come from and where partials meet, and publishes partition events on the bus.
Everything else (statistics, merging, results) is the core's.
"""

from __future__ import annotations

import os
import time
from abc import ABC, abstractmethod
from typing import Any

from ..config import ProfileConfig
from ..result import TableProfile
from ..table import TablePartial
from .bus import bus_for
from .partitioning import PartitionStrategy, join_columns

__all__ = ["ProfilingBackend", "reduce_partials", "tree_reduce"]


class ProfilingBackend(ABC):
    """Base class of engines.  Subclasses set ``name`` and implement ``partial``."""

    name = "base"

    def __init__(self, *, profile_config: ProfileConfig | None = None,
                 partition_strategy: PartitionStrategy | str = PartitionStrategy.ROW_BASED, monitor: Any = None) -> None:  # fmt: skip
        self.profile_config = profile_config or ProfileConfig()
        self.partition_strategy = PartitionStrategy(partition_strategy)
        self.monitor = monitor

    @abstractmethod
    def partial(self, data: Any, *, config: ProfileConfig, bus: Any) -> tuple[TablePartial, int]:
        """Profile ``data`` into one partial; returns it and the number of partitions used."""

    def profile(self, data: Any, *, config: ProfileConfig | None = None, monitor: Any = None, **options: Any) -> TableProfile:
        config = config or self.profile_config
        if options:
            config = config.with_options(**options)
        bus = bus_for(monitor if monitor is not None else self.monitor)
        started = time.perf_counter()
        try:
            part, partitions = self.partial(data, config=config, bus=bus)
        except BaseException as exc:
            bus.run_finished(rows=0, duration_seconds=time.perf_counter() - started, error=exc)
            raise
        seconds = time.perf_counter() - started
        bus.run_finished(rows=part.row_count, duration_seconds=seconds)
        label = os.fspath(data) if isinstance(data, (str, os.PathLike)) else type(data).__name__
        return part.finalize(config, duration_ms=seconds * 1000, source=label, engine=self.name, partitions=partitions)

    def close(self) -> None:
        """Release what the engine holds (pools, sessions it started)."""


def tree_reduce(parts: list[TablePartial], fan_in: int = 8) -> TablePartial:
    """Merge partials in a balanced tree (associativity makes the order irrelevant)."""
    if not parts:
        return TablePartial.zero()
    while len(parts) > 1:
        parts = [_merge_all(parts[i : i + fan_in]) for i in range(0, len(parts), fan_in)]
    return parts[0]


def _merge_all(parts: list[TablePartial]) -> TablePartial:
    out = parts[0]
    for p in parts[1:]:
        out = out.merge(p)
    return out


def reduce_partials(keyed: list[tuple[Any, TablePartial]]) -> TablePartial:
    """Join column groups that share a row-part key, then merge the row parts."""
    groups: dict[Any, list[TablePartial]] = {}
    for key, part in keyed:
        groups.setdefault(key, []).append(part)
    rows = [g[0] if len(g) == 1 else join_columns(g) for g in groups.values()]
    return tree_reduce(rows)
