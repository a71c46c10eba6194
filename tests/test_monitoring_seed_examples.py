"""Every code example of the Monitoring section of the distributed-processing guide, run.

Imports read ``truthound_sketch.distributed.monitoring`` for ``truthound.profiler.distributed.monitoring``.
The lines that hand the monitor to ``DistributedProfiler.create(...)`` belong to the profiler's
own tests; here a simulated run drives the same monitor through the bus instead. The engine
adapter examples run in tests/test_monitoring_adapters.py.
"""

from __future__ import annotations

import logging

from truthound_sketch.distributed.monitoring import EventSeverity, MonitorEvent, MonitorEventType


def drive(monitor, partitions: int = 3) -> None:
    """What an engine does with the monitor during a run."""
    monitor.run_started(backend="spark", num_partitions=partitions, total_rows=300)
    for p in range(partitions):
        monitor.partition_submitted(p, total_rows=100)
        monitor.partition_started(p, worker_id="executor-1")
        monitor.partition_progress(p, rows_processed=50)
        monitor.partition_completed(p, rows=100, duration_seconds=1.0 + p)
    monitor.aggregation_completed(partials=partitions, duration_seconds=0.02)
    monitor.run_finished(rows=300, duration_seconds=4.0)


def test_overview(capsys):
    from truthound_sketch.distributed.monitoring import (
        DistributedMonitor,
        MonitorConfig,
        MonitorFactory,
    )

    # Quick start with factory presets
    monitor = MonitorFactory.with_console()

    # Or create with full configuration
    config = MonitorConfig.production()
    monitor2 = DistributedMonitor(config)

    drive(monitor)
    assert "run finished: 300 rows" in capsys.readouterr().err
    drive(monitor2)
    assert monitor2.get_statistics()["tasks_completed"] == 3
    monitor.close()
    monitor2.close()


def test_monitor_config_presets():
    from truthound_sketch.distributed.monitoring import MonitorConfig

    # Minimal overhead - basic tracking only
    config = MonitorConfig.minimal()
    assert config.enable_task_tracking and not config.enable_health_monitoring
    assert not config.enable_metrics_collection and not config.enable_progress_aggregation

    # Standard features (default)
    config = MonitorConfig.standard()
    assert config == MonitorConfig()

    # All features enabled
    config = MonitorConfig.full()
    assert config.metrics.enable_prometheus and config.metrics.prometheus_port == 0

    # Production-optimized
    config = MonitorConfig.production()
    assert config.callbacks.logging and config.callbacks.async_dispatch
    assert config.metrics.prometheus_host == "127.0.0.1"
    fields = ("enable_monitoring", "enable_task_tracking", "enable_progress_aggregation",
              "enable_health_monitoring", "enable_metrics_collection", "task_tracker", "health_check",
              "metrics", "callbacks", "log_level")
    assert all(hasattr(config, f) for f in fields) and config.log_level == "WARNING"


def test_task_tracking(capsys):
    from truthound_sketch.distributed.monitoring import TaskTracker, TaskTrackerConfig

    config = TaskTrackerConfig(
        max_history_size=1000,
        timeout_seconds=3600,
        max_retries=3,
        enable_progress_tracking=True,
    )

    tracker = TaskTracker(config=config)

    # Submit and track tasks
    task_id = tracker.submit_task(
        task_type="profile_partition",
        partition_id=0,
        metadata={"rows": 1000000},
    )

    tracker.start_task(task_id, worker_id="worker-1")
    tracker.update_progress(task_id, progress=0.5, rows_processed=500000)
    tracker.complete_task(task_id, result={"stats": {...}})

    # Query task state
    task = tracker.get_task(task_id)
    print(f"Status: {task.state}, Duration: {task.duration_seconds}s")
    out = capsys.readouterr().out
    assert out.startswith("Status: COMPLETED, Duration: ")
    assert task.metadata == {"rows": 1000000} and task.rows_processed == 500000


