"""Metrics of a run: counters, task durations with percentiles, per-worker readings, and their
Prometheus exposition (text and an HTTP endpoint).

Each collector owns a private :class:`prometheus_client.CollectorRegistry`, so several
collectors (or several monitors in one process) never clash on metric names, and nothing is
registered in prometheus-client's global registry. Values are read at scrape time from the
collector's own state.
"""

from __future__ import annotations

import collections
import logging
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import numpy as np

from truthound_sketch.errors import ConfigError

from .config import MetricsConfig

__all__ = ["MetricsSnapshot", "DistributedMetricsCollector"]

_log = logging.getLogger(__name__)
_BAD_CHARS = re.compile(r"[^a-zA-Z0-9_]")


@dataclass(frozen=True)
class MetricsSnapshot:
    """The collector's numbers at one instant. Durations are seconds; a percentile is 0.0
    until a duration was recorded."""

    timestamp: float
    tasks_submitted: int
    tasks_completed: int
    tasks_failed: int
    tasks_retried: int
    rows_processed: int
    avg_task_duration_seconds: float
    min_task_duration_seconds: float
    max_task_duration_seconds: float
    task_duration_p50: float
    task_duration_p75: float
    task_duration_p90: float
    task_duration_p95: float
    task_duration_p99: float
    percentiles: dict[float, float] = field(default_factory=dict)
    durations_by_type: dict[str, dict[str, float]] = field(default_factory=dict)
    counters: dict[str, float] = field(default_factory=dict)
    partition_progress: dict[int, float] = field(default_factory=dict)
    worker_metrics: dict[str, dict[str, float]] = field(default_factory=dict)


class _Durations:
    __slots__ = ("count", "total", "low", "high", "samples")

    def __init__(self, max_samples: int) -> None:
        self.count = 0
        self.total = 0.0
        self.low = float("inf")
        self.high = 0.0
        self.samples: collections.deque[float] = collections.deque(maxlen=max_samples)

    def add(self, seconds: float) -> None:
        self.count += 1
        self.total += seconds
        self.low = min(self.low, seconds)
        self.high = max(self.high, seconds)
        self.samples.append(seconds)


