"""Prometheus: a real scrape over HTTP during a run driven through the bus."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from truthound_sketch.distributed.monitoring import (
    DistributedMetricsCollector,
    DistributedMonitor,
    MetricsConfig,
    MonitorConfig,
)
from truthound_sketch.errors import ConfigError


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def prom_config(**kw) -> MonitorConfig:
    return MonitorConfig(metrics=MetricsConfig(enable_prometheus=True, prometheus_port=0, **kw))


def test_scrape_during_a_run_returns_its_metrics():
    monitor = DistributedMonitor(prom_config())
    assert monitor.prometheus_port is None  # not before the run
    monitor.run_started(backend="local", num_partitions=4, total_rows=400)
    port = monitor.prometheus_port
    assert isinstance(port, int) and port > 0
    durations = [0.25, 0.5, 1.0]
    for p, d in enumerate(durations):
        monitor.partition_submitted(p, total_rows=100)
        monitor.partition_started(p, worker_id="w-1")
        monitor.partition_completed(p, rows=100, duration_seconds=d)
    monitor.partition_submitted(3)
    monitor.partition_started(3, worker_id="w-2")
    monitor.partition_failed(3, error="boom", will_retry=True)
    monitor.worker_heartbeat("w-1", cpu_percent=42.0, memory_percent=12.5, active_tasks=1)

    m = scrape(port)
    assert m[("truthound_tasks_completed_total", ())] == 3
    assert m[("truthound_tasks_submitted_total", ())] == 4
    assert m[("truthound_tasks_failed_total", ())] == 1
    assert m[("truthound_tasks_retried_total", ())] == 1
    assert m[("truthound_rows_processed_total", ())] == 300
    label = (("task_type", "profile_partition"),)
    assert m[("truthound_task_duration_seconds_count", label)] == 3
    assert m[("truthound_task_duration_seconds_sum", label)] == pytest.approx(sum(durations))
    p50 = (("quantile", "0.5"), ("task_type", "profile_partition"))
    assert m[("truthound_task_duration_seconds", p50)] == pytest.approx(0.5)
    assert m[("truthound_worker_cpu_percent", (("worker", "w-1"),))] == 42.0
    assert m[("truthound_run_active", ())] == 1
    assert m[("truthound_progress_percent", ())] == pytest.approx(75.0)
    assert m[("truthound_workers", ())] == 2

    monitor.run_finished(rows=300, duration_seconds=2.0)
    assert monitor.prometheus_port is None
    with pytest.raises(urllib.error.URLError):
        scrape(port)


def test_server_can_stay_after_the_run_and_binds_loopback_only():
    monitor = DistributedMonitor(prom_config(keep_prometheus_server=True))
    try:
        monitor.run_started(backend="local", num_partitions=1)
        port = monitor.prometheus_port
        monitor.partition_completed(0, rows=5, duration_seconds=0.1)
        monitor.run_finished(rows=5, duration_seconds=0.1)
        assert monitor.prometheus_port == port
        assert scrape(port)[("truthound_run_active", ())] == 0
        server = monitor.metrics_collector._server
        assert server.server_address[0] == "127.0.0.1"
    finally:
        monitor.close()
    assert monitor.prometheus_port is None


def test_busy_port_is_reported_and_the_run_goes_on(caplog):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        taken = busy.getsockname()[1]
        monitor = DistributedMonitor(MonitorConfig(metrics=MetricsConfig(enable_prometheus=True,
                                                                           prometheus_port=taken)))
        monitor.run_started(backend="local", num_partitions=1)
        monitor.partition_completed(0, rows=1, duration_seconds=0.1)
        monitor.run_finished(rows=1, duration_seconds=0.1)
        with pytest.raises(ConfigError, match="prometheus_port"):
            DistributedMetricsCollector(MetricsConfig(prometheus_port=taken)).start_http_server()
    assert monitor.prometheus_port is None
    assert str(taken) in monitor.prometheus_error and "prometheus_port" in monitor.prometheus_error
    assert monitor.get_statistics()["tasks_completed"] == 1


def test_collectors_use_private_registries():
    before = {m.name for m in REGISTRY.collect()}
    a = DistributedMetricsCollector()
    b = DistributedMetricsCollector()
    a.increment_counter("tasks_completed", 2)
    b.increment_counter("tasks_completed", 5)
    assert "truthound_tasks_completed_total 2.0" in a.export_prometheus()
    assert "truthound_tasks_completed_total 5.0" in b.export_prometheus()
    assert {m.name for m in REGISTRY.collect()} == before


def test_metrics_config_rejects_bad_values():
    with pytest.raises(ConfigError, match="prometheus_port"):
        MetricsConfig(prometheus_port=70000)
    with pytest.raises(ConfigError, match="percentiles"):
        MetricsConfig(percentiles=[0.5, 1.5])
