"""Worker health, task tracking and progress aggregation, on their own and through the bus."""

from __future__ import annotations

import math
import threading

import pytest

from truthound_sketch.distributed.monitoring import (
    DistributedMonitor,
    DistributedProgressAggregator,
    HealthCheckConfig,
    HealthStatus,
    MonitorConfig,
    MonitorEventType as E,
    StreamingProgressAggregator,
    TaskState,
    TaskTracker,
    TaskTrackerConfig,
    UnknownTaskError,
    WorkerHealthMonitor,
)
from truthound_sketch.errors import BackendError, ConfigError


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def health(**cfg):
    clock, events = FakeClock(), []
    mon = WorkerHealthMonitor(HealthCheckConfig(**cfg), on_event=events.append, clock=clock)
    return mon, clock, events


def test_thresholds_map_to_statuses():
    mon, _, events = health(memory_warning_percent=80, memory_critical_percent=95, cpu_warning_percent=90)
    assert mon.record_heartbeat("w", cpu_percent=50, memory_percent=50) == HealthStatus.HEALTHY
    assert mon.record_heartbeat("w", cpu_percent=95, memory_percent=50) == HealthStatus.DEGRADED
    assert mon.record_heartbeat("w", cpu_percent=50, memory_percent=85) == HealthStatus.DEGRADED
    assert mon.record_heartbeat("w", cpu_percent=50, memory_percent=96) == HealthStatus.CRITICAL
    assert mon.record_heartbeat("w", cpu_percent=50, memory_percent=50) == HealthStatus.HEALTHY
    kinds = [(e.event_type, e.data.get("status")) for e in events]
    assert kinds == [
        (E.WORKER_REGISTERED, None), (E.WORKER_HEALTHY, "HEALTHY"), (E.WORKER_UNHEALTHY, "DEGRADED"),
        (E.WORKER_UNHEALTHY, "CRITICAL"), (E.WORKER_RECOVERED, "HEALTHY"),
    ]
    assert [e.severity.name for e in events[2:4]] == ["WARNING", "CRITICAL"]
    assert "memory 96% >= 95%" in events[3].message


def test_error_rates_degrade_then_make_critical():
    mon, _, _ = health(error_rate_warning=0.1, error_rate_critical=0.25, min_tasks_for_error_rate=10)
    for _ in range(9):
        mon.record_task_complete("w", duration_seconds=1.0, success=True)
    mon.record_task_complete("w", success=False)
    h = mon.get_worker_health("w")
    assert h.error_rate == pytest.approx(0.1) and h.status == HealthStatus.DEGRADED
    for _ in range(3):
        mon.record_task_complete("w", success=False)
    assert mon.get_worker_health("w").status == HealthStatus.CRITICAL
    assert mon.get_worker_health("w").avg_task_duration_seconds == pytest.approx(1.0)


def test_silent_worker_becomes_unhealthy_and_busy_worker_stalls():
    mon, clock, events = health(heartbeat_timeout_seconds=30, stall_threshold_seconds=60)
    mon.record_heartbeat("quiet", cpu_percent=10, memory_percent=10)
    mon.record_heartbeat("busy", cpu_percent=10, memory_percent=10)
    mon.record_task_start("busy")
    clock.now += 31
    mon.record_heartbeat("busy", cpu_percent=10, memory_percent=10, active_tasks=1)
    assert [h.worker_id for h in mon.check_workers()] == ["quiet"]
    quiet = mon.get_worker_health("quiet")
    assert quiet.status == HealthStatus.UNHEALTHY and "no heartbeat" in quiet.issues[0]
    clock.now += 30  # busy: heartbeats keep coming, but no task activity for 61 s
    mon.record_heartbeat("busy", cpu_percent=10, memory_percent=10, active_tasks=1)
    assert mon.check_stalled_workers() == ["busy"]
    stalled = [e for e in events if e.event_type == E.WORKER_STALLED]
    assert [e.worker_id for e in stalled] == ["busy"]
    mon.record_task_complete("busy", 61.0)
    assert mon.get_worker_health("busy").status == HealthStatus.HEALTHY
    assert events[-1].event_type == E.WORKER_RECOVERED
    overall = mon.get_overall_health()
    assert overall.status == HealthStatus.UNHEALTHY and overall.unhealthy_workers == ["quiet"]
    assert [h.worker_id for h in mon.get_unhealthy_workers()] == ["quiet"]


