"""The engine-facing side of the monitoring bus.

Engines publish through these calls and nothing else; a ``DistributedMonitor``
(:mod:`truthound_sketch.distributed.monitoring`) implements them.  Without a monitor, engines talk
to :class:`NullBus`, which does nothing.
"""

from __future__ import annotations

from typing import Any

__all__ = ["NullBus", "bus_for"]


class NullBus:
    def run_started(self, *, backend: str, num_partitions: int, total_rows: int | None = None, source: str | None = None) -> None: ...
    def partition_submitted(self, partition_id: int, *, total_rows: int | None = None) -> str:
        return str(partition_id)
    def partition_started(self, partition_id: int, *, worker_id: str) -> None: ...
    def partition_progress(self, partition_id: int, *, rows_processed: int, progress: float | None = None) -> None: ...
    def partition_completed(self, partition_id: int, *, rows: int, duration_seconds: float, worker_id: str | None = None) -> None: ...
    def partition_failed(self, partition_id: int, *, error: Any, worker_id: str | None = None, will_retry: bool = False) -> None: ...
    def worker_heartbeat(self, worker_id: str, *, cpu_percent: float | None = None, memory_percent: float | None = None, active_tasks: int = 0) -> None: ...
    def worker_lost(self, worker_id: str, *, reason: str) -> None: ...
    def worker_unregistered(self, worker_id: str, *, reason: str) -> None: ...
    def should_retry(self, partition_id: int) -> bool:
        return True  # without a monitor, the engine's own retry limit decides
    def aggregation_completed(self, *, partials: int, duration_seconds: float) -> None: ...
    def run_finished(self, *, rows: int, duration_seconds: float, error: BaseException | None = None) -> None: ...


_NULL = NullBus()


def bus_for(monitor: Any) -> Any:
    return _NULL if monitor is None else monitor
