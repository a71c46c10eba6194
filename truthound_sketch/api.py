"""``profile()``: the one call most users need."""

from __future__ import annotations

from typing import Any

from .config import ProfileConfig
from .result import TableProfile
from .sources import engine_of

__all__ = ["profile"]


def profile(data: Any, *, backend: str | None = None, config: ProfileConfig | None = None, monitor: Any = None,
            num_workers: int | None = None, storage_options: dict | None = None, **options: Any) -> TableProfile:  # fmt: skip
    """Profile a table.

    ``data`` may be a polars DataFrame or LazyFrame, a pandas DataFrame, a pyarrow Table,
    RecordBatchReader or Dataset, any object with ``__arrow_c_stream__`` (e.g. a DuckDB relation),
    a Spark, Dask or Ray frame (profiled on that engine), or a path, directory or glob of csv, tsv,
    parquet, ndjson/json or Arrow IPC files (local or any fsspec URL).

    ``options`` override fields of :class:`ProfileConfig` (``quantiles``, ``top_k``, ``columns``...).
    """
    from .distributed.registry import BackendRegistry

    config = (config or ProfileConfig()).with_options(**options)
    name = backend or engine_of(data) or "local"
    kwargs: dict[str, Any] = {"profile_config": config, "monitor": monitor}
    if name == "local":
        kwargs["num_workers"] = num_workers
    engine = BackendRegistry.create(name, **kwargs)
    try:
        if storage_options and hasattr(engine, "storage_options"):
            engine.storage_options = storage_options
        if "config" in _parameters(engine.profile):
            return engine.profile(data, config=config)
        return engine.profile(data)  # a plain registered backend: profile(data)
    finally:
        close = getattr(engine, "close", None)
        if close is not None:
            close()


def _parameters(fn: Any) -> set[str]:
    import inspect

    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return {"config"}
    return {p.name for p in params} | ({"config"} if any(p.kind is p.VAR_KEYWORD for p in params) else set())
