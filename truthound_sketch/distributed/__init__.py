"""Profiling on one core, a process pool, Spark, Dask or Ray, with one interface.

Engine shims (``SparkBackend``, ``DaskBackend``, ``RayBackend``) are imported on first use, so
importing this package never imports an engine.
"""

from __future__ import annotations

import importlib
from typing import Any

from .base import ProfilingBackend, reduce_partials, tree_reduce
from .configs import DaskConfig, LocalConfig, RayConfig, SparkConfig
from .local import LocalBackend
from .merger import ProfileMerger
from .partitioning import (
    ColumnBasedPartitioner,
    HashPartitioner,
    HybridPartitioner,
    PartitionStrategy,
    RowBasedPartitioner,
)
from .profiler import DistributedProfiler
from .registry import BackendRegistry, DistributedBackend, auto_select_backend

__all__ = [
    "BackendRegistry", "ColumnBasedPartitioner", "DaskBackend", "DaskConfig", "DistributedBackend",
    "DistributedProfiler", "HashPartitioner", "HybridPartitioner", "LocalBackend", "LocalConfig",
    "PartitionStrategy", "ProfileMerger", "ProfilingBackend", "RayBackend", "RayConfig",
    "RowBasedPartitioner", "SparkBackend", "SparkConfig", "auto_select_backend", "reduce_partials",
    "tree_reduce",
]  # fmt: skip

_LAZY = {"SparkBackend": "spark", "DaskBackend": "dask", "RayBackend": "ray"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return BackendRegistry.get(_LAZY[name])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
