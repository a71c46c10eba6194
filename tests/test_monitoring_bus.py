"""The engine-facing bus of DistributedMonitor: event order, bookkeeping, retries, robustness."""

from __future__ import annotations

import threading

import pytest

from truthound_sketch.distributed.monitoring import (
    DistributedMonitor,
    EventSeverity,
    MonitorConfig,
    MonitorEvent,
    MonitorEventType as E,
    TaskState,
    TaskTrackerConfig,
)


def simulate(monitor: DistributedMonitor, partitions: int = 3, *, fail: int | None = None,
             worker: str = "w-1") -> None:
    monitor.run_started(backend="local", num_partitions=partitions, total_rows=100 * partitions, source="mem")
    for p in range(partitions):
        monitor.partition_submitted(p, total_rows=100)
        monitor.partition_started(p, worker_id=worker)
        monitor.partition_progress(p, rows_processed=50)
        if p == fail:
            retry = monitor.should_retry(p)
            monitor.partition_failed(p, error=RuntimeError("disk full"), worker_id=worker, will_retry=retry)
            monitor.partition_submitted(p, total_rows=100)
            monitor.partition_started(p, worker_id=worker)
        monitor.partition_completed(p, rows=100, duration_seconds=0.5 * (p + 1), worker_id=worker)
    monitor.aggregation_completed(partials=partitions, duration_seconds=0.01)
    monitor.run_finished(rows=100 * partitions, duration_seconds=2.0)


def test_bus_event_order_for_one_partition():
    events: list[MonitorEvent] = []
    monitor = DistributedMonitor(MonitorConfig.standard(), callbacks=[events.append])
    simulate(monitor, partitions=1)
    kinds = [e.event_type for e in events if e.event_type not in (E.PROGRESS_MILESTONE, E.WORKER_HEALTHY)]
    assert kinds == [
        E.MONITOR_START, E.TASK_SUBMITTED, E.TASK_STARTED, E.PARTITION_START, E.WORKER_REGISTERED,
        E.TASK_PROGRESS, E.PROGRESS_UPDATE, E.TASK_COMPLETED, E.PARTITION_COMPLETE,
        E.AGGREGATION_COMPLETE, E.MONITOR_STOP,
    ]
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    assert monitor.events == events
    start = events[0]
    assert start.data["backend"] == "local" and start.data["num_partitions"] == 1
    assert events[-1].data["tasks_completed"] == 1
    milestones = [e.data["milestone"] for e in events if e.event_type == E.PROGRESS_MILESTONE]
    assert milestones == list(range(10, 101, 10))


def test_statistics_after_a_run_with_a_retry():
    monitor = DistributedMonitor(MonitorConfig.standard())
    simulate(monitor, partitions=4, fail=2)
    s = monitor.get_statistics()
    assert s["tasks_completed"] == 4
    assert s["tasks_failed"] == 0 and s["failed_attempts"] == 1
    assert s["tasks_retried"] == 1
    assert s["success_rate"] == 1.0
    assert s["avg_task_duration"] == pytest.approx((0.5 + 1.0 + 1.5 + 2.0) / 4)
    assert s["rows_processed"] == 400
    assert s["rows_per_second"] == pytest.approx(200.0)
    assert s["workers"] == 1
    assert s["dropped_events"] == 0
    assert s["progress_percent"] == 100.0
    assert s["aggregation"] == {"partials": 4, "duration_seconds": 0.01}
    task = monitor.task_tracker.get_partition_task(2)
    assert task.state == TaskState.COMPLETED and task.retry_count == 1


def test_retry_is_counted_against_the_same_task_and_limited():
    events: list[MonitorEvent] = []
    cfg = MonitorConfig(task_tracker=TaskTrackerConfig(max_retries=2))
    monitor = DistributedMonitor(cfg, callbacks=[events.append])
    monitor.run_started(backend="local", num_partitions=1)
    first = monitor.partition_submitted(0)
    decisions = []
    for attempt in range(4):
        monitor.partition_started(0, worker_id="w")
        decisions.append(monitor.should_retry(0))
        monitor.partition_failed(0, error=f"attempt {attempt}", will_retry=decisions[-1])
        if not decisions[-1]:
            break
        assert monitor.partition_submitted(0) == first  # same task, not a new one
    assert decisions == [True, True, False]
    task = monitor.task_tracker.get_task(first)
    assert task.state == TaskState.FAILED and task.retry_count == 2 and task.attempts == 3
    assert [e.event_type for e in events].count(E.TASK_RETRYING) == 2
    final = [e for e in events if e.event_type == E.TASK_FAILED][-1]
    assert final.severity == EventSeverity.ERROR and final.data["will_retry"] is False
    # an engine that asks for a retry anyway is not granted one
    monitor.partition_submitted(0)
    monitor.partition_started(0, worker_id="w")
    monitor.partition_failed(0, error="again", will_retry=True)
    assert monitor.task_tracker.get_task(first).state == TaskState.FAILED
    assert [e.event_type for e in events].count(E.TASK_RETRYING) == 2
    s = monitor.get_statistics()
    assert s["tasks_failed"] == 1 and s["success_rate"] == 0.0


