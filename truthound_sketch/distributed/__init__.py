"""Profiling on one core, a process pool, Spark, Dask or Ray, with one interface.

Every name is imported on first use; engine shims (``SparkBackend``, ``DaskBackend``,
``RayBackend``) come from the backend registry, so importing this package never imports an engine.
"""

from __future__ import annotations

from typing import Any

from .._lazy import lazy_exports

_EXPORTS = {
    "ProfilingBackend": "base", "reduce_partials": "base", "tree_reduce": "base",
    "DaskConfig": "configs", "LocalConfig": "configs", "RayConfig": "configs", "SparkConfig": "configs",
    "LocalBackend": "local",
    "ProfileMerger": "merger",
    "ColumnBasedPartitioner": "partitioning", "HashPartitioner": "partitioning",
    "HybridPartitioner": "partitioning", "PartitionStrategy": "partitioning", "RowBasedPartitioner": "partitioning",
    "DistributedProfiler": "profiler",
    "BackendRegistry": "registry", "DistributedBackend": "registry", "auto_select_backend": "registry",
}  # fmt: skip
_ENGINES = {"SparkBackend": "spark", "DaskBackend": "dask", "RayBackend": "ray"}

__all__ = sorted([*_EXPORTS, *_ENGINES])

_exported = lazy_exports(__name__, _EXPORTS, globals())


def __getattr__(name: str) -> Any:
    if name in _ENGINES:
        from .registry import BackendRegistry

        return BackendRegistry.get(_ENGINES[name])
    return _exported(name)


def __dir__() -> list[str]:
    return __all__
