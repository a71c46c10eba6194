"""Webhook callback against real HTTP servers on 127.0.0.1."""

from __future__ import annotations

import http.server
import json
import socket
import threading

import pytest
from _net import free_port

from truthound_sketch.distributed.monitoring import (
    DistributedMonitor,
    EventSeverity,
    MonitorConfig,
    MonitorEvent,
    MonitorEventType as E,
    WebhookMonitorCallback,
)
from truthound_sketch.errors import ConfigError


class Receiver:
    """A real HTTP server that records every POST."""

    def __init__(self, status: int = 200) -> None:
        self.bodies: list[dict] = []
        self.headers: list[dict] = []
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                owner.bodies.append(json.loads(body))
                owner.headers.append(dict(self.headers))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args):
                return

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def failing_run(monitor: DistributedMonitor) -> None:
    monitor.run_started(backend="local", num_partitions=2)
    for p in range(2):
        monitor.partition_submitted(p)
        monitor.partition_started(p, worker_id="w")
    monitor.partition_failed(1, error=RuntimeError("bad parquet"), will_retry=True)
    monitor.partition_submitted(1)
    monitor.partition_started(1, worker_id="w")
    for p in range(2):
        monitor.partition_completed(p, rows=10, duration_seconds=0.1)
    monitor.worker_lost("w-2", reason="node preempted")
    monitor.run_finished(rows=20, duration_seconds=1.0)


def test_posts_only_warnings_and_worse_with_headers(receiver):
    hook = WebhookMonitorCallback(url=receiver.url, headers={"Authorization": "Bearer token"},
                                  event_filter=lambda e: e.severity >= EventSeverity.WARNING)
    monitor = DistributedMonitor(MonitorConfig.standard(), callbacks=[hook])
    failing_run(monitor)
    assert hook.flush(30)
    expected = [e.to_dict() for e in monitor.events if e.severity >= EventSeverity.WARNING]
    assert len(expected) >= 5
    got = sorted(receiver.bodies, key=lambda b: b["sequence"])
    assert [b["sequence"] for b in got] == [e["sequence"] for e in expected]
    assert {b["event_type"] for b in got} >= {"task_failed", "partition_error", "task_retrying",
                                              "worker_unhealthy"}
    assert all(b["severity"] in ("WARNING", "ERROR", "CRITICAL") for b in got)
    assert got[0]["text"].startswith("[WARNING]")
    assert all(h["Authorization"] == "Bearer token" for h in receiver.headers)
    assert all(h["Content-Type"] == "application/json" for h in receiver.headers)
    assert hook.sent_count == len(expected) and hook.failed_count == 0


def test_event_filter_accepts_a_severity(receiver):
    hook = WebhookMonitorCallback(receiver.url, event_filter=EventSeverity.CRITICAL)
    monitor = DistributedMonitor(MonitorConfig.standard(), callbacks=[hook])
    failing_run(monitor)
    assert hook.flush(30)
    assert [b["event_type"] for b in receiver.bodies] == ["worker_unhealthy"]
    assert receiver.bodies[0]["data"]["reason"] == "node preempted"


def test_hanging_server_does_not_block_the_run_and_the_failure_is_counted():
    with socket.socket() as hang:  # accepts connections (backlog) but never answers
        hang.bind(("127.0.0.1", 0))
        hang.listen(16)
        url = f"http://127.0.0.1:{hang.getsockname()[1]}/hook"
        hook = WebhookMonitorCallback(url, event_filter=EventSeverity.WARNING, timeout_seconds=0.3,
                                      max_retries=0, flush_timeout_seconds=0.2)
        cfg = MonitorConfig.standard()
        monitor = DistributedMonitor(cfg, callbacks=[hook])
        done = threading.Event()

        def run():
            failing_run(monitor)
            done.set()

        engine = threading.Thread(target=run, daemon=True)
        engine.start()
        # the run finishes while the server has not answered a single request
        assert done.wait(60), "the run was blocked by a hanging webhook"
        assert hook.sent_count == 0
        assert not hook.flush(0.05)  # posts are still waiting on the hung server
        assert hook.flush(60), "posts never gave up"
    assert hook.failed_count >= 1 and hook.sent_count == 0
    assert "timed out" in hook.last_error.lower() or "timeout" in hook.last_error.lower()
    assert monitor.get_statistics()["callback_errors"] == hook.failed_count


def test_refusing_server_failure_is_counted():
    port = free_port()  # nothing listens there
    hook = WebhookMonitorCallback(f"http://127.0.0.1:{port}/", event_filter="warning", max_retries=2,
                                  retry_backoff_seconds=0.01)
    monitor = DistributedMonitor(MonitorConfig.standard(), callbacks=[hook])
    failing_run(monitor)
    assert hook.flush(30)
    warnings = sum(1 for e in monitor.events if e.severity >= EventSeverity.WARNING)
    assert hook.failed_count == warnings and hook.sent_count == 0
    assert "ConnectionRefusedError" in hook.last_error
    assert monitor.get_statistics()["callback_errors"] == warnings


def test_server_errors_are_retried_then_counted():
    r = Receiver(status=503)
    try:
        hook = WebhookMonitorCallback(r.url, max_retries=2, retry_backoff_seconds=0.01)
        monitor = DistributedMonitor(MonitorConfig.standard(), callbacks=[hook])
        monitor.run_started(backend="local", num_partitions=0)
        assert hook.flush(30)
        assert len(r.bodies) == 3  # one post and two retries
        assert hook.failed_count == 1 and hook.last_error.startswith("HTTP 503")
    finally:
        r.close()


def test_full_queue_drops_are_counted(receiver):
    gate = threading.Event()
    hook = WebhookMonitorCallback(receiver.url, queue_size=1, payload=lambda e: (gate.wait(30), e.to_dict())[1])
    for _ in range(5):
        hook.on_event(MonitorEvent(E.TASK_FAILED, "x", EventSeverity.ERROR))
    gate.set()
    assert hook.flush(30)
    assert hook.dropped_count >= 3  # one in flight, one queued, the rest dropped
    assert hook.sent_count + hook.dropped_count == 5


def test_bad_url_is_a_config_error():
    with pytest.raises(ConfigError, match="http"):
        WebhookMonitorCallback("hooks.slack.com/x")
