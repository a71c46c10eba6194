"""LocalMonitorAdapter on a real ProcessPoolExecutor: readings, a killed worker, a clean shutdown."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import pytest

from truthound_sketch.distributed.monitoring import (
    DistributedMonitor,
    HealthStatus,
    MonitorConfig,
    MonitorEventType as E,
)
from truthound_sketch.distributed.monitoring.adapters import LocalMonitorAdapter

_started = None
_meet = None


def _init(queue, barrier) -> None:
    global _started, _meet
    _started, _meet = queue, barrier


def sleeping_task(seconds: float) -> int:
    _started.put(os.getpid())
    time.sleep(seconds)
    return os.getpid()


def meeting_task() -> int:
    """Waits until both pool workers (and the test) meet: two calls land on two processes."""
    _started.put(os.getpid())
    _meet.wait(60)
    return os.getpid()


class Waiter:
    def __init__(self) -> None:
        self.events = []
        self.cond = threading.Condition()

    def __call__(self, event) -> None:
        with self.cond:
            self.events.append(event)
            self.cond.notify_all()

    def wait_for(self, predicate, timeout: float = 60.0):
        with self.cond:
            found = self.cond.wait_for(lambda: next((e for e in self.events if predicate(e)), None), timeout)
        assert found is not None, [e.message for e in self.events]
        return found


@pytest.fixture
def pool():
    ctx = multiprocessing.get_context("fork")
    started, barrier = ctx.SimpleQueue(), ctx.Barrier(3)  # two workers and this test meet
    executor = ProcessPoolExecutor(max_workers=2, mp_context=ctx, initializer=_init,
                                   initargs=(started, barrier))
    yield executor, started, barrier
    executor.shutdown(wait=True, cancel_futures=True)


def test_killed_worker_process_is_reported_lost(pool):
    executor, started, _ = pool
    waiter = Waiter()
    monitor = DistributedMonitor(MonitorConfig.standard(), callbacks=[waiter])
    monitor.run_started(backend="local", num_partitions=2)
    adapter = LocalMonitorAdapter(executor=executor, poll_interval_seconds=0.1)
    monitor.attach_adapter(adapter)
    assert adapter.running and monitor.adapters == [adapter]
    try:
        doomed = executor.submit(sleeping_task, 60)
        victim = started.get()  # the worker process running the task
        worker_id = f"local-{victim}"
        waiter.wait_for(lambda e: e.event_type == E.WORKER_REGISTERED and e.worker_id == worker_id)
        os.kill(victim, signal.SIGKILL)
        lost = waiter.wait_for(lambda e: e.event_type == E.WORKER_UNHEALTHY and e.worker_id == worker_id)
        assert lost.data["status"] == "CRITICAL"
        assert "SIGKILL" in lost.data["reason"] and "-9" in lost.data["reason"]
        waiter.wait_for(lambda e: e.event_type == E.WORKER_UNREGISTERED and e.worker_id == worker_id)
        health = monitor.health_monitor.get_worker_health(worker_id)
        assert health.lost and health.status == HealthStatus.CRITICAL
        with pytest.raises(BrokenProcessPool):
            doomed.result(timeout=60)
        assert monitor.get_statistics()["workers_lost"] >= 1
        # reported once, although the broken pool keeps listing the dead process
        adapter.poll_once()
        unhealthy = [e for e in waiter.events if e.event_type == E.WORKER_UNHEALTHY and e.worker_id == worker_id]
        assert len(unhealthy) == 1
    finally:
        monitor.close()
    assert not adapter.running


def test_worker_processes_readings_and_clean_shutdown(pool):
    executor, started, barrier = pool
    waiter = Waiter()
    monitor = DistributedMonitor(MonitorConfig.standard(), callbacks=[waiter])
    adapter = LocalMonitorAdapter(executor=executor, poll_interval_seconds=0.1)
    adapter.attach(monitor, start=False)
    futures = [executor.submit(meeting_task) for _ in range(2)]
    pids = {started.get(), started.get()}
    assert len(pids) == 2
    adapter.poll_once()
    samples = {s.worker_id: s for s in adapter.poll_once()}
    assert {f"local-{p}" for p in pids} <= set(samples)
    for pid in pids:
        s = samples[f"local-{pid}"]
        assert s.alive and s.cpu_percent is not None and 0 < s.memory_percent < 100
    barrier.wait(60)
    assert {f.result(timeout=60) for f in futures} == pids
    assert adapter.get_metrics()["workers"] == 2
    executor.shutdown(wait=True)
    adapter.poll_once()
    gone = [e for e in waiter.events if e.event_type == E.WORKER_UNREGISTERED]
    assert {e.worker_id for e in gone} == {f"local-{p}" for p in pids}
    assert all("exited normally" in e.data["reason"] for e in gone)
    assert not [e for e in waiter.events if e.event_type == E.WORKER_UNHEALTHY]
