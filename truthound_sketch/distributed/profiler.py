"""``DistributedProfiler``: one interface over every engine."""

from __future__ import annotations

from typing import Any

from ..config import ProfileConfig
from ..result import TableProfile
from .configs import DaskConfig, LocalConfig, RayConfig, SparkConfig
from .partitioning import PartitionStrategy
from .registry import BackendRegistry, DistributedBackend, auto_select_backend, backend_from_env

__all__ = ["DistributedProfiler"]

_CONFIG_BACKEND = {SparkConfig: "spark", DaskConfig: "dask", RayConfig: "ray", LocalConfig: "local"}


class DistributedProfiler:
    def __init__(self, backend: Any, *, profile_config: ProfileConfig | None = None) -> None:
        self.backend = backend
        self.profile_config = profile_config or getattr(backend, "profile_config", None) or ProfileConfig()

    @classmethod
    def create(cls, backend: DistributedBackend | str | None = None, config: Any = None, *,
               partition_strategy: PartitionStrategy | str = PartitionStrategy.ROW_BASED, monitor: Any = None,
               profile_config: ProfileConfig | None = None, **backend_options: Any) -> "DistributedProfiler":  # fmt: skip
        """Build a profiler on ``backend`` (a name, a ``DistributedBackend``, or None for
        ``TRUTHOUND_DISTRIBUTED_BACKEND``, else the backend ``config``'s type implies, else local)."""
        if backend is None:
            backend = _CONFIG_BACKEND.get(type(config)) or backend_from_env()
        name = backend.value if isinstance(backend, DistributedBackend) else str(backend).lower()
        if name == "auto":
            name = auto_select_backend().value
        options = dict(backend_options, partition_strategy=partition_strategy, monitor=monitor)
        if profile_config is not None:
            options["profile_config"] = profile_config
        return cls(BackendRegistry.create(name, config=config, **options), profile_config=profile_config)

    @property
    def backend_name(self) -> str:
        return getattr(self.backend, "name", type(self.backend).__name__)

    def profile(self, data: Any, **options: Any) -> TableProfile:
        return self.backend.profile(data, **options)

    def close(self) -> None:
        close = getattr(self.backend, "close", None)
        if close:
            close()

    def __enter__(self) -> "DistributedProfiler":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