def test_monitor_watchdog_reports_a_worker_whose_heartbeats_stop():
    silent = threading.Event()

    def watch(event):
        if event.event_type == E.WORKER_UNHEALTHY and event.worker_id == "w-2":
            silent.set()

    cfg = MonitorConfig(health_check=HealthCheckConfig(heartbeat_timeout_seconds=0.3, check_interval_seconds=0.05))
    monitor = DistributedMonitor(cfg, callbacks=[watch])
    monitor.run_started(backend="local", num_partitions=1)
    monitor.worker_heartbeat("w-2", cpu_percent=5.0, memory_percent=5.0)
    assert silent.wait(30), "a silent worker was never reported"
    assert monitor.health_monitor.get_worker_health("w-2").status == HealthStatus.UNHEALTHY
    assert monitor.get_statistics()["unhealthy_workers"] == ["w-2"]
    monitor.run_finished(rows=0, duration_seconds=1.0)


def test_lost_worker_is_critical_then_unregistered():
    events = []
    monitor = DistributedMonitor(MonitorConfig.standard(), callbacks=[events.append])
    monitor.run_started(backend="local", num_partitions=1)
    monitor.worker_heartbeat("w", cpu_percent=1, memory_percent=1)
    monitor.worker_lost("w", reason="process killed")
    assert [e.event_type for e in events[-2:]] == [E.WORKER_UNHEALTHY, E.WORKER_UNREGISTERED]
    assert events[-2].data["status"] == "CRITICAL" and events[-2].data["reason"] == "process killed"
    assert monitor.health_monitor.get_worker_health("w").lost
    assert monitor.get_statistics()["workers"] == 0 and monitor.get_statistics()["workers_lost"] == 1


def test_health_config_is_validated():
    with pytest.raises(ConfigError, match="memory_warning_percent"):
        HealthCheckConfig(memory_warning_percent=99, memory_critical_percent=90)
    with pytest.raises(ConfigError, match="error_rate_critical"):
        HealthCheckConfig(error_rate_critical=2.0)


# ------------------------------------------------------------------------- task tracker
def test_tracker_lifecycle_retries_and_limit():
    clock = FakeClock()
    tracker = TaskTracker(TaskTrackerConfig(max_retries=2, timeout_seconds=10), clock=clock)
    tid = tracker.submit_task(task_type="profile_partition", partition_id=7, metadata={"rows": 10})
    tracker.start_task(tid, worker_id="w")
    clock.now += 2.5
    tracker.update_progress(tid, progress=0.5, rows_processed=5)
    assert tracker.get_task(tid).progress == 0.5
    tracker.fail_task(tid, ValueError("x"), will_retry=True)
    assert tracker.get_task(tid).state == TaskState.RETRYING and tracker.can_retry(tid)
    assert tracker.submit_task(partition_id=7) == tid
    tracker.start_task(tid, "w")
    tracker.fail_task(tid, "y")  # final...
    assert tracker.get_task(tid).state == TaskState.FAILED and tracker.can_retry(tid)
    assert tracker.submit_task(partition_id=7) == tid  # ...until resubmitted: retry 2
    assert tracker.get_task(tid).retry_count == 2
    tracker.start_task(tid, "w")
    tracker.fail_task(tid, "z", will_retry=True)  # no retries left: fails for good
    assert tracker.get_task(tid).state == TaskState.FAILED and not tracker.can_retry(tid)
    with pytest.raises(BackendError, match="max_retries"):
        tracker.submit_task(partition_id=7)
    s = tracker.statistics()
    assert (s["tasks_failed"], s["tasks_retried"], s["failed_attempts"]) == (1, 2, 3)


