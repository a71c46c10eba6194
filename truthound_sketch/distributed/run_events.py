"""The events a driver publishes of an engine's run, whatever the engine.

The driver publishes a run's partitions as submitted, and each one's started/completed (or failed) from
the metadata its task returned, as the results arrive.  Nothing here imports an engine.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import errors
from ..errors import BackendError
from .failures import RERAISED

__all__ = ["publish_record", "Arrivals", "publish_run", "publish_done"]


def publish_run(bus: Any, backend: str, n: int, rows: int | None, label: str) -> None:
    """A run whose ``n`` partitions are all known, and submitted, before any starts."""
    bus.run_started(backend=backend, num_partitions=n, total_rows=rows, source=label)
    for i in range(n):
        bus.partition_submitted(i)


def publish_done(bus: Any, i: int, rows: int, seconds: float, worker: str | None, *, submitted: bool = False) -> None:
    """The events of a partition the driver learns of only when its result (and metadata) arrives."""
    if submitted:
        bus.partition_submitted(i)
    bus.partition_started(i, worker_id=worker)
    bus.partition_completed(i, rows=rows, duration_seconds=seconds, worker_id=worker)


def publish_record(bus: Any, i: int, record: dict[str, Any], *, submitted: bool = False) -> None:
    """Publishes a ``partition_record`` as it arrives at the driver; a failure is raised again."""
    if submitted:
        bus.partition_submitted(i)
    if "error" in record:
        bus.partition_failed(i, error=record["error"], worker_id=record["worker"])
        if record["type"] in RERAISED:
            raise getattr(errors, record["type"])(record["error"])
        raise BackendError(f"partition {i} failed on {record['worker']}: {record['type']}: {record['error']}")
    publish_done(bus, i, record["rows"], record["seconds"], record["worker"])


class Arrivals:
    """The driver's account of partitions whose records arrive in any order: numbers the ones it learns
    of only on arrival (``pid=None``), publishes their events and keeps the partials (any handle) to merge."""

    def __init__(self, bus: Any) -> None:
        self.bus, self.done, self.current, self.parts = bus, 0, 0, []

    def arrive(self, fetch: Callable[[], list[dict]], part: Any, pid: int | None = None) -> None:
        self.current = self.done if pid is None else pid
        records = fetch()
        for record in records:
            i, self.done = (self.done if pid is None else pid), self.done + 1
            publish_record(self.bus, i, record, submitted=pid is None)
        self.parts.extend([part] if records else [])