class DistributedMetricsCollector:
    """Thread-safe metrics store with Prometheus export."""

    def __init__(self, config: MetricsConfig | None = None) -> None:
        self.config = config or MetricsConfig()
        self._lock = threading.Lock()
        self._counters: dict[str, float] = collections.defaultdict(float)
        self._durations: dict[str, _Durations] = {}
        self._all = _Durations(self.config.max_duration_samples)
        self._partitions: dict[int, float] = {}
        self._workers: dict[str, dict[str, float]] = collections.defaultdict(dict)
        self._values: dict[str, tuple[str, str, Callable[[], float]]] = {}
        self._history: collections.deque[MetricsSnapshot] = collections.deque(maxlen=1000)
        self._last_snapshot = 0.0
        self._server = None
        self._server_thread: threading.Thread | None = None
        from prometheus_client import CollectorRegistry

        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Exporter(self))

    # ---------------------------------------------------------------- recording
    def record_task_duration(self, task_type: str, duration_seconds: float) -> None:
        if not self.config.enable_metrics:
            return
        seconds = max(0.0, float(duration_seconds))
        with self._lock:
            per_type = self._durations.get(task_type)
            if per_type is None:
                per_type = self._durations[task_type] = _Durations(self.config.max_duration_samples)
            per_type.add(seconds)
            self._all.add(seconds)

    def record_partition_progress(self, partition_id: int, progress: float) -> None:
        if not self.config.enable_metrics:
            return
        with self._lock:
            self._partitions[int(partition_id)] = min(1.0, max(0.0, float(progress)))

    def record_worker_metric(self, worker_id: str, name: str, value: float) -> None:
        if not self.config.enable_metrics or value is None:
            return
        with self._lock:
            self._workers[worker_id][name] = float(value)

    def remove_worker(self, worker_id: str) -> None:
        with self._lock:
            self._workers.pop(worker_id, None)

    def increment_counter(self, name: str, value: float = 1) -> None:
        if not self.config.enable_metrics:
            return
        with self._lock:
            self._counters[name] += value

    def register_value(self, name: str, read: Callable[[], float], *, kind: str = "gauge",
                       doc: str = "") -> None:
        """Expose ``read()`` (called at each scrape) as a gauge or a counter named ``name``."""
        if kind not in ("gauge", "counter"):
            msg = f"register_value(kind={kind!r}) is not valid: use 'gauge' or 'counter'"
            raise ConfigError(msg)
        with self._lock:
            self._values[name] = (kind, doc or name.replace("_", " "), read)

    def clear_partitions(self) -> None:
        with self._lock:
            self._partitions.clear()

    # ---------------------------------------------------------------- reading
    def get_metrics(self) -> MetricsSnapshot:
        with self._lock:
            return self._snapshot()

    def collect_snapshot(self, *, force: bool = False) -> MetricsSnapshot | None:
        """Append a snapshot to :meth:`get_history` if ``collection_interval_seconds`` passed."""
        now = time.monotonic()
        with self._lock:
            if not force and now - self._last_snapshot < self.config.collection_interval_seconds:
                return None
            self._last_snapshot = now
            snap = self._snapshot()
            self._history.append(snap)
            return snap

    def get_history(self) -> list[MetricsSnapshot]:
        with self._lock:
            return list(self._history)

    def export_prometheus(self) -> str:
        """The metrics in Prometheus' text exposition format."""
        from prometheus_client import generate_latest

        return generate_latest(self.registry).decode("utf-8")

    # ---------------------------------------------------------------- HTTP endpoint
    @property
    def http_port(self) -> int | None:
        """The port the HTTP endpoint is bound to, or None when it is not running."""
        server = self._server
        return server.server_port if server is not None else None

    def start_http_server(self, port: int | None = None, host: str | None = None) -> int:
        """Serve ``/metrics`` on ``host:port`` (defaults from the config; port 0 picks a free
        port) and return the bound port. Calling it again while running returns the same port."""
        from prometheus_client import start_http_server

        with self._lock:
            if self._server is not None:
                return self._server.server_port
            port = self.config.prometheus_port if port is None else port
            host = self.config.prometheus_host if host is None else host
            try:
                self._server, self._server_thread = start_http_server(port, addr=host,
                                                                      registry=self.registry)
            except OSError as exc:
                msg = (f"cannot serve Prometheus metrics on {host}:{port} ({exc.strerror or exc}); "
                       "choose another MetricsConfig.prometheus_port, or 0 for any free port")
                raise ConfigError(msg) from exc
            return self._server.server_port

    def stop_http_server(self) -> None:
        with self._lock:
            server, thread = self._server, self._server_thread
            self._server = self._server_thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
            if thread is not None:
                thread.join(5.0)

    # ---------------------------------------------------------------- internals
    def _snapshot(self) -> MetricsSnapshot:
        qs = list(self.config.percentiles) if self.config.enable_percentiles else []
        fixed = (0.5, 0.75, 0.9, 0.95, 0.99)
        values: dict[float, float] = {}
        if self._all.samples:
            wanted = sorted(set(qs) | set(fixed))
            got = np.quantile(np.fromiter(self._all.samples, dtype=np.float64), wanted)
            values = dict(zip(wanted, (float(v) for v in got)))
        c = self._counters
        done = self._all.count
        return MetricsSnapshot(
            timestamp=time.time(),
            tasks_submitted=int(c.get("tasks_submitted", 0)),
            tasks_completed=int(c.get("tasks_completed", 0)),
            tasks_failed=int(c.get("tasks_failed", 0)),
            tasks_retried=int(c.get("tasks_retried", 0)),
            rows_processed=int(c.get("rows_processed", 0)),
            avg_task_duration_seconds=self._all.total / done if done else 0.0,
            min_task_duration_seconds=self._all.low if done else 0.0,
            max_task_duration_seconds=self._all.high,
            task_duration_p50=values.get(0.5, 0.0),
            task_duration_p75=values.get(0.75, 0.0),
            task_duration_p90=values.get(0.9, 0.0),
            task_duration_p95=values.get(0.95, 0.0),
            task_duration_p99=values.get(0.99, 0.0),
            percentiles={q: values[q] for q in qs if q in values},
            durations_by_type={t: {"count": d.count, "sum": d.total,
                                   "avg": d.total / d.count if d.count else 0.0}
                               for t, d in self._durations.items()},
            counters=dict(c),
            partition_progress=dict(self._partitions),
            worker_metrics={w: dict(m) for w, m in self._workers.items()},
        )

    def _families(self) -> Iterator[Any]:
        from prometheus_client.core import (CounterMetricFamily, GaugeMetricFamily,
                                            SummaryMetricFamily)
        from prometheus_client.samples import Sample

        ns = _metric_name(self.config.prometheus_namespace)
        with self._lock:
            counters = dict(self._counters)
            durations = {t: (d.count, d.total, list(d.samples)) for t, d in self._durations.items()}
            partitions = dict(self._partitions)
            workers = {w: dict(m) for w, m in self._workers.items()}
            values = dict(self._values)
        for name, value in sorted(counters.items()):
            yield CounterMetricFamily(f"{ns}_{_metric_name(name)}", f"Count of {name.replace('_', ' ')}.",
                                      value=value)
        summary = SummaryMetricFamily(f"{ns}_task_duration_seconds", "Duration of finished tasks.",
                                      labels=["task_type"])
        qs = self.config.percentiles if self.config.enable_percentiles else []
        for task_type, (count, total, samples) in sorted(durations.items()):
            summary.add_metric([task_type], count, total)
            if samples and qs:
                for q, v in zip(qs, np.quantile(np.asarray(samples, dtype=np.float64), qs)):
                    summary.samples.append(Sample(f"{ns}_task_duration_seconds",
                                                  {"task_type": task_type, "quantile": repr(float(q))},
                                                  float(v)))
        yield summary
        progress = GaugeMetricFamily(f"{ns}_partition_progress", "Progress of each partition (0-1).",
                                     labels=["partition"])
        for pid, value in sorted(partitions.items()):
            progress.add_metric([str(pid)], value)
        yield progress
        names = sorted({n for m in workers.values() for n in m})
        for metric in names:
            family = GaugeMetricFamily(f"{ns}_worker_{_metric_name(metric)}",
                                       f"Latest {metric.replace('_', ' ')} reported per worker.",
                                       labels=["worker"])
            for worker, readings in sorted(workers.items()):
                if metric in readings:
                    family.add_metric([worker], readings[metric])
            yield family
        for name, (kind, doc, read) in sorted(values.items()):
            try:
                value = float(read())
            except Exception:
                _log.exception("metric %s could not be read", name)
                continue
            kind_cls = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
            yield kind_cls(f"{ns}_{_metric_name(name)}", doc, value=value)


class _Exporter:
    """Bridges the collector's state to prometheus-client at scrape time."""

    def __init__(self, owner: DistributedMetricsCollector) -> None:
        self._owner = owner

    def collect(self):
        return self._owner._families()


def _metric_name(name: str) -> str:
    cleaned = _BAD_CHARS.sub("_", name).strip("_") or "value"
    if cleaned.endswith("_total"):
        cleaned = cleaned[: -len("_total")]
    return cleaned if not cleaned[0].isdigit() else f"_{cleaned}"
