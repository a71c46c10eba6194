"""Observability of distributed profiling runs.

Engines publish what happens on the bus of a :class:`DistributedMonitor`; the monitor keeps
task, progress, worker-health and metrics bookkeeping and hands every :class:`MonitorEvent` to
its callbacks. Engine adapters (``truthound_sketch.distributed.monitoring.adapters``) watch
process pools, Dask, Spark and Ray clusters and report their workers on the same bus.
"""

from __future__ import annotations

from .callbacks import AsyncMonitorCallback, CallbackChain, MonitorCallbackAdapter
from .config import CallbackConfig, HealthCheckConfig, MetricsConfig, MonitorConfig, TaskTrackerConfig
from .console import ConsoleMonitorCallback, ProgressBarCallback
from .events import EventSeverity, MonitorEvent, MonitorEventType
from .factory import MonitorFactory
from .health import HealthStatus, SystemHealth, WorkerHealth, WorkerHealthMonitor
from .metrics import DistributedMetricsCollector, MetricsSnapshot
from .monitor import DistributedMonitor
from .outputs import FileMonitorCallback, LoggingMonitorCallback
from .progress import AggregatedProgress, DistributedProgressAggregator, StreamingProgressAggregator
from .registry import MonitorRegistry
from .tasks import TaskInfo, TaskState, TaskTracker, UnknownTaskError
from .webhook import WebhookMonitorCallback

__all__ = [
    "AggregatedProgress",
    "AsyncMonitorCallback",
    "CallbackChain",
    "CallbackConfig",
    "ConsoleMonitorCallback",
    "DistributedMetricsCollector",
    "DistributedMonitor",
    "DistributedProgressAggregator",
    "EventSeverity",
    "FileMonitorCallback",
    "HealthCheckConfig",
    "HealthStatus",
    "LoggingMonitorCallback",
    "MetricsConfig",
    "MetricsSnapshot",
    "MonitorCallbackAdapter",
    "MonitorConfig",
    "MonitorEvent",
    "MonitorEventType",
    "MonitorFactory",
    "MonitorRegistry",
    "ProgressBarCallback",
    "StreamingProgressAggregator",
    "SystemHealth",
    "TaskInfo",
    "TaskState",
    "TaskTracker",
    "TaskTrackerConfig",
    "UnknownTaskError",
    "WebhookMonitorCallback",
    "WorkerHealth",
    "WorkerHealthMonitor",
]
