"""Per-engine settings, with the fields and defaults users know."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["SparkConfig", "DaskConfig", "RayConfig", "LocalConfig"]


@dataclass
class SparkConfig:
    app_name: str = "truthound-profiler"
    master: str = "local[*]"
    executor_memory: str = "4g"
    executor_cores: int = 2
    num_executors: int = 4
    spark_config: dict[str, str] = field(default_factory=dict)


@dataclass
class DaskConfig:
    scheduler: str = "threads"  # threads, processes, synchronous, distributed (or a scheduler address)
    num_workers: int | None = None  # None = number of CPU cores
    memory_limit: str = "4GB"
    dashboard_address: str = ":8787"


@dataclass
class RayConfig:
    address: str | None = None  # None = local cluster
    num_cpus: int | None = None
    num_gpus: int | None = None
    object_store_memory: int | None = None


@dataclass
class LocalConfig:
    num_workers: int | None = None  # None = TRUTHOUND_NUM_WORKERS or the number of CPU cores
    #: True: worker processes; False: threads; None: threads up to THREADS_UP_TO workers, then processes
    use_processes: bool | None = None
    max_retries: int = 2
