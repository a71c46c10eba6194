"""Backends by name: built-ins, ``@BackendRegistry.register`` and entry points.

Third-party packages publish backends under the entry-point group ``truthound_sketch.backends``
(``name = "package.module:Class"``).  Built-in engine shims are imported only when created.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from enum import Enum
from importlib.metadata import entry_points
from typing import Any, Callable

from ..errors import ConfigError, MissingDependencyError

__all__ = ["DistributedBackend", "BackendRegistry", "auto_select_backend"]


class DistributedBackend(str, Enum):
    LOCAL = "local"
    SPARK = "spark"
    DASK = "dask"
    RAY = "ray"
    AUTO = "auto"


_BUILTIN = {
    "local": ("truthound_sketch.distributed.local", "LocalBackend", None),
    "spark": ("truthound_sketch.shims.spark", "SparkBackend", ("pyspark", "spark")),
    "dask": ("truthound_sketch.shims.dask", "DaskBackend", ("distributed", "dask")),
    "ray": ("truthound_sketch.shims.ray", "RayBackend", ("ray", "ray")),
}
ENTRY_POINT_GROUP = "truthound_sketch.backends"


class BackendRegistry:
    _custom: dict[str, Any] = {}

    @classmethod
    def register(cls, name: str) -> Callable[[Any], Any]:
        def deco(backend: Any) -> Any:
            cls._custom[name] = backend
            return backend

        return deco

    @classmethod
    def unregister(cls, name: str) -> None:
        cls._custom.pop(name, None)

    @classmethod
    def _entry_points(cls) -> dict[str, Any]:
        return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}

    @classmethod
    def list(cls) -> list[str]:
        names = list(_BUILTIN) + [n for n in cls._custom if n not in _BUILTIN]
        return names + [n for n in cls._entry_points() if n not in names]

    @classmethod
    def get(cls, name: str) -> Any:
        name = name.value if isinstance(name, Enum) else str(name).lower()
        if name in cls._custom:
            return cls._custom[name]
        if name in _BUILTIN:
            module, attr, needs = _BUILTIN[name]
            if needs is not None:
                try:
                    importlib.import_module(needs[0])
                except ImportError:
                    raise MissingDependencyError(needs[0], needs[1], f"the '{name}' backend") from None
            return getattr(importlib.import_module(module), attr)
        eps = cls._entry_points()
        if name in eps:
            return eps[name].load()
        raise ConfigError(f"unknown backend {name!r}; known backends: {', '.join(cls.list())}")

    @classmethod
    def create(cls, name: str, config: Any = None, **kwargs: Any) -> Any:
        backend = cls.get(name)
        if config is not None:
            kwargs["config"] = config
        return backend(**_accepted(backend, kwargs))


def _accepted(factory: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments ``factory`` takes: a plain class registered with only ``profile(data)``
    gets none of the engine options it does not know; one that names an option it cannot take fails."""
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return kwargs
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return kwargs
    names = {p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}
    dropped = [k for k, v in kwargs.items() if k not in names and v is not None and k not in _ENGINE_OPTIONS]
    if dropped:
        raise ConfigError(f"backend {getattr(factory, '__name__', factory)!r} does not take the option(s) {dropped}")
    return {k: v for k, v in kwargs.items() if k in names}


# options every engine is offered; a backend that does not take one simply does not get it
_ENGINE_OPTIONS = {"profile_config", "monitor", "partition_strategy", "num_workers"}


def auto_select_backend() -> DistributedBackend:
    """Spark if a Spark session is active, else Dask if a Dask client exists, else Ray if
    initialized, else Local.  Engines the program has not imported are not imported."""
    if "pyspark" in sys.modules:
        try:
            from pyspark.sql import SparkSession

            if SparkSession.getActiveSession() is not None:
                return DistributedBackend.SPARK
        except Exception:
            pass
    if "distributed" in sys.modules:
        try:
            from distributed import default_client

            default_client()
            return DistributedBackend.DASK
        except Exception:
            pass
    if "ray" in sys.modules:
        try:
            import ray

            if ray.is_initialized():
                return DistributedBackend.RAY
        except Exception:
            pass
    return DistributedBackend.LOCAL


def backend_from_env(default: str = "local") -> str:
    return os.environ.get("TRUTHOUND_DISTRIBUTED_BACKEND", default).strip().lower() or default