def test_resubmission_after_a_final_failure_counts_a_retry():
    monitor = DistributedMonitor(MonitorConfig(task_tracker=TaskTrackerConfig(max_retries=1)))
    monitor.run_started(backend="local", num_partitions=1)
    tid = monitor.partition_submitted(0)
    monitor.partition_failed(0, error="x")  # the engine did not announce a retry
    assert monitor.should_retry(0)
    assert monitor.partition_submitted(0) == tid
    assert monitor.task_tracker.get_task(tid).retry_count == 1
    monitor.partition_completed(0, rows=1, duration_seconds=0.1)
    s = monitor.get_statistics()
    assert (s["tasks_completed"], s["tasks_failed"], s["tasks_retried"]) == (1, 0, 1)


def test_failing_callback_is_counted_and_never_reaches_the_engine(caplog):
    seen = []

    def broken(event):
        raise ValueError("callback bug")

    monitor = DistributedMonitor(MonitorConfig.standard(), callbacks=[broken, seen.append])
    simulate(monitor, partitions=2)  # would raise if the bus propagated
    assert len(seen) == len(monitor.events) > 0  # later callbacks still got every event
    s = monitor.get_statistics()
    assert s["callback_errors"] == len(seen)
    assert "callback bug" in caplog.text


def test_disabled_monitoring_keeps_retry_bookkeeping_only():
    events = []
    monitor = DistributedMonitor(MonitorConfig(enable_monitoring=False), callbacks=[events.append])
    simulate(monitor, partitions=2, fail=0)
    assert events == [] and monitor.events == []
    assert monitor.health_monitor is None and monitor.metrics_collector is None
    assert monitor.task_tracker.statistics()["tasks_completed"] == 2
    assert monitor.should_retry(1) is False  # completed


def test_minimal_config_builds_no_optional_parts():
    monitor = DistributedMonitor(MonitorConfig.minimal())
    assert monitor.progress_aggregator is None
    assert monitor.health_monitor is None
    assert monitor.metrics_collector is None
    simulate(monitor, partitions=3)
    s = monitor.get_statistics()
    assert s["tasks_completed"] == 3 and s["workers"] == 1
    assert [e.event_type for e in monitor.events].count(E.WORKER_REGISTERED) == 1


def test_concurrent_publishers_lose_nothing():
    events = []
    monitor = DistributedMonitor(MonitorConfig.standard(), callbacks=[events.append])
    monitor.run_started(backend="local", num_partitions=400)
    barrier = threading.Barrier(4)

    def engine_thread(k: int) -> None:
        barrier.wait()
        for p in range(k, 400, 4):
            monitor.partition_submitted(p)
            monitor.partition_started(p, worker_id=f"w-{k}")
            monitor.partition_completed(p, rows=10, duration_seconds=0.01)

    threads = [threading.Thread(target=engine_thread, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    monitor.run_finished(rows=4000, duration_seconds=1.0)
    s = monitor.get_statistics()
    assert s["tasks_completed"] == 400 and s["rows_processed"] == 4000 and s["workers"] == 4
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    assert sum(e.event_type == E.PARTITION_COMPLETE for e in events) == 400


def test_running_task_past_its_timeout_fails_via_the_watchdog():
    timed_out = threading.Event()
    events = []

    def watch(event):
        events.append(event)
        if event.event_type == E.TASK_FAILED and event.data.get("timed_out"):
            timed_out.set()

    cfg = MonitorConfig(task_tracker=TaskTrackerConfig(timeout_seconds=0.2))
    monitor = DistributedMonitor(cfg, callbacks=[watch])
    monitor.run_started(backend="local", num_partitions=1)
    monitor.partition_submitted(0)
    monitor.partition_started(0, worker_id="w")
    assert timed_out.wait(30), "the watchdog never timed the task out"
    task = monitor.task_tracker.get_partition_task(0)
    assert task.state == TaskState.TIMED_OUT
    monitor.run_finished(rows=0, duration_seconds=1.0)
    assert monitor.get_statistics()["tasks_timed_out"] == 1


def test_events_serialise_to_plain_json_types():
    import json

    monitor = DistributedMonitor(MonitorConfig.standard())
    simulate(monitor, partitions=2, fail=1)
    for event in monitor.events:
        d = json.loads(json.dumps(event.to_dict(), allow_nan=False))
        assert d["event_type"] == event.event_type.value
        assert d["severity"] == event.severity.name


def test_severity_is_ordered():
    assert EventSeverity.DEBUG < EventSeverity.INFO < EventSeverity.WARNING < EventSeverity.ERROR < EventSeverity.CRITICAL
    e = MonitorEvent(E.TASK_FAILED, "x", EventSeverity.ERROR)
    assert e.severity >= EventSeverity.WARNING and e.type is E.TASK_FAILED
