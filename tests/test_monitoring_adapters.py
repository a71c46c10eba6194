"""Engine adapters against real engines: a local Dask cluster, a local SparkSession (and a Spark
Connect client), and a local Ray instance. One Spark session and one Ray instance per module."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from truthound_sketch.distributed.monitoring import (
    DistributedMonitor,
    MonitorConfig,
    MonitorEvent,
    MonitorEventType as E,
)
from truthound_sketch.distributed.monitoring.adapters import (
    DaskMonitorAdapter,
    LocalMonitorAdapter,
    RayMonitorAdapter,
    SparkMonitorAdapter,
)


class Recorder:
    """Collects events; lets a test wait (bounded) for one that matches."""

    def __init__(self) -> None:
        self.events: list[MonitorEvent] = []
        self._cond = threading.Condition()

    def __call__(self, event: MonitorEvent) -> None:
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()

    def wait_for(self, predicate, timeout: float = 60.0) -> MonitorEvent:
        with self._cond:
            found = self._cond.wait_for(lambda: next((e for e in self.events if predicate(e)), None), timeout)
        assert found is not None, f"no matching event within {timeout}s; got {[e.message for e in self.events]}"
        return found


def wait_until(check, timeout: float = 60.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what} not reached within {timeout}s")


needs_java = pytest.mark.skipif(shutil.which("java") is None and not os.environ.get("CI"), reason="Spark needs Java")


def new_monitor() -> tuple[DistributedMonitor, Recorder]:
    rec = Recorder()
    return DistributedMonitor(MonitorConfig.standard(), callbacks=[rec]), rec


# ----------------------------------------------------------------------------- imports stay lazy
def test_adapters_import_no_engine():
    code = ("import sys; import truthound_sketch.distributed.monitoring.adapters as a; "
            "a.SparkMonitorAdapter(); a.RayMonitorAdapter(address='ray://cluster:10001'); a.DaskMonitorAdapter(); "
            "print(sorted(m for m in ('pyspark', 'dask', 'distributed', 'ray') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"


# ----------------------------------------------------------------------------- local (thread pool)
def test_local_adapter_with_a_thread_pool_reads_this_process():
    with ThreadPoolExecutor(max_workers=2) as thread_pool_executor:
        # Local backend adapter
        local_adapter = LocalMonitorAdapter(
            executor=thread_pool_executor,
            poll_interval_seconds=1.0,
        )
        monitor, rec = new_monitor()
        local_adapter.attach(monitor, start=False)
        local_adapter.poll_once()
        sum(i * i for i in range(3_000_000))  # burn CPU in this process between two readings
        [sample] = local_adapter.poll_once()
        assert sample.worker_id == f"local-{os.getpid()}"
        assert sample.cpu_percent > 0 and 0 < sample.memory_percent < 100
        assert rec.events[0].event_type == E.WORKER_REGISTERED
        metrics = local_adapter.get_metrics()
        assert metrics["kind"] == "threads" and metrics["max_workers"] == 2
        entered, release = threading.Event(), threading.Event()
        busy = thread_pool_executor.submit(lambda: (entered.set(), release.wait(30)))
        assert entered.wait(30)
        assert local_adapter.poll_once()[0].active_tasks == 1
        release.set()
        busy.result(timeout=30)


# ----------------------------------------------------------------------------- Dask
@pytest.fixture(scope="module")
def dask_client():
    from dask.distributed import Client, LocalCluster

    cluster = LocalCluster(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None)
    client = Client(cluster)
    yield client
    client.close()
    cluster.close()


@pytest.mark.dask
def test_dask_adapter(dask_client):
    # Dask adapter
    dask_adapter = DaskMonitorAdapter(
        client=dask_client,
        poll_interval_seconds=2.0,
    )
    assert dask_adapter.connect()
    workers = dask_adapter.get_workers()
    metrics = dask_adapter.get_metrics()

    [worker] = workers
    address = next(iter(dask_client.scheduler_info()["workers"]))
    assert worker["worker_id"] == address and worker["alive"]
    assert worker["info"]["nthreads"] == 2 and 0 < worker["memory_percent"] < 100
    assert metrics["n_workers"] == 1 and metrics["total_threads"] == 2 and metrics["memory_used"] > 0

    # polling on its own thread reports the worker on the bus, with its running tasks
    monitor, rec = new_monitor()
    dask_adapter.poll_interval_seconds = 0.1
    dask_adapter.attach(monitor)
    try:
        rec.wait_for(lambda e: e.event_type == E.WORKER_REGISTERED and e.worker_id == address)
        future = dask_client.submit(time.sleep, 3, pure=False)
        wait_until(lambda: monitor.metrics_collector.get_metrics().worker_metrics[address].get("active_tasks") == 1,
                   what="the running task to show in the heartbeats")
        assert dask_adapter.get_metrics()["tasks_processing"] == 1
        future.result(timeout=60)
        future.release()  # once the scheduler forgets the result, the worker can retire
        wait_until(lambda: not dask_client.who_has(), what="the scheduler to release the result")
        # a worker that leaves the scheduler is reported lost
        dask_client.retire_workers([address])
        lost = rec.wait_for(lambda e: e.event_type == E.WORKER_UNHEALTHY and e.worker_id == address)
        assert "no longer reported by dask" in lost.data["reason"]
        rec.wait_for(lambda e: e.event_type == E.WORKER_UNREGISTERED and e.worker_id == address)
    finally:
        dask_adapter.stop()
    assert not dask_adapter.running and dask_adapter.poll_errors == 0


# ----------------------------------------------------------------------------- Spark
@pytest.fixture(scope="module")
def spark():
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:  # another module's session: this test needs its own local[1]
        active.stop()
    os.environ["PYSPARK_PYTHON"] = sys.executable
    session = (SparkSession.builder.master("local[1]").appName("monitoring-adapter-test")
               .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
               .config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
               .getOrCreate())
    yield session
    session.stop()


@pytest.mark.spark
@needs_java
def test_spark_adapter(spark, tmp_path):
    # Spark adapter
    spark_adapter = SparkMonitorAdapter(
        spark_session=spark,
        poll_interval_seconds=5.0,
    )
    monitor, rec = new_monitor()
    spark_adapter.attach(monitor, start=False)
    [sample] = spark_adapter.poll_once()
    assert sample.worker_id.startswith("spark-") and sample.info["storage_memory_total"] > 0
    jvm_pid = sample.info["jvm_pid"]  # local mode: the executor is the driver JVM
    import psutil

    assert "java" in psutil.Process(jvm_pid).name().lower()
    assert sample.memory_percent > 0 and sample.cpu_percent is not None
    rec.wait_for(lambda e: e.event_type == E.WORKER_REGISTERED and e.worker_id == sample.worker_id, 5)
    reported = monitor.metrics_collector.get_metrics().worker_metrics[sample.worker_id]
    assert reported["memory_percent"] == pytest.approx(sample.memory_percent)

    known = spark_adapter.get_metrics()["jobs_known"]
    # The task runs until the test has seen it (Spark's status store may write a task's start
    # only at the executor's next heartbeat, 10 s later: a fixed sleep could end unseen).
    release = str(tmp_path / "release")

    def task(x):  # a nested function: shipped to Spark's Python worker by value
        import os
        import time

        deadline = time.monotonic() + 170
        while not os.path.exists(release) and time.monotonic() < deadline:
            time.sleep(0.1)
        return x

    job = threading.Thread(target=lambda: spark.sparkContext.parallelize([1], 1).map(task).collect())
    job.start()
    try:
        busy = wait_until(lambda: spark_adapter.get_metrics()["running_tasks"] >= 1 and spark_adapter.get_metrics(),
                          timeout=180, what="a running Spark task")
        assert busy["active_jobs"] and busy["active_stages"][0]["num_tasks"] == 1
        [sample] = spark_adapter.poll_once()
        assert sample.active_tasks == 1
    finally:
        open(release, "w").close()
    job.join(120)
    assert spark_adapter.get_metrics()["jobs_known"] == known + 1
    assert spark_adapter.get_metrics()["master"] == "local[1]"


@pytest.mark.spark
@needs_java
def test_spark_connect_session_degrades_with_a_clear_message(spark):
    from pyspark.sql.connect.session import SparkSession as ConnectSession

    remote = ConnectSession.builder.remote("sc://127.0.0.1:1").create()  # a client; no RPC is made
    try:
        adapter = SparkMonitorAdapter(spark_session=remote, poll_interval_seconds=5.0)
        monitor, rec = new_monitor()
        adapter.attach(monitor, start=False)
        assert adapter.poll_once() == []
        assert "Spark Connect" in adapter.unavailable_reason and "SparkContext" in adapter.unavailable_reason
        [event] = [e for e in rec.events if e.event_type == E.ADAPTER_UNAVAILABLE]
        assert event.severity.name == "WARNING" and event.data["engine"] == "spark"
        assert adapter.get_metrics() == {"available": False, "reason": adapter.unavailable_reason}
        adapter.poll_once()
        assert len([e for e in rec.events if e.event_type == E.ADAPTER_UNAVAILABLE]) == 1  # said once
    finally:
        remote.client.close()
    assert spark.range(3).count() == 3  # the classic session is unaffected


# ----------------------------------------------------------------------------- Ray
@pytest.fixture(scope="module")
def ray_instance():
    import ray

    ray.init(num_cpus=1, include_dashboard=False, logging_level="ERROR")
    yield ray
    ray.shutdown()


def test_ray_adapter_without_ray_running_says_what_to_do():
    code = ("from truthound_sketch.distributed.monitoring.adapters import RayMonitorAdapter as R; "
            "a = R(); print(a.connect(), '|', a.unavailable_reason)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.startswith("False |") and "ray.init()" in out.stdout


@pytest.mark.ray
def test_ray_adapter(ray_instance):
    ray = ray_instance
    # Ray adapter
    ray_adapter = RayMonitorAdapter(
        address="ray://cluster:10001",
        poll_interval_seconds=5.0,
    )
    # constructing connects to nothing; Ray is already initialized here, so the address is unused
    assert ray_adapter.connect()
    monitor, rec = new_monitor()
    ray_adapter.attach(monitor, start=False)

    @ray.remote
    def square(x):
        return x * x

    assert ray.get(square.remote(7)) == 49
    ray_adapter.poll_once()
    [sample] = ray_adapter.poll_once()
    node_id = ray.get_runtime_context().get_node_id()
    assert sample.worker_id == f"ray-node-{node_id[:12]}" and sample.alive
    assert 0 < sample.memory_percent < 100 and sample.cpu_percent is not None
    rec.wait_for(lambda e: e.event_type == E.WORKER_REGISTERED and e.worker_id == sample.worker_id, 5)
    reported = monitor.metrics_collector.get_metrics().worker_metrics[sample.worker_id]
    assert reported["memory_percent"] == pytest.approx(sample.memory_percent)
    metrics = ray_adapter.get_metrics()
    assert metrics["nodes"] == metrics["alive_nodes"] == 1
    assert metrics["cluster_resources"]["CPU"] == 1.0
    if not metrics["state_api"]:  # no dashboard here: the fallback is announced, not silent
        assert "dashboard" in metrics["state_api_error"] and "ray.nodes()" in metrics["state_api_error"]
    assert ray_adapter.get_workers()[0]["worker_id"] == sample.worker_id