def test_progress_aggregation(capsys):
    from truthound_sketch.distributed.monitoring import (
        DistributedProgressAggregator,
        StreamingProgressAggregator,
    )

    # Basic aggregator
    aggregator = DistributedProgressAggregator(
        on_progress=lambda p: print(f"Overall: {p.percent:.1f}%"),
        milestone_interval=10,  # Emit event every 10%
    )

    aggregator.set_total_partitions(10)
    aggregator.start_partition(0, total_rows=1000000)
    aggregator.update_partition(0, progress=0.5, rows_processed=500000)
    aggregator.complete_partition(0, rows_processed=1000000)

    # Get aggregated progress
    progress = aggregator.get_progress()
    print(f"Completed: {progress.completed_partitions}/{progress.total_partitions}")
    print(f"ETA: {progress.estimated_remaining_seconds:.0f}s")
    print(f"Throughput: {progress.rows_per_second:.0f} rows/s")

    ui_updates = []
    update_ui = ui_updates.append

    # Streaming aggregator for real-time UI
    streaming = StreamingProgressAggregator(
        on_progress=update_ui,
        interpolation_interval_ms=100,
    )

    out = capsys.readouterr().out.splitlines()
    assert out[:3] == ["Overall: 0.0%", "Overall: 5.0%", "Overall: 10.0%"]
    assert out[3] == "Completed: 1/10"
    assert out[4].startswith("ETA: ") and out[5].endswith(" rows/s")
    streaming.set_total_partitions(1)
    streaming.start_partition(0)
    streaming.complete_partition(0, rows_processed=10)
    streaming.stop()
    assert ui_updates and ui_updates[-1].percent == 100.0


def test_health_monitoring(capsys):
    from truthound_sketch.distributed.monitoring import (
        HealthCheckConfig,
        HealthStatus,
        WorkerHealthMonitor,
    )

    config = HealthCheckConfig(
        heartbeat_timeout_seconds=30,
        stall_threshold_seconds=60,
        memory_warning_percent=80,
        memory_critical_percent=95,
        cpu_warning_percent=90,
        error_rate_warning=0.1,
        error_rate_critical=0.25,
    )

    monitor = WorkerHealthMonitor(
        config=config,
        on_event=lambda e: print(f"Health: {e.message}"),
    )

    # Register and track workers
    monitor.register_worker("worker-1")
    monitor.record_heartbeat(
        "worker-1",
        cpu_percent=65,
        memory_percent=70,
        active_tasks=3,
    )
    monitor.record_task_complete("worker-1", duration_seconds=2.5, success=True)

    # Check health
    health = monitor.get_worker_health("worker-1")
    print(f"Status: {health.status}")  # HEALTHY, DEGRADED, UNHEALTHY, CRITICAL

    # Get overall system health
    overall = monitor.get_overall_health()
    unhealthy = monitor.get_unhealthy_workers()
    stalled = monitor.check_stalled_workers()

    out = capsys.readouterr().out.splitlines()
    assert out == ["Health: worker worker-1 registered", "Health: worker worker-1 healthy", "Status: HEALTHY"]
    assert overall.status == HealthStatus.HEALTHY and unhealthy == [] and stalled == []


