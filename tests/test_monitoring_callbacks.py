"""Callbacks: event files, console, progress bar, logging, chains and the async buffer."""

from __future__ import annotations

import io
import json
import logging
import threading

import pytest

from truthound_sketch.distributed.monitoring import (
    AsyncMonitorCallback,
    CallbackChain,
    ConsoleMonitorCallback,
    DistributedMonitor,
    EventSeverity,
    FileMonitorCallback,
    LoggingMonitorCallback,
    MonitorCallbackAdapter,
    MonitorConfig,
    MonitorEvent,
    MonitorEventType as E,
    ProgressBarCallback,
)
from truthound_sketch.errors import ConfigError


def run(monitor: DistributedMonitor, partitions: int = 5) -> None:
    monitor.run_started(backend="local", num_partitions=partitions, total_rows=10 * partitions)
    for p in range(partitions):
        monitor.partition_submitted(p, total_rows=10)
        monitor.partition_started(p, worker_id=f"w-{p % 2}")
        monitor.partition_progress(p, rows_processed=5)
        if p == 1:
            monitor.partition_failed(p, error=OSError("read error"), will_retry=True)
            monitor.partition_submitted(p, total_rows=10)
            monitor.partition_started(p, worker_id="w-1")
        monitor.partition_completed(p, rows=10, duration_seconds=0.1)
    monitor.aggregation_completed(partials=partitions, duration_seconds=0.01)
    monitor.run_finished(rows=10 * partitions, duration_seconds=1.0)


def test_jsonl_file_holds_every_event_in_order(tmp_path):
    path = tmp_path / "logs" / "monitoring.jsonl"
    file_cb = FileMonitorCallback(output_path=str(path), format="jsonl")
    seen: list[MonitorEvent] = []
    monitor = DistributedMonitor(MonitorConfig.standard(), callbacks=[file_cb, seen.append])
    run(monitor)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines == [e.to_dict() for e in seen]
    assert lines[0]["event_type"] == "monitor_start" and lines[-1]["event_type"] == "monitor_stop"
    assert [r["sequence"] for r in lines] == list(range(1, len(lines) + 1))
    kinds = {r["event_type"] for r in lines}
    assert {"task_failed", "task_retrying", "partition_complete", "aggregation_complete",
            "worker_registered", "progress_milestone"} <= kinds
    file_cb.close()


def test_json_file_is_one_array_written_at_stop(tmp_path):
    path = tmp_path / "events.json"
    file_cb = FileMonitorCallback(path, format="json")
    monitor = DistributedMonitor(MonitorConfig.standard(), callbacks=[file_cb])
    run(monitor, partitions=2)
    events = json.loads(path.read_text())
    assert [e["sequence"] for e in events] == [e.sequence for e in monitor.events]
    assert events[-1]["event_type"] == "monitor_stop"


def test_file_callback_errors_name_the_path(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match="a-file"):
        FileMonitorCallback(blocker / "sub" / "m.jsonl")
    with pytest.raises(ConfigError, match="'jsonl' or 'json'"):
        FileMonitorCallback(tmp_path / "m.csv", format="csv")


def test_console_colours_by_severity():
    out = io.StringIO()
    console = ConsoleMonitorCallback(show_progress=True, show_events=True, use_colors=True, stream=out,
                                     progress_interval_seconds=0)
    monitor = DistributedMonitor(MonitorConfig.standard(), callbacks=[console])
    run(monitor, partitions=2)
    text = out.getvalue()
    failed = next(line for line in text.splitlines() if "read error" in line)
    assert "\033[33m" in failed  # a retried failure is a warning: yellow
    assert "\033[32m" in next(line for line in text.splitlines() if "partition 0 done" in line)
    assert "milestone 100%" in text and "progress" in text
    plain = io.StringIO()
    quiet = ConsoleMonitorCallback(show_progress=False, use_colors=False, stream=plain)
    run(DistributedMonitor(MonitorConfig.standard(), callbacks=[quiet]), partitions=2)
    assert "\033[" not in plain.getvalue() and "milestone" not in plain.getvalue()
    assert "run finished" in plain.getvalue()


