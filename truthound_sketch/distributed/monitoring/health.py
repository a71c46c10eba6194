"""Worker health: heartbeats, stalls, resource thresholds and error rates.

Each worker has one :class:`HealthStatus`, the worst of what its last readings say:

* CRITICAL  - memory at ``memory_critical_percent``, error rate at ``error_rate_critical``,
  or the worker was lost (its process died, it left the cluster);
* UNHEALTHY - no heartbeat for ``heartbeat_timeout_seconds`` (only for workers that send
  heartbeats), or stalled: running tasks with no task activity for ``stall_threshold_seconds``;
* DEGRADED  - memory at ``memory_warning_percent``, CPU at ``cpu_warning_percent`` or error rate
  at ``error_rate_warning``;
* HEALTHY   - none of the above.

Every change of status is published as an event: WORKER_HEALTHY (first reading is healthy),
WORKER_UNHEALTHY (worse; severity WARNING, ERROR or CRITICAL), WORKER_STALLED, WORKER_RECOVERED.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from .config import HealthCheckConfig
from .events import EventSeverity, MonitorEvent, MonitorEventType

__all__ = ["HealthStatus", "WorkerHealth", "SystemHealth", "WorkerHealthMonitor"]

_log = logging.getLogger(__name__)


class HealthStatus(enum.IntEnum):
    """Ordered: ``HEALTHY < DEGRADED < UNHEALTHY < CRITICAL``."""

    HEALTHY = 0
    DEGRADED = 1
    UNHEALTHY = 2
    CRITICAL = 3

    def __str__(self) -> str:
        return self.name


_SEVERITY = {
    HealthStatus.HEALTHY: EventSeverity.INFO,
    HealthStatus.DEGRADED: EventSeverity.WARNING,
    HealthStatus.UNHEALTHY: EventSeverity.ERROR,
    HealthStatus.CRITICAL: EventSeverity.CRITICAL,
}


@dataclass
class WorkerHealth:
    """What is known about one worker. Times are seconds since the epoch."""

    worker_id: str
    status: HealthStatus = HealthStatus.HEALTHY
    issues: list[str] = field(default_factory=list)
    registered_at: float = 0.0
    last_heartbeat: float | None = None
    seconds_since_heartbeat: float | None = None
    cpu_percent: float | None = None
    memory_percent: float | None = None
    active_tasks: int = 0
    tasks_completed: int = 0
    tasks_failed: int = 0
    avg_task_duration_seconds: float = 0.0
    stalled: bool = False
    lost: bool = False
    lost_reason: str | None = None

    @property
    def error_rate(self) -> float:
        done = self.tasks_completed + self.tasks_failed
        return self.tasks_failed / done if done else 0.0


@dataclass(frozen=True)
class SystemHealth:
    """Health of all current workers (lost workers are counted apart)."""

    status: HealthStatus
    total_workers: int
    healthy: int
    degraded: int
    unhealthy: int
    critical: int
    lost: int
    unhealthy_workers: list[str]


@dataclass
class _Worker:
    health: WorkerHealth
    hb_mono: float | None = None  # monotonic time of the last heartbeat
    activity_mono: float = 0.0  # monotonic time of the last task activity
    running: int = 0  # tasks the monitor saw start and not finish
    duration_sum: float = 0.0
    evaluated: bool = False


class WorkerHealthMonitor:
    """Thread-safe health bookkeeping; events go to ``on_event`` (called outside the lock)."""

    def __init__(self, config: HealthCheckConfig | None = None, *,
                 on_event: Callable[[MonitorEvent], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config or HealthCheckConfig()
        self.on_event = on_event
        self._clock = clock
        self._lock = threading.Lock()
        self._workers: dict[str, _Worker] = {}

    # ---------------------------------------------------------------- recording
    def register_worker(self, worker_id: str, **info) -> bool:
        """Start tracking ``worker_id``; returns False if it was already tracked."""
        events: list[MonitorEvent] = []
        with self._lock:
            created = self._ensure(worker_id, events, info)
        self._emit(events)
        return created

    def unregister_worker(self, worker_id: str, reason: str = "left") -> None:
        with self._lock:
            worker = self._workers.pop(worker_id, None)
        if worker is not None:
            self._emit([MonitorEvent(MonitorEventType.WORKER_UNREGISTERED,
                                     f"worker {worker_id} unregistered: {reason}",
                                     EventSeverity.INFO, worker_id=worker_id,
                                     data={"reason": reason})])

    def record_heartbeat(self, worker_id: str, cpu_percent: float | None = None,
                         memory_percent: float | None = None, active_tasks: int = 0) -> HealthStatus:
        events: list[MonitorEvent] = []
        with self._lock:
            self._ensure(worker_id, events, {})
            worker = self._workers[worker_id]
            h = worker.health
            worker.hb_mono = self._clock()
            h.last_heartbeat = time.time()
            h.cpu_percent = None if cpu_percent is None else float(cpu_percent)
            h.memory_percent = None if memory_percent is None else float(memory_percent)
            if active_tasks > h.active_tasks and worker.running == 0:
                worker.activity_mono = worker.hb_mono  # new work reported by the engine
            h.active_tasks = int(active_tasks)
            status = self._evaluate(worker, events)
        self._emit(events)
        return status

    def record_task_start(self, worker_id: str) -> None:
        self._activity(worker_id, running_delta=1)

    def record_task_progress(self, worker_id: str) -> None:
        self._activity(worker_id, running_delta=0)

    def record_task_complete(self, worker_id: str, duration_seconds: float = 0.0,
                             success: bool = True) -> None:
        self._activity(worker_id, running_delta=-1, finished=(success, duration_seconds))

    def mark_lost(self, worker_id: str, reason: str) -> None:
        """The worker is gone (process died, node left): CRITICAL, then unregistered."""
        events: list[MonitorEvent] = []
        with self._lock:
            self._ensure(worker_id, events, {})
            worker = self._workers[worker_id]
            if worker.health.lost:
                return
            worker.health.lost = True
            worker.health.lost_reason = reason
            self._evaluate(worker, events)
            events.append(MonitorEvent(MonitorEventType.WORKER_UNREGISTERED,
                                       f"worker {worker_id} lost: {reason}", EventSeverity.WARNING,
                                       worker_id=worker_id, data={"reason": reason, "lost": True}))
        self._emit(events)

    # ---------------------------------------------------------------- periodic checks
    def check_workers(self) -> list[WorkerHealth]:
        """Re-evaluate every worker against the clock (silent and stalled workers); returns
        the workers that are now UNHEALTHY or worse."""
        events: list[MonitorEvent] = []
        with self._lock:
            for worker in self._workers.values():
                if not worker.health.lost:
                    self._evaluate(worker, events)
            bad = [self._copy(w) for w in self._workers.values()
                   if not w.health.lost and w.health.status >= HealthStatus.UNHEALTHY]
        self._emit(events)
        return bad

    def check_stalled_workers(self) -> list[str]:
        """Ids of workers that are stalled now (re-evaluates first)."""
        self.check_workers()
        with self._lock:
            return [wid for wid, w in self._workers.items() if w.health.stalled and not w.health.lost]

    # ---------------------------------------------------------------- reading
    def get_worker_health(self, worker_id: str) -> WorkerHealth | None:
        with self._lock:
            worker = self._workers.get(worker_id)
            return self._copy(worker) if worker is not None else None

    def get_all_workers(self) -> list[WorkerHealth]:
        with self._lock:
            return [self._copy(w) for w in self._workers.values()]

    def get_unhealthy_workers(self) -> list[WorkerHealth]:
        """Current (not lost) workers that are UNHEALTHY or CRITICAL."""
        with self._lock:
            return [self._copy(w) for w in self._workers.values()
                    if not w.health.lost and w.health.status >= HealthStatus.UNHEALTHY]

    def get_overall_health(self) -> SystemHealth:
        with self._lock:
            live = [w.health for w in self._workers.values() if not w.health.lost]
            counts = {s: sum(1 for h in live if h.status == s) for s in HealthStatus}
            return SystemHealth(
                status=max((h.status for h in live), default=HealthStatus.HEALTHY),
                total_workers=len(live),
                healthy=counts[HealthStatus.HEALTHY],
                degraded=counts[HealthStatus.DEGRADED],
                unhealthy=counts[HealthStatus.UNHEALTHY],
                critical=counts[HealthStatus.CRITICAL],
                lost=sum(1 for w in self._workers.values() if w.health.lost),
                unhealthy_workers=[h.worker_id for h in live if h.status >= HealthStatus.UNHEALTHY],
            )

    def reset(self) -> None:
        with self._lock:
            self._workers.clear()

    # ---------------------------------------------------------------- internals
    def _ensure(self, worker_id: str, events: list[MonitorEvent], info: dict) -> bool:
        worker = self._workers.get(worker_id)
        if worker is not None and not worker.health.lost:
            return False
        now = self._clock()
        self._workers[worker_id] = _Worker(WorkerHealth(worker_id, registered_at=time.time()),
                                           activity_mono=now)
        events.append(MonitorEvent(MonitorEventType.WORKER_REGISTERED,
                                   f"worker {worker_id} registered", EventSeverity.INFO,
                                   worker_id=worker_id, data=dict(info)))
        return True

    def _activity(self, worker_id: str, *, running_delta: int,
                  finished: tuple[bool, float] | None = None) -> None:
        events: list[MonitorEvent] = []
        with self._lock:
            self._ensure(worker_id, events, {})
            worker = self._workers[worker_id]
            worker.activity_mono = self._clock()
            worker.running = max(0, worker.running + running_delta)
            if finished is not None:
                success, duration = finished
                h = worker.health
                if success:
                    h.tasks_completed += 1
                    worker.duration_sum += float(duration)
                    h.avg_task_duration_seconds = worker.duration_sum / h.tasks_completed
                else:
                    h.tasks_failed += 1
            self._evaluate(worker, events)
        self._emit(events)

    def _evaluate(self, worker: _Worker, events: list[MonitorEvent]) -> HealthStatus:
        cfg = self.config
        h = worker.health
        now = self._clock()
        issues: list[tuple[HealthStatus, str]] = []
        if h.lost:
            issues.append((HealthStatus.CRITICAL, f"lost: {h.lost_reason}"))
        mem = h.memory_percent
        if mem is not None and mem >= cfg.memory_critical_percent:
            issues.append((HealthStatus.CRITICAL, f"memory {mem:.0f}% >= {cfg.memory_critical_percent:g}%"))
        elif mem is not None and mem >= cfg.memory_warning_percent:
            issues.append((HealthStatus.DEGRADED, f"memory {mem:.0f}% >= {cfg.memory_warning_percent:g}%"))
        if h.cpu_percent is not None and h.cpu_percent >= cfg.cpu_warning_percent:
            issues.append((HealthStatus.DEGRADED, f"cpu {h.cpu_percent:.0f}% >= {cfg.cpu_warning_percent:g}%"))
        finished = h.tasks_completed + h.tasks_failed
        if finished and finished >= cfg.min_tasks_for_error_rate:
            rate = h.error_rate
            if rate >= cfg.error_rate_critical:
                issues.append((HealthStatus.CRITICAL, f"error rate {rate:.0%} >= {cfg.error_rate_critical:.0%}"))
            elif rate >= cfg.error_rate_warning:
                issues.append((HealthStatus.DEGRADED, f"error rate {rate:.0%} >= {cfg.error_rate_warning:.0%}"))
        h.seconds_since_heartbeat = None if worker.hb_mono is None else now - worker.hb_mono
        if h.seconds_since_heartbeat is not None and h.seconds_since_heartbeat > cfg.heartbeat_timeout_seconds:
            issues.append((HealthStatus.UNHEALTHY,
                           f"no heartbeat for {h.seconds_since_heartbeat:.1f}s "
                           f"(timeout {cfg.heartbeat_timeout_seconds:g}s)"))
        idle = now - worker.activity_mono
        busy = max(worker.running, h.active_tasks) > 0
        stalled = busy and not h.lost and idle > cfg.stall_threshold_seconds
        if stalled:
            issues.append((HealthStatus.UNHEALTHY,
                           f"stalled: running tasks but no progress for {idle:.1f}s "
                           f"(threshold {cfg.stall_threshold_seconds:g}s)"))
        status = max((s for s, _ in issues), default=HealthStatus.HEALTHY)
        previous, was_stalled, first = h.status, h.stalled, not worker.evaluated
        h.status, h.stalled, h.issues = status, stalled, [text for _, text in issues]
        worker.evaluated = True
        if first or status != previous or stalled != was_stalled:
            events.append(self._transition(h, None if first else previous, stalled and not was_stalled))
        return status

    @staticmethod
    def _transition(h: WorkerHealth, previous: HealthStatus | None, newly_stalled: bool) -> MonitorEvent:
        data = {"status": h.status.name, "previous_status": previous.name if previous is not None else None,
                "issues": list(h.issues), "cpu_percent": h.cpu_percent,
                "memory_percent": h.memory_percent, "active_tasks": h.active_tasks,
                "error_rate": h.error_rate}
        if h.lost:
            data["reason"] = h.lost_reason
        why = "; ".join(h.issues)
        if newly_stalled:
            kind, severity, text = MonitorEventType.WORKER_STALLED, EventSeverity.ERROR, f"worker {h.worker_id} stalled: {why}"
        elif h.status == HealthStatus.HEALTHY:
            if previous is None:
                kind, text = MonitorEventType.WORKER_HEALTHY, f"worker {h.worker_id} healthy"
            else:
                kind, text = MonitorEventType.WORKER_RECOVERED, f"worker {h.worker_id} recovered (was {previous.name})"
            severity = EventSeverity.INFO
        else:
            kind, severity = MonitorEventType.WORKER_UNHEALTHY, _SEVERITY[h.status]
            text = f"worker {h.worker_id} {h.status.name}: {why}"
        return MonitorEvent(kind, text, severity, worker_id=h.worker_id, data=data)

    @staticmethod
    def _copy(worker: _Worker) -> WorkerHealth:
        h = worker.health
        return WorkerHealth(**{**h.__dict__, "issues": list(h.issues)})

    def _emit(self, events: list[MonitorEvent]) -> None:
        if self.on_event is None:
            return
        for event in events:
            try:
                self.on_event(event)
            except Exception:
                _log.exception("health event callback failed for %s", event.event_type.name)