def test_metrics_collection(capsys):
    from truthound_sketch.distributed.monitoring import (
        DistributedMetricsCollector,
        MetricsConfig,
    )

    config = MetricsConfig(
        enable_metrics=True,
        collection_interval_seconds=5.0,
        enable_percentiles=True,
        percentiles=[0.5, 0.75, 0.9, 0.95, 0.99],
        enable_prometheus=True,
        prometheus_port=9090,
    )

    collector = DistributedMetricsCollector(config=config)

    # Record metrics
    collector.record_task_duration("profile_partition", 2.5)
    collector.record_partition_progress(0, 0.5)
    collector.record_worker_metric("worker-1", "cpu_percent", 65)
    collector.increment_counter("tasks_completed")

    # Get metrics
    metrics = collector.get_metrics()
    print(f"Tasks: {metrics.tasks_completed}")
    print(f"Avg duration: {metrics.avg_task_duration_seconds:.2f}s")
    print(f"P99 duration: {metrics.task_duration_p99:.2f}s")

    # Export to Prometheus format
    prometheus_output = collector.export_prometheus()

    assert capsys.readouterr().out.splitlines() == ["Tasks: 1", "Avg duration: 2.50s", "P99 duration: 2.50s"]
    assert "truthound_tasks_completed_total 1.0" in prometheus_output
    assert 'truthound_worker_cpu_percent{worker="worker-1"} 65.0' in prometheus_output
    assert 'truthound_partition_progress{partition="0"} 0.5' in prometheus_output