def test_tracker_timeout_and_bounded_history():
    clock = FakeClock()
    tracker = TaskTracker(TaskTrackerConfig(max_history_size=3, timeout_seconds=5), clock=clock)
    slow = tracker.submit_task(partition_id=100)
    tracker.start_task(slow, "w")
    ids = []
    for p in range(5):
        tid = tracker.submit_task(partition_id=p)
        tracker.start_task(tid, "w")
        clock.now += 1
        task = tracker.complete_task(tid, result={"ok": True})
        assert task.duration_seconds == pytest.approx(1.0)
        ids.append(tid)
    clock.now += 1  # the slow task has now run 6 s
    expired = tracker.check_timeouts()
    assert [t.task_id for t in expired] == [slow] and expired[0].state == TaskState.TIMED_OUT
    history = tracker.get_history()
    assert [t.task_id for t in history] == [ids[3], ids[4], slow]
    assert tracker.get_task(ids[0]) is None
    with pytest.raises(UnknownTaskError, match="max_history_size"):
        tracker.start_task(ids[0], "w")


# ------------------------------------------------------------------------- progress
def test_progress_aggregation_eta_throughput_and_milestones():
    clock = FakeClock()
    seen, milestones = [], []
    agg = DistributedProgressAggregator(on_progress=seen.append, milestone_interval=25,
                                        on_milestone=milestones.append, clock=clock)
    agg.set_total_partitions(4)
    agg.start_partition(0, total_rows=1000)
    clock.now += 10
    agg.update_partition(0, progress=0.5, rows_processed=500)
    p = agg.get_progress()
    assert p.percent == pytest.approx(12.5) and p.rows_per_second == pytest.approx(50.0)
    assert p.estimated_remaining_seconds == pytest.approx(70.0)
    agg.complete_partition(0, rows_processed=1000)
    assert milestones == [25]
    for k in (1, 2, 3):
        agg.start_partition(k)
        agg.complete_partition(k, rows_processed=1000)
    p = agg.get_progress()
    assert p.completed_partitions == 4 and p.percent == 100.0 and p.estimated_remaining_seconds == 0.0
    assert milestones == [25, 50, 75, 100] and seen[-1].is_complete


def test_progress_is_row_weighted_when_sizes_are_known():
    agg = DistributedProgressAggregator(milestone_interval=None)
    agg.set_total_partitions(2)
    agg.register_partition(0, total_rows=900)
    agg.register_partition(1, total_rows=100)
    agg.start_partition(1)
    agg.complete_partition(1, rows_processed=100)
    assert agg.get_progress().percent == pytest.approx(10.0)
    agg.fail_partition(1)
    assert agg.get_progress().failed_partitions == 1 and agg.get_progress().percent == 0.0
    assert math.isinf(agg.get_progress().estimated_remaining_seconds)


def test_streaming_aggregator_interpolates_and_finishes():
    reports = []
    finished = threading.Event()

    def on_progress(p):
        reports.append(p)
        if p.is_complete:
            finished.set()

    clock = FakeClock()
    s = StreamingProgressAggregator(on_progress=on_progress, interpolation_interval_ms=10, clock=clock)
    s.set_total_partitions(2)
    s.start_partition(0)
    s.start_partition(1)
    clock.now += 10
    s.update_partition(0, progress=0.5, rows_processed=50)  # 25 % after 10 s: 2.5 %/s
    clock.now += 4
    guess = s.get_interpolated_progress()
    assert guess.interpolated and guess.percent == pytest.approx(35.0)  # 25 % + 4 s * 2.5 %/s
    clock.now -= 2  # a reading can never go backwards
    assert s.get_interpolated_progress().percent == pytest.approx(35.0)
    s.complete_partition(0, rows_processed=100)
    s.complete_partition(1, rows_processed=100)
    assert finished.wait(30)
    percents = [r.percent for r in reports]
    assert percents == sorted(percents) and percents[-1] == 100.0
    assert all(r.percent < 100.0 for r in reports[:-1] if r.interpolated and not r.is_complete)
    s.stop()
    with pytest.raises(ConfigError, match="interpolation_interval_ms"):
        StreamingProgressAggregator(interpolation_interval_ms=0)
