"""Watching a Dask cluster through its scheduler."""

from __future__ import annotations

from typing import Any

from truthound_sketch.errors import MissingDependencyError

from .base import MonitorAdapter, WorkerSample

__all__ = ["DaskMonitorAdapter"]


class DaskMonitorAdapter(MonitorAdapter):
    """Workers as the Dask scheduler sees them: each worker's CPU and memory (from its
    heartbeats to the scheduler; memory as percent of the worker's memory limit) and the
    tasks it is processing. A worker that leaves the scheduler is reported lost.

    ``client`` is a ``distributed.Client``; without one, :meth:`connect` uses the current
    default client (``distributed.get_client()``).
    """

    engine = "dask"

    def __init__(self, client: Any = None, poll_interval_seconds: float = 2.0) -> None:
        super().__init__(poll_interval_seconds)
        self.client = client

    def connect(self) -> bool:
        try:
            import distributed
        except ImportError:
            raise MissingDependencyError("distributed", "dask", "Monitoring a Dask cluster") from None
        if self.client is None:
            try:
                self.client = distributed.get_client()
            except ValueError:
                return self._unavailable("no Dask client: pass DaskMonitorAdapter(client=...) or create "
                                         "a distributed.Client first")
        status = getattr(self.client, "status", None)
        if status != "running":
            return self._unavailable(f"the Dask client is not running (status {status!r}); "
                                     "connect it to a scheduler first")
        self.unavailable_reason = None
        return True

    def _scheduler_info(self) -> dict[str, Any]:
        if self.client is None and not self.connect():
            return {}
        try:
            return self.client.scheduler_info(n_workers=-1)
        except TypeError:  # older distributed: every worker is always listed
            return self.client.scheduler_info()

    def sample(self) -> list[WorkerSample]:
        info = self._scheduler_info()
        workers = info.get("workers", {})
        if not workers:
            return []
        processing = self.client.processing()
        samples = []
        for address, w in workers.items():
            metrics = w.get("metrics", {})
            limit = w.get("memory_limit") or 0
            memory = metrics.get("memory")
            samples.append(WorkerSample(
                address,
                cpu_percent=metrics.get("cpu"),
                memory_percent=100.0 * memory / limit if limit and memory is not None else None,
                active_tasks=len(processing.get(address, ())),
                info={"name": w.get("name"), "nthreads": w.get("nthreads"), "memory_limit": limit,
                      "memory_bytes": memory, "status": w.get("status")},
            ))
        return samples

    def get_metrics(self) -> dict[str, Any]:
        """Scheduler-wide numbers: workers, threads, memory, tasks processing."""
        info = self._scheduler_info()
        if not info:
            return {"available": False, "reason": self.unavailable_reason}
        workers = info.get("workers", {})
        processing = self.client.processing()
        cpus = [w.get("metrics", {}).get("cpu") for w in workers.values()]
        cpus = [c for c in cpus if c is not None]
        return {
            "available": True,
            "scheduler": info.get("address"),
            "n_workers": info.get("n_workers", len(workers)),
            "total_threads": info.get("total_threads"),
            "total_memory": info.get("total_memory"),
            "memory_used": sum(w.get("metrics", {}).get("memory", 0) or 0 for w in workers.values()),
            "tasks_processing": sum(len(v) for v in processing.values()),
            "cpu_percent_mean": sum(cpus) / len(cpus) if cpus else None,
        }
