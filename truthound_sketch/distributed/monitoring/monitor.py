"""The monitoring bus: what engines call while they profile, and what callbacks receive.

Engines report a run through a handful of keyword-only methods (``run_started``,
``partition_submitted`` ... ``run_finished``). The monitor keeps task, progress, health and
metrics bookkeeping up to date from them (as :class:`MonitorConfig` allows) and publishes one
:class:`MonitorEvent` per observation to its callbacks, in order. Bus methods are thread-safe,
cheap when nothing listens, and never raise into the engine: a failing callback is logged and
counted.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from truthound_sketch.errors import ConfigError, TruthoundSketchError

from .callbacks import (AsyncMonitorCallback, CallbackLike, callback_counts, close_callback, deliver,
                        flush_callback)
from .config import MonitorConfig
from .events import EventSeverity, MonitorEvent, MonitorEventType
from .health import HealthStatus, WorkerHealthMonitor
from .metrics import DistributedMetricsCollector
from .progress import AggregatedProgress, DistributedProgressAggregator, milestone_event
from .tasks import TaskState, TaskTracker

__all__ = ["DistributedMonitor"]

_log = logging.getLogger(__name__)
_TASK_TYPE = "profile_partition"
E = MonitorEventType


@dataclass
class _Run:
    backend: str | None = None
    source: str | None = None
    num_partitions: int = 0
    total_rows: int | None = None
    started_at: float | None = None  # epoch
    t0: float | None = None  # monotonic
    active: bool = False
    rows: int = 0
    duration_seconds: float | None = None
    error: str | None = None
    aggregation: dict[str, Any] = field(default_factory=dict)


class DistributedMonitor:
    """Observes distributed profiling runs.

    >>> monitor = DistributedMonitor(MonitorConfig.standard(), callbacks=[print])  # doctest: +SKIP
    >>> monitor.run_started(backend="local", num_partitions=2)                     # doctest: +SKIP

    Parts (each None when switched off in the config): :attr:`task_tracker`,
    :attr:`progress_aggregator`, :attr:`health_monitor`, :attr:`metrics_collector`.
    """

    def __init__(self, config: MonitorConfig | None = None, callbacks: Iterable[CallbackLike] | None = None,
                 *, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config = config or MonitorConfig()
        self._clock = clock
        self._lock = threading.RLock()
        self._dispatch_lock = threading.RLock()
        self._sequence = 0
        self._callbacks: list[CallbackLike] = self._configured_callbacks() + list(callbacks or ())
        self._events: collections.deque[MonitorEvent] = collections.deque(maxlen=config.event_history_size)
        self._callback_errors = 0
        self._run = _Run()
        self._workers_seen: set[str] = set()
        self._adapters: list[Any] = []
        self._watchdog: threading.Thread | None = None
        self._watchdog_stop = threading.Event()
        self.prometheus_error: str | None = None
        on = config.enable_monitoring

        tracker_cfg = config.task_tracker
        if not config.enable_task_tracking:  # retry bookkeeping stays; history and progress go
            tracker_cfg = dataclasses.replace(tracker_cfg, max_history_size=0, enable_progress_tracking=False)
        self.task_tracker = TaskTracker(tracker_cfg, clock=clock)
        self.progress_aggregator = (DistributedProgressAggregator(milestone_interval=10, clock=clock)
                                    if on and config.enable_progress_aggregation else None)
        self.health_monitor = (WorkerHealthMonitor(config.health_check, on_event=self.publish, clock=clock)
                               if on and config.enable_health_monitoring else None)
        self.metrics_collector = (DistributedMetricsCollector(config.metrics)
                                  if on and config.enable_metrics_collection and config.metrics.enable_metrics
                                  else None)
        if self.metrics_collector is not None:
            m = self.metrics_collector
            for name in ("tasks_submitted", "tasks_completed", "tasks_failed", "tasks_retried",
                         "tasks_timed_out", "rows_processed", "runs_started", "workers_lost"):
                m.increment_counter(name, 0)
            m.register_value("dropped_events", lambda: self._counts()[0], kind="counter",
                             doc="Events that callbacks accepted but never delivered.")
            m.register_value("callback_errors", lambda: self._counts()[1], kind="counter",
                             doc="Callback deliveries that raised or failed.")
            m.register_value("workers", self._live_workers, doc="Workers currently known and not lost.")
            m.register_value("run_active", lambda: float(self._run.active), doc="1 while a run is in progress.")
            m.register_value("progress_percent", self._percent, doc="Progress of the current run (0-100).")

    # ================================================================= the bus
    def run_started(self, *, backend: str, num_partitions: int, total_rows: int | None = None,
                    source: str | None = None) -> None:
        """A run begins: resets per-run state and starts the Prometheus endpoint if configured."""
        try:
            with self._lock:
                if self._run.active:
                    _log.warning("run_started() while a run is active; the earlier run is abandoned")
                self._run = _Run(backend=backend, source=source, num_partitions=int(num_partitions),
                                 total_rows=total_rows, started_at=time.time(), t0=self._clock(), active=True)
                self.task_tracker.reset()
                self._workers_seen.clear()
            if not self.config.enable_monitoring:
                return
            if self.progress_aggregator is not None:
                self.progress_aggregator.reset()
                self.progress_aggregator.set_total_partitions(num_partitions)
            if self.health_monitor is not None:
                self.health_monitor.reset()
            if self.metrics_collector is not None:
                self.metrics_collector.clear_partitions()
                self.metrics_collector.increment_counter("runs_started")
                if self.config.metrics.enable_prometheus:
                    self._start_prometheus()
            self._emit(E.MONITOR_START, f"{backend} run started: {num_partitions} partitions"
                       + (f" of {source}" if source else ""),
                       data={"backend": backend, "num_partitions": num_partitions,
                             "total_rows": total_rows, "source": source,
                             "prometheus_port": self.prometheus_port})
            self._start_watchdog()
        except Exception:
            _log.exception("monitor failed in run_started")

    def partition_submitted(self, partition_id: int, *, total_rows: int | None = None) -> str:
        """A partition's task was handed to the engine; returns its task id. Submitting a
        partition again after a failure is a retry of the same task."""
        try:
            task, retried = self.task_tracker.submit(_TASK_TYPE, partition_id, total_rows=total_rows,
                                                     enforce_retry_limit=False)
        except Exception:
            _log.exception("monitor failed in partition_submitted")
            return self.task_tracker.partition_task_id(partition_id, _TASK_TYPE)
        if not self.config.enable_monitoring:
            return task.task_id
        try:
            over = task.retry_count > self.task_tracker.config.max_retries
            if over:
                _log.warning("partition %s submitted for retry %d, beyond max_retries=%d",
                             partition_id, task.retry_count, self.task_tracker.config.max_retries)
            if self.progress_aggregator is not None:
                self.progress_aggregator.register_partition(partition_id, total_rows)
            if self.metrics_collector is not None:
                self.metrics_collector.increment_counter("tasks_submitted")
                if retried:
                    self.metrics_collector.increment_counter("tasks_retried")
            text = f"partition {partition_id} submitted"
            if task.retry_count:
                text += f" (retry {task.retry_count} of {self.task_tracker.config.max_retries})"
            self._emit(E.TASK_SUBMITTED, text, EventSeverity.WARNING if over else EventSeverity.INFO,
                       task_id=task.task_id, partition_id=partition_id,
                       data={"total_rows": total_rows, "retry_count": task.retry_count,
                             "exceeded_max_retries": over})
        except Exception:
            _log.exception("monitor failed in partition_submitted")
        return task.task_id

    def partition_started(self, partition_id: int, *, worker_id: str) -> None:
        try:
            task_id = self._task_id(partition_id)
            self.task_tracker.start_task(task_id, worker_id)
            if not self.config.enable_monitoring:
                return
            if self.progress_aggregator is not None:
                self.progress_aggregator.start_partition(partition_id)
            self._emit(E.TASK_STARTED, f"partition {partition_id} started on {worker_id}",
                       task_id=task_id, partition_id=partition_id, worker_id=worker_id)
            self._emit(E.PARTITION_START, f"partition {partition_id} started",
                       task_id=task_id, partition_id=partition_id, worker_id=worker_id)
            if self.health_monitor is not None:
                self.health_monitor.record_task_start(worker_id)
            else:
                self._first_sight(worker_id)
        except Exception:
            _log.exception("monitor failed in partition_started")

    def partition_progress(self, partition_id: int, *, rows_processed: int, progress: float | None = None) -> None:
        if not self.config.enable_monitoring:
            return
        try:
            task_id = self._task_id(partition_id)
            self.task_tracker.update_progress(task_id, progress, rows_processed)
            task = self.task_tracker.get_task(task_id)
            fraction = progress if progress is not None else (task.progress if task is not None else None)
            crossed: list[int] = []
            snap = None
            if self.progress_aggregator is not None:
                crossed = self.progress_aggregator.update_partition(partition_id, progress, rows_processed)
                snap = self.progress_aggregator.last_progress
            if self.metrics_collector is not None and fraction is not None:
                self.metrics_collector.record_partition_progress(partition_id, fraction)
            worker = task.worker_id if task is not None else None
            self._emit(E.TASK_PROGRESS, f"partition {partition_id}: {rows_processed:,} rows",
                       EventSeverity.DEBUG, task_id=task_id, partition_id=partition_id, worker_id=worker,
                       data={"rows_processed": rows_processed, "progress": fraction})
            self._emit(E.PROGRESS_UPDATE, self._progress_text(snap), EventSeverity.DEBUG,
                       partition_id=partition_id, data=self._progress_data(snap))
            self._milestones(crossed, snap)
            if self.health_monitor is not None and worker is not None:
                self.health_monitor.record_task_progress(worker)
        except Exception:
            _log.exception("monitor failed in partition_progress")

    def partition_completed(self, partition_id: int, *, rows: int, duration_seconds: float,
                            worker_id: str | None = None) -> None:
        try:
            task_id = self._task_id(partition_id)
            task = self.task_tracker.complete_task(task_id, rows_processed=rows,
                                                   duration_seconds=duration_seconds)
            worker = worker_id or task.worker_id
            with self._lock:
                self._run.rows += int(rows)
            if not self.config.enable_monitoring:
                return
            crossed: list[int] = []
            snap = None
            if self.progress_aggregator is not None:
                crossed = self.progress_aggregator.complete_partition(partition_id, rows)
                snap = self.progress_aggregator.last_progress
            m = self.metrics_collector
            if m is not None:
                m.increment_counter("tasks_completed")
                m.increment_counter("rows_processed", int(rows))
                m.record_task_duration(_TASK_TYPE, duration_seconds)
                m.record_partition_progress(partition_id, 1.0)
            data = {"rows": int(rows), "duration_seconds": float(duration_seconds),
                    "retry_count": task.retry_count}
            self._emit(E.TASK_COMPLETED, f"partition {partition_id} done: {rows:,} rows in {duration_seconds:.2f}s",
                       task_id=task_id, partition_id=partition_id, worker_id=worker, data=data)
            self._emit(E.PARTITION_COMPLETE, f"partition {partition_id} complete",
                       task_id=task_id, partition_id=partition_id, worker_id=worker, data=dict(data))
            self._milestones(crossed, snap)
            if worker is not None:
                if self.health_monitor is not None:
                    self.health_monitor.record_task_complete(worker, duration_seconds, success=True)
                else:
                    self._first_sight(worker)
        except Exception:
            _log.exception("monitor failed in partition_completed")

    def partition_failed(self, partition_id: int, *, error: BaseException | str, worker_id: str | None = None,
                         will_retry: bool = False) -> None:
        """An attempt failed. With ``will_retry`` (and retries left) the task goes to RETRYING;
        past ``max_retries`` it fails for good whatever ``will_retry`` says."""
        try:
            task_id = self._task_id(partition_id)
            task = self.task_tracker.fail_task(task_id, error, will_retry=will_retry)
            retrying = task.state == TaskState.RETRYING
            if will_retry and not retrying:
                _log.warning("partition %s: no retry left (max_retries=%d); it fails for good",
                             partition_id, self.task_tracker.config.max_retries)
            if not self.config.enable_monitoring:
                return
            worker = worker_id or task.worker_id
            if self.progress_aggregator is not None:
                self.progress_aggregator.fail_partition(partition_id)
            if self.metrics_collector is not None:
                self.metrics_collector.increment_counter("tasks_failed")
                if retrying:
                    self.metrics_collector.increment_counter("tasks_retried")
            severity = EventSeverity.WARNING if retrying else EventSeverity.ERROR
            data = {"error": task.error, "will_retry": retrying, "retry_count": task.retry_count,
                    "max_retries": self.task_tracker.config.max_retries}
            self._emit(E.TASK_FAILED, f"partition {partition_id} failed: {task.error}", severity,
                       task_id=task_id, partition_id=partition_id, worker_id=worker, data=data)
            self._emit(E.PARTITION_ERROR, f"partition {partition_id} error: {task.error}", severity,
                       task_id=task_id, partition_id=partition_id, worker_id=worker, data=dict(data))
            if retrying:
                self._emit(E.TASK_RETRYING, f"partition {partition_id} will be retried "
                           f"({task.retry_count} of {self.task_tracker.config.max_retries})",
                           EventSeverity.WARNING, task_id=task_id, partition_id=partition_id,
                           worker_id=worker, data=dict(data))
            if worker is not None:
                if self.health_monitor is not None:
                    self.health_monitor.record_task_complete(worker, 0.0, success=False)
                else:
                    self._first_sight(worker)
        except Exception:
            _log.exception("monitor failed in partition_failed")

    def should_retry(self, partition_id: int) -> bool:
        """Whether a failing partition has retries left (``TaskTrackerConfig.max_retries``)."""
        try:
            return self.task_tracker.can_retry(self.task_tracker.partition_task_id(partition_id, _TASK_TYPE))
        except Exception:
            _log.exception("monitor failed in should_retry")
            return False

    def worker_heartbeat(self, worker_id: str, *, cpu_percent: float | None = None,
                         memory_percent: float | None = None, active_tasks: int = 0) -> None:
        if not self.config.enable_monitoring:
            return
        try:
            if self.health_monitor is not None:
                self.health_monitor.record_heartbeat(worker_id, cpu_percent, memory_percent, active_tasks)
            else:
                self._first_sight(worker_id)
            m = self.metrics_collector
            if m is not None:
                m.record_worker_metric(worker_id, "cpu_percent", cpu_percent)
                m.record_worker_metric(worker_id, "memory_percent", memory_percent)
                m.record_worker_metric(worker_id, "active_tasks", active_tasks)
        except Exception:
            _log.exception("monitor failed in worker_heartbeat")

    def worker_lost(self, worker_id: str, *, reason: str) -> None:
        if not self.config.enable_monitoring:
            return
        try:
            if self.health_monitor is not None:
                self.health_monitor.mark_lost(worker_id, reason)
            else:
                with self._lock:
                    self._workers_seen.discard(worker_id)
                self._emit(E.WORKER_UNHEALTHY, f"worker {worker_id} CRITICAL: lost: {reason}",
                           EventSeverity.CRITICAL, worker_id=worker_id,
                           data={"status": HealthStatus.CRITICAL.name, "reason": reason})
                self._emit(E.WORKER_UNREGISTERED, f"worker {worker_id} lost: {reason}",
                           EventSeverity.WARNING, worker_id=worker_id, data={"reason": reason, "lost": True})
            if self.metrics_collector is not None:
                self.metrics_collector.increment_counter("workers_lost")
                self.metrics_collector.remove_worker(worker_id)
        except Exception:
            _log.exception("monitor failed in worker_lost")

    def worker_unregistered(self, worker_id: str, *, reason: str = "left") -> None:
        """A worker left in an orderly way (pool shut down, cluster scaled down): no alarm."""
        if not self.config.enable_monitoring:
            return
        try:
            if self.health_monitor is not None:
                self.health_monitor.unregister_worker(worker_id, reason)
            else:
                with self._lock:
                    self._workers_seen.discard(worker_id)
                self._emit(E.WORKER_UNREGISTERED, f"worker {worker_id} unregistered: {reason}",
                           worker_id=worker_id, data={"reason": reason})
            if self.metrics_collector is not None:
                self.metrics_collector.remove_worker(worker_id)
        except Exception:
            _log.exception("monitor failed in worker_unregistered")

    def aggregation_completed(self, *, partials: int, duration_seconds: float) -> None:
        if not self.config.enable_monitoring:
            return
        try:
            with self._lock:
                self._run.aggregation = {"partials": int(partials), "duration_seconds": float(duration_seconds)}
            if self.metrics_collector is not None:
                self.metrics_collector.increment_counter("aggregations")
                self.metrics_collector.increment_counter("aggregation_seconds", float(duration_seconds))
            self._emit(E.AGGREGATION_COMPLETE, f"merged {partials} partial profiles in {duration_seconds:.3f}s",
                       data={"partials": int(partials), "duration_seconds": float(duration_seconds)})
        except Exception:
            _log.exception("monitor failed in aggregation_completed")

    def run_finished(self, *, rows: int, duration_seconds: float, error: BaseException | None = None) -> None:
        """The run ended: publishes MONITOR_STOP, flushes callbacks (each waits at most its own
        flush timeout, ``CallbackConfig.flush_timeout_seconds`` for configured ones) and stops
        the Prometheus endpoint unless ``MetricsConfig.keep_prometheus_server``."""
        try:
            with self._lock:
                self._run.active = False
                self._run.duration_seconds = float(duration_seconds)
                self._run.error = None if error is None else f"{type(error).__name__}: {error}"
                self._run.rows = max(self._run.rows, int(rows))
            self._stop_watchdog()
            if not self.config.enable_monitoring:
                return
            if self.health_monitor is not None or self.task_tracker.config.timeout_seconds:
                self.check_now()
            stats = self.get_statistics()
            summary = {k: stats[k] for k in ("tasks_completed", "tasks_failed", "tasks_retried",
                                             "avg_task_duration", "success_rate", "dropped_events")}
            text = (f"run finished: {rows:,} rows in {duration_seconds:.2f}s"
                    if error is None else f"run failed after {duration_seconds:.2f}s: {self._run.error}")
            self._emit(E.MONITOR_STOP, text, EventSeverity.INFO if error is None else EventSeverity.ERROR,
                       data={"rows": int(rows), "duration_seconds": float(duration_seconds),
                             "error": self._run.error, **summary})
            if self.metrics_collector is not None:
                self.metrics_collector.collect_snapshot(force=True)
            self.flush()
            if self.metrics_collector is not None and not self.config.metrics.keep_prometheus_server:
                self.metrics_collector.stop_http_server()
        except Exception:
            _log.exception("monitor failed in run_finished")

    # ================================================================= callbacks and events
    def publish(self, event: MonitorEvent) -> None:
        """Dispatch an event to every callback, in order (numbering it)."""
        if not self.config.enable_monitoring:
            return
        with self._dispatch_lock:
            self._sequence += 1
            if event.sequence:  # already numbered elsewhere: number a copy
                event = dataclasses.replace(event, sequence=self._sequence)
            else:
                event.sequence = self._sequence
            self._events.append(event)
            for callback in self._callbacks:
                if not deliver(callback, event):
                    self._callback_errors += 1

    def add_callback(self, callback: CallbackLike) -> None:
        with self._dispatch_lock:
            self._callbacks = [*self._callbacks, callback]

    def remove_callback(self, callback: CallbackLike) -> None:
        with self._dispatch_lock:
            self._callbacks = [c for c in self._callbacks if c is not callback]

    @property
    def callbacks(self) -> list[CallbackLike]:
        return list(self._callbacks)

    @property
    def events(self) -> list[MonitorEvent]:
        """The most recent events, oldest first (at most ``MonitorConfig.event_history_size``)."""
        with self._dispatch_lock:
            return list(self._events)

    def flush(self, timeout: float | None = None) -> bool:
        """Flush every callback. With ``timeout``, wait at most that long in all; without, each
        callback waits at most its own flush timeout (``run_finished`` does this)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        ok = True
        for callback in self._callbacks:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            ok = flush_callback(callback, left) and ok
        return ok

    # ================================================================= adapters, checks, lifecycle
    def attach_adapter(self, adapter: Any) -> Any:
        """Attach an engine adapter: it polls its engine and reports workers on this bus."""
        with self._lock:
            if adapter not in self._adapters:
                self._adapters.append(adapter)
        if getattr(adapter, "monitor", None) is not self:
            adapter.attach(self)
        return adapter

    @property
    def adapters(self) -> list[Any]:
        return list(self._adapters)

    def check_now(self) -> None:
        """Look for silent or stalled workers and timed-out tasks now (the running monitor
        also does this every ``HealthCheckConfig.check_interval_seconds``)."""
        if self.health_monitor is not None:
            self.health_monitor.check_workers()
        for task in self.task_tracker.check_timeouts():
            pid = task.partition_id
            if self.progress_aggregator is not None and pid is not None:
                self.progress_aggregator.fail_partition(pid)
            if self.metrics_collector is not None:
                self.metrics_collector.increment_counter("tasks_failed")
                self.metrics_collector.increment_counter("tasks_timed_out")
            data = {"error": task.error, "timed_out": True, "will_retry": False,
                    "retry_count": task.retry_count}
            self._emit(E.TASK_FAILED, f"partition {pid} {task.error}", EventSeverity.ERROR,
                       task_id=task.task_id, partition_id=pid, worker_id=task.worker_id, data=data)
            self._emit(E.PARTITION_ERROR, f"partition {pid} error: {task.error}", EventSeverity.ERROR,
                       task_id=task.task_id, partition_id=pid, worker_id=task.worker_id, data=dict(data))
        if self.metrics_collector is not None:
            self.metrics_collector.collect_snapshot()

    @property
    def prometheus_port(self) -> int | None:
        """The bound port of the Prometheus endpoint while it runs, else None."""
        return self.metrics_collector.http_port if self.metrics_collector is not None else None

    def start_prometheus_server(self) -> int:
        """Start the Prometheus endpoint now (normally done by ``run_started``); returns the port.
        Raises :class:`~truthound_sketch.errors.ConfigError` if the address cannot be bound."""
        if self.metrics_collector is None:
            msg = "Prometheus needs metrics: set MonitorConfig.enable_metrics_collection and MetricsConfig.enable_metrics"
            raise ConfigError(msg)
        return self.metrics_collector.start_http_server()

    def close(self) -> None:
        """Stop adapters, the watchdog and the Prometheus endpoint, and close every callback."""
        for adapter in list(self._adapters):
            try:
                adapter.stop()
            except Exception:
                _log.exception("stopping adapter %r failed", adapter)
        self._stop_watchdog()
        if self.metrics_collector is not None:
            self.metrics_collector.stop_http_server()
        for callback in self._callbacks:
            close_callback(callback)

    def __enter__(self) -> DistributedMonitor:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # ================================================================= statistics
    def get_statistics(self) -> dict[str, Any]:
        """Numbers of the current (or last) run; see docs/monitoring.md for each key."""
        stats = self.task_tracker.statistics()
        with self._lock:
            run = dataclasses.replace(self._run)
        if run.active and run.t0 is not None:
            elapsed = self._clock() - run.t0
        else:
            elapsed = run.duration_seconds or 0.0
        dropped, errors = self._counts()
        stats.update({
            "backend": run.backend,
            "source": run.source,
            "running": run.active,
            "num_partitions": run.num_partitions,
            "elapsed_seconds": elapsed,
            "rows_processed": run.rows,
            "rows_per_second": run.rows / elapsed if elapsed > 0 else 0.0,
            "workers": self._live_workers(),
            "dropped_events": dropped,
            "callback_errors": errors,
            "events_published": self._sequence,
            "aggregation": dict(run.aggregation),
            "error": run.error,
            "prometheus_port": self.prometheus_port,
        })
        if self.progress_aggregator is not None:
            p = self.progress_aggregator.get_progress()
            stats.update({"progress_percent": p.percent, "completed_partitions": p.completed_partitions,
                          "eta_seconds": None if math.isinf(p.estimated_remaining_seconds)
                          else p.estimated_remaining_seconds})
        if self.health_monitor is not None:
            h = self.health_monitor.get_overall_health()
            stats.update({"health": h.status.name, "unhealthy_workers": h.unhealthy_workers,
                          "workers_lost": h.lost})
        if self.metrics_collector is not None:
            m = self.metrics_collector.get_metrics()
            stats.update({"task_duration_p50": m.task_duration_p50, "task_duration_p95": m.task_duration_p95,
                          "task_duration_p99": m.task_duration_p99,
                          "max_task_duration": m.max_task_duration_seconds})
        return stats

    # ================================================================= internals
    def _emit(self, kind: MonitorEventType, message: str, severity: EventSeverity = EventSeverity.INFO, *,
              task_id: str | None = None, partition_id: int | None = None, worker_id: str | None = None,
              data: dict[str, Any] | None = None) -> None:
        if not self._callbacks and self.config.event_history_size == 0:
            with self._dispatch_lock:  # nothing listens: count it, build nothing
                self._sequence += 1
            return
        self.publish(MonitorEvent(kind, message, severity, data=data or {}, task_id=task_id,
                                  partition_id=partition_id, worker_id=worker_id))

    def _task_id(self, partition_id: int) -> str:
        task_id = self.task_tracker.partition_task_id(partition_id, _TASK_TYPE)
        if not self.task_tracker.has_task(task_id):  # the engine skipped partition_submitted
            self.task_tracker.submit(_TASK_TYPE, partition_id, enforce_retry_limit=False)
        return task_id

    def _first_sight(self, worker_id: str) -> None:
        with self._lock:
            if worker_id in self._workers_seen:
                return
            self._workers_seen.add(worker_id)
        self._emit(E.WORKER_REGISTERED, f"worker {worker_id} registered", worker_id=worker_id)

    def _live_workers(self) -> int:
        if self.health_monitor is not None:
            return self.health_monitor.get_overall_health().total_workers
        with self._lock:
            return len(self._workers_seen)

    def _percent(self) -> float:
        if self.progress_aggregator is None:
            return 0.0
        return self.progress_aggregator.get_progress().percent

    def _counts(self) -> tuple[int, int]:
        dropped = errors = 0
        for callback in self._callbacks:
            d, e = callback_counts(callback)
            dropped += d
            errors += e
        return dropped, errors + self._callback_errors

    def _milestones(self, crossed: list[int], snap: AggregatedProgress | None) -> None:
        for m in crossed:
            if snap is not None:
                event = milestone_event(m, snap)
                self._emit(event.event_type, event.message, event.severity, data=event.data)

    @staticmethod
    def _progress_data(snap: AggregatedProgress | None) -> dict[str, Any]:
        if snap is None:
            return {}
        eta = snap.estimated_remaining_seconds
        return {"percent": snap.percent, "completed_partitions": snap.completed_partitions,
                "total_partitions": snap.total_partitions, "rows_processed": snap.rows_processed,
                "rows_per_second": snap.rows_per_second, "eta_seconds": None if math.isinf(eta) else eta}

    @staticmethod
    def _progress_text(snap: AggregatedProgress | None) -> str:
        if snap is None:
            return "progress"
        return f"{snap.percent:.1f}% ({snap.completed_partitions}/{snap.total_partitions} partitions)"

    def _configured_callbacks(self) -> list[CallbackLike]:
        cc = self.config.callbacks
        built: list[CallbackLike] = []
        if cc.console:
            from .console import ConsoleMonitorCallback

            built.append(ConsoleMonitorCallback(show_progress=cc.console_show_progress,
                                                use_colors=cc.console_use_colors))
        if cc.logging:
            from .outputs import LoggingMonitorCallback

            built.append(LoggingMonitorCallback(cc.logger_name, self.config.log_level_number))
        if cc.file_path:
            from .outputs import FileMonitorCallback

            built.append(FileMonitorCallback(cc.file_path, cc.file_format))
        if cc.async_dispatch:
            built = [AsyncMonitorCallback(cb, cc.async_buffer_size,
                                          flush_timeout_seconds=cc.flush_timeout_seconds) for cb in built]
        if cc.webhook_url:
            from .webhook import WebhookMonitorCallback

            built.append(WebhookMonitorCallback(cc.webhook_url, cc.webhook_headers,
                                                event_filter=cc.webhook_min_severity,
                                                flush_timeout_seconds=cc.flush_timeout_seconds))
        return built

    def _start_prometheus(self) -> None:
        try:
            port = self.metrics_collector.start_http_server()
            self.prometheus_error = None
            _log.info("Prometheus metrics on http://%s:%d/metrics", self.config.metrics.prometheus_host, port)
        except TruthoundSketchError as exc:
            self.prometheus_error = str(exc)
            _log.error("%s", exc)

    def _start_watchdog(self) -> None:
        interval = []
        if self.health_monitor is not None:
            interval.append(self.config.health_check.check_interval_seconds)
        if self.metrics_collector is not None:
            interval.append(self.config.metrics.collection_interval_seconds)
        if self.task_tracker.config.timeout_seconds:
            interval.append(max(0.05, min(5.0, self.task_tracker.config.timeout_seconds / 4)))
        if not interval:
            return
        self._stop_watchdog()
        self._watchdog_stop = stop = threading.Event()
        period = min(interval)

        def watch() -> None:
            while not stop.wait(period):
                try:
                    self.check_now()
                except Exception:
                    _log.exception("monitor health check failed")

        self._watchdog = threading.Thread(target=watch, name="monitor-watchdog", daemon=True)
        self._watchdog.start()

    def _stop_watchdog(self) -> None:
        self._watchdog_stop.set()
        thread = self._watchdog
        self._watchdog = None
        if thread is not None and thread is not threading.current_thread():
            thread.join(5.0)
