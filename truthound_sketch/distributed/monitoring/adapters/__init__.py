"""Engine adapters: poll a process pool, Dask, Spark or Ray and report workers on the bus.

Each adapter imports its engine only when it polls, so importing this package imports none.
"""

from __future__ import annotations

from .base import MonitorAdapter, WorkerSample
from .dask import DaskMonitorAdapter
from .local import LocalMonitorAdapter
from .ray import RayMonitorAdapter
from .spark import SparkMonitorAdapter

__all__ = [
    "DaskMonitorAdapter",
    "LocalMonitorAdapter",
    "MonitorAdapter",
    "RayMonitorAdapter",
    "SparkMonitorAdapter",
    "WorkerSample",
]