def test_progress_bar_counts_partitions():
    out = io.StringIO()
    bar = ProgressBarCallback(desc="Profiling", unit="partitions", file=out, mininterval=0)
    snapshots = []

    def look(event):
        if event.event_type == E.PARTITION_COMPLETE:
            snapshots.append((bar.bar.n, bar.bar.total))

    monitor = DistributedMonitor(MonitorConfig.standard(), callbacks=[bar, look])
    run(monitor, partitions=4)
    assert snapshots == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert bar.bar is None  # closed at MONITOR_STOP
    assert "Profiling" in out.getvalue() and "4/4" in out.getvalue() and "failed=1" in out.getvalue()


def test_logging_callback_levels_and_structure(caplog):
    caplog.set_level(logging.DEBUG, logger="truthound.monitor")
    cb = LoggingMonitorCallback(logger_name="truthound.monitor", log_level=logging.INFO)
    run(DistributedMonitor(MonitorConfig.standard(), callbacks=[cb]), partitions=2)
    records = [r for r in caplog.records if r.name == "truthound.monitor"]
    assert records and all(r.levelno >= logging.INFO for r in records)  # DEBUG progress skipped
    warn = [r for r in records if r.levelno == logging.WARNING]
    assert any(r.monitor_event["event_type"] == "task_failed" for r in warn)
    assert records[-1].monitor_event["event_type"] == "monitor_stop"


def test_chain_keeps_going_after_a_failing_member():
    got_a, got_b = [], []

    class Broken(MonitorCallbackAdapter):
        def on_event(self, event):
            raise RuntimeError("nope")

    chain = CallbackChain([got_a.append, Broken(), got_b.append])
    monitor = DistributedMonitor(MonitorConfig.standard(), callbacks=[chain])
    run(monitor, partitions=1)
    assert len(got_a) == len(got_b) == len(monitor.events)
    assert chain.error_count == len(monitor.events)
    assert monitor.get_statistics()["callback_errors"] == len(monitor.events)


def test_async_callback_with_tiny_buffer_reports_drops(caplog):
    entered, release = threading.Event(), threading.Event()
    delivered = []

    def slow(event):
        entered.set()
        release.wait(30)
        delivered.append(event)

    async_cb = AsyncMonitorCallback(callback=slow, buffer_size=2)
    monitor = DistributedMonitor(MonitorConfig.standard(), callbacks=[async_cb])
    monitor.run_started(backend="local", num_partitions=8)
    assert entered.wait(30)  # the worker thread holds MONITOR_START
    for p in range(8):
        monitor.partition_submitted(p)  # 8 more events: 2 fit the buffer, 6 are dropped
    assert async_cb.dropped_count == 6
    assert monitor.get_statistics()["dropped_events"] == 6
    assert "dropped event" in caplog.text
    release.set()
    assert async_cb.flush(30)
    assert len(delivered) == 3
    assert "dropped 6 events" in caplog.text
    # the number reaches Prometheus too
    assert "truthound_dropped_events_total 6.0" in monitor.metrics_collector.export_prometheus()
    async_cb.close()


def test_async_callback_delivers_in_order_when_it_keeps_up():
    got = []
    async_cb = AsyncMonitorCallback(got.append, buffer_size=1000)
    monitor = DistributedMonitor(MonitorConfig.standard(), callbacks=[async_cb])
    run(monitor)  # run_finished flushes
    assert [e.sequence for e in got] == [e.sequence for e in monitor.events]
    assert async_cb.dropped_count == 0


def test_severity_filter_names_are_validated():
    assert EventSeverity.parse("warning") is EventSeverity.WARNING
    with pytest.raises(ConfigError, match="DEBUG, INFO"):
        EventSeverity.parse("loud")