def test_callback_system(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    from truthound_sketch.distributed.monitoring import (
        AsyncMonitorCallback,
        CallbackChain,
        ConsoleMonitorCallback,
        FileMonitorCallback,
        LoggingMonitorCallback,
        ProgressBarCallback,
        WebhookMonitorCallback,
    )

    # Console output with colors
    console = ConsoleMonitorCallback(
        show_progress=True,
        show_events=True,
        use_colors=True,
    )

    # Progress bar (tqdm)
    progress_bar = ProgressBarCallback(
        desc="Profiling",
        unit="partitions",
    )

    # Structured logging
    logging_cb = LoggingMonitorCallback(
        logger_name="truthound.monitor",
        log_level=logging.INFO,
    )

    # File output (JSONL)
    file_cb = FileMonitorCallback(
        output_path="monitoring.jsonl",
        format="jsonl",  # or "json"
    )

    # Webhook notifications
    webhook = WebhookMonitorCallback(
        url="https://hooks.slack.com/...",
        headers={"Authorization": "Bearer token"},
        event_filter=lambda e: e.severity >= EventSeverity.WARNING,
    )

    # Combine callbacks
    chain = CallbackChain([console, logging_cb, file_cb])

    # Async callback for non-blocking operations
    async_cb = AsyncMonitorCallback(
        callback=webhook,
        buffer_size=100,
    )

    from truthound_sketch.distributed.monitoring import DistributedMonitor, MonitorConfig

    monitor = DistributedMonitor(MonitorConfig.standard(), callbacks=[chain, progress_bar, async_cb])
    drive(monitor)
    lines = (tmp_path / "monitoring.jsonl").read_text().splitlines()
    assert len(lines) == len(monitor.events)
    assert "Profiling" in capsys.readouterr().err
    assert webhook.sent_count == webhook.failed_count == 0  # nothing reached WARNING
    monitor.close()


def test_monitor_factory(tmp_path, caplog):
    from truthound_sketch.distributed.monitoring import MonitorFactory

    # Minimal - basic tracking only
    monitor = MonitorFactory.minimal()

    # Console output
    monitor = MonitorFactory.with_console(
        show_progress=True,
        use_colors=True,
    )

    # Logging output
    monitor = MonitorFactory.with_logging(
        logger_name="my_app.profiler",
        log_level=logging.INFO,
    )
    caplog.set_level(logging.INFO, logger="my_app.profiler")
    drive(monitor)
    assert any(r.name == "my_app.profiler" and "run finished" in r.getMessage() for r in caplog.records)

    # Production setup
    monitor = MonitorFactory.production(
        log_path=str(tmp_path / "var/log/truthound/monitor.jsonl"),
        webhook_url="https://alerts.example.com/webhook",
    )
    kinds = {type(c).__name__ for c in monitor.callbacks}
    assert kinds == {"AsyncMonitorCallback", "WebhookMonitorCallback"}
    assert (tmp_path / "var/log/truthound/monitor.jsonl").exists()
    monitor.close()


def test_monitor_registry():
    from truthound_sketch.distributed.monitoring import (
        DistributedMonitor,
        MonitorCallbackAdapter,
        MonitorConfig,
        MonitorRegistry,
    )

    seen: list[MonitorEvent] = []

    # Register custom callback
    @MonitorRegistry.register_callback("my_callback")
    class MyCallback(MonitorCallbackAdapter):
        def on_event(self, event: MonitorEvent) -> None:
            # Custom handling
            seen.append(event)

    # Register custom preset
    @MonitorRegistry.register_preset("my_preset")
    def my_preset(**kwargs) -> DistributedMonitor:
        config = MonitorConfig(enable_health_monitoring=False, **kwargs)
        return DistributedMonitor(config)

    try:
        # Use registered components
        monitor = MonitorRegistry.create_monitor("my_preset")
        callback = MonitorRegistry.create_callback("my_callback")

        assert isinstance(callback, MyCallback) and monitor.health_monitor is None
        monitor.add_callback(callback)
        drive(monitor)
        assert seen and seen[-1].event_type == MonitorEventType.MONITOR_STOP
        assert {"console", "file", "webhook"} <= set(MonitorRegistry.list_callbacks())
        assert {"minimal", "production"} <= set(MonitorRegistry.list_presets())
    finally:
        MonitorRegistry.unregister_callback("my_callback")
        MonitorRegistry.unregister_preset("my_preset")


def test_event_types():
    from truthound_sketch.distributed.monitoring import MonitorEventType

    listed = [
        # Task lifecycle
        MonitorEventType.TASK_SUBMITTED,
        MonitorEventType.TASK_STARTED,
        MonitorEventType.TASK_PROGRESS,
        MonitorEventType.TASK_COMPLETED,
        MonitorEventType.TASK_FAILED,
        MonitorEventType.TASK_RETRYING,
        # Partition events
        MonitorEventType.PARTITION_START,
        MonitorEventType.PARTITION_COMPLETE,
        MonitorEventType.PARTITION_ERROR,
        # Progress events
        MonitorEventType.PROGRESS_UPDATE,
        MonitorEventType.PROGRESS_MILESTONE,
        MonitorEventType.AGGREGATION_COMPLETE,
        # Worker events
        MonitorEventType.WORKER_REGISTERED,
        MonitorEventType.WORKER_UNREGISTERED,
        MonitorEventType.WORKER_HEALTHY,
        MonitorEventType.WORKER_UNHEALTHY,
        MonitorEventType.WORKER_STALLED,
        MonitorEventType.WORKER_RECOVERED,
        # Monitor lifecycle
        MonitorEventType.MONITOR_START,
        MonitorEventType.MONITOR_STOP,
    ]
    assert len(set(listed)) == 20


def test_complete_example(capsys):
    from truthound_sketch.distributed import (  # noqa: F401  (the profiler wiring is tested elsewhere)
        DistributedBackend,
        DistributedProfiler,
        SparkConfig,
    )
    from truthound_sketch.distributed.monitoring import (
        CallbackChain,
        ConsoleMonitorCallback,
        DistributedMonitor,
        LoggingMonitorCallback,
        MonitorConfig,
    )

    # Configure monitoring
    config = MonitorConfig.production()

    # Create callback chain
    callbacks = CallbackChain([
        ConsoleMonitorCallback(show_progress=True, use_colors=True),
        LoggingMonitorCallback(logger_name="profiler.monitor"),
    ])

    # Create monitor
    monitor = DistributedMonitor(config, callbacks=[callbacks])

    # (profiler creation and profile() skipped: see the module docstring)
    drive(monitor)

    # Get monitoring statistics
    stats = monitor.get_statistics()
    print(f"Tasks completed: {stats['tasks_completed']}")
    print(f"Average duration: {stats['avg_task_duration']:.2f}s")
    print(f"Success rate: {stats['success_rate']:.1%}")

    assert capsys.readouterr().out.splitlines() == [
        "Tasks completed: 3", "Average duration: 2.00s", "Success rate: 100.0%"]
    monitor.close()
