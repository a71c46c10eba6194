"""Watching Spark through its status tracker."""

from __future__ import annotations

from typing import Any

from truthound_sketch.errors import MissingDependencyError

from .base import MonitorAdapter, WorkerSample

__all__ = ["SparkMonitorAdapter"]

_CONNECT_MESSAGE = (
    "this is a Spark Connect session, which has no SparkContext and so no status tracker; "
    "executor health cannot be observed from the client. Partition events from the engine "
    "still reach the monitor; for executor monitoring use a classic SparkSession or Spark's UI"
)


class SparkMonitorAdapter(MonitorAdapter):
    """Executors from ``spark.sparkContext.statusTracker()``: running tasks and storage memory
    in use per executor, plus active jobs and stages.

    In local mode the executors live in the driver's JVM, whose real CPU and memory use is read
    with psutil. Spark Connect sessions have no SparkContext: the adapter then reports itself
    unavailable (one warning on the log and an ADAPTER_UNAVAILABLE event) and polls nothing.
    """

    engine = "spark"

    def __init__(self, spark_session: Any = None, poll_interval_seconds: float = 5.0) -> None:
        super().__init__(poll_interval_seconds)
        self.spark_session = spark_session
        self._sc = None
        self._tracker = None
        self._jvm = None

    def connect(self) -> bool:
        if self._tracker is not None:
            return True
        try:
            from pyspark.sql import SparkSession
        except ImportError:
            raise MissingDependencyError("pyspark", "spark", "Monitoring Spark") from None
        session = self.spark_session or SparkSession.getActiveSession()
        if session is None:
            return self._unavailable("no active SparkSession: pass SparkMonitorAdapter(spark_session=...)")
        self.spark_session = session
        try:
            sc = session.sparkContext
        except Exception as exc:  # Spark Connect: PySparkAttributeError [JVM_ATTRIBUTE_NOT_SUPPORTED]
            return self._unavailable(f"{_CONNECT_MESSAGE} ({type(exc).__name__})")
        self._sc = sc
        self._tracker = sc.statusTracker()
        self.unavailable_reason = None
        return True

    def sample(self) -> list[WorkerSample]:
        if not self.connect():
            return []
        if getattr(self._sc, "_jsc", None) is None:  # the SparkContext was stopped
            return []
        jvm = self._driver_jvm()
        samples = []
        for e in self._tracker.getExecutorInfos():
            memory = (100.0 * e.usedOnHeapStorageMemory / e.totalOnHeapStorageMemory
                      if e.totalOnHeapStorageMemory else None)
            cpu = None
            info = {"host": e.host, "port": e.port, "cache_size": e.cacheSize,
                    "storage_memory_used": e.usedOnHeapStorageMemory,
                    "storage_memory_total": e.totalOnHeapStorageMemory}
            if jvm is not None:  # local mode: the executor is the driver JVM
                cpu, memory = jvm.cpu_percent(None), jvm.memory_percent()
                info["jvm_pid"] = jvm.pid
            samples.append(WorkerSample(f"spark-{e.host}:{e.port}", cpu_percent=cpu, memory_percent=memory,
                                        active_tasks=e.numRunningTasks, info=info))
        return samples

    def get_metrics(self) -> dict[str, Any]:
        """Application-wide numbers: active jobs and stages with their task counts."""
        if not self.connect():
            return {"available": False, "reason": self.unavailable_reason}
        t = self._tracker
        stages = []
        for stage_id in t.getActiveStageIds():
            s = t.getStageInfo(stage_id)
            if s is not None:
                stages.append({"stage_id": s.stageId, "name": s.name, "num_tasks": s.numTasks,
                               "active_tasks": s.numActiveTasks, "completed_tasks": s.numCompletedTasks,
                               "failed_tasks": s.numFailedTasks})
        executors = t.getExecutorInfos()
        return {
            "available": True,
            "application_id": self._sc.applicationId,
            "master": self._sc.master,
            "active_jobs": list(t.getActiveJobsIds()),
            "active_stages": stages,
            "executors": len(executors),
            "running_tasks": sum(e.numRunningTasks for e in executors),
            "jobs_known": len(t.getJobIdsForGroup()),
        }

    def _driver_jvm(self):
        if not str(self._sc.master).startswith("local"):
            return None
        if self._jvm is None:
            proc = getattr(getattr(self._sc, "_gateway", None), "proc", None)
            if proc is None:
                return None
            import psutil

            try:
                self._jvm = psutil.Process(proc.pid)
                self._jvm.cpu_percent(None)
            except psutil.Error:
                return None
        return self._jvm
