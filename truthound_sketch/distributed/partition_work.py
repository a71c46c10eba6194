"""What one partition task does, whatever the engine.

A partition task turns one partition (a file-slice dict, a polars frame, an Arrow table or batches,
a pandas frame) into ``(partial bytes, rows, seconds, worker)``, measured where it runs; the driver
publishes started/completed from the metadata the task returned.  Nothing here imports an engine: the
engine adapters call these from their workers.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from contextlib import suppress
from typing import Any

import polars as pl
import pyarrow as pa

from ..config import ProfileConfig
from ..errors import UnsupportedInputError
from ..sources import Slice
from ..table import TablePartial
from .inputs import frame_batches, pandas_to_polars, rebatch

__all__ = ["PARAMS", "params_of", "partition_partial", "partition_record"]


#: the ProfileConfig fields a worker needs to build the same partial as the driver would
PARAMS = ("kll_k", "hll_lg_k", "exact_threshold", "frequent_capacity", "batch_rows")


def params_of(config: ProfileConfig, *extra: str) -> dict[str, Any]:
    """The plain dict a task rebuilds its ProfileConfig from (``ProfileConfig(**params)``)."""
    return {k: getattr(config, k) for k in (*PARAMS, *extra)}


def _batches(source: Any, i: int, cfg: ProfileConfig, engine: str, hint: str) -> Any:
    if callable(source):
        return source(cfg)
    if isinstance(source, dict):  # the worker reads its own file slice
        return Slice.from_dict(source).read(cfg.batch_rows)
    if isinstance(source, (pl.DataFrame, pa.Table)):
        return frame_batches(source, cfg.batch_rows)
    if type(source).__module__.split(".")[0] == "pandas":
        return frame_batches(pandas_to_polars(source, i, engine, hint), cfg.batch_rows)
    if isinstance(source, Iterable):
        return rebatch(source, cfg.batch_rows)  # Arrow record batches
    raise UnsupportedInputError(f"{engine} partition {i}: cannot profile a {type(source).__name__}")


def partition_partial(source: Any, i: int, params: dict[str, Any], worker: str | Callable[[], str] = "?", *,
                      engine: str = "engine", hint: str = "df") -> tuple[bytes, int, float, str]:  # fmt: skip
    """One partition -> (partial bytes, rows, seconds, worker id), measured where it runs.

    ``source``: a file-slice dict, a polars frame, an Arrow table, Arrow record batches, a pandas frame,
    or ``callable(config) -> batches``.  ``worker``: the worker's id, or a function that tells it.
    A failure is re-raised with ``truthound_partition`` and ``truthound_worker`` set on it.
    """
    t0 = time.perf_counter()
    worker_id = worker() if callable(worker) else worker
    try:
        cfg = ProfileConfig(**params)
        part = TablePartial.from_batches(_batches(source, i, cfg, engine, hint), cfg)
    except Exception as exc:
        with suppress(AttributeError):  # these travel with a pickled exception
            exc.truthound_partition, exc.truthound_worker = i, worker_id
        raise
    return part.to_bytes(), part.row_count, time.perf_counter() - t0, worker_id


def partition_record(source: Any, i: int, params: dict[str, Any], worker: str, *, engine: str = "engine",
                     hint: str = "df") -> tuple[dict[str, Any], bytes]:  # fmt: skip
    """As ``partition_partial``, with a failure returned as data: ({rows, seconds, worker} or {error, type,
    worker}, partial bytes or b"") -- for engines that would hide an exception's type."""
    try:
        blob, rows, seconds, _ = partition_partial(source, i, params, worker, engine=engine, hint=hint)
    except Exception as exc:
        return {"error": str(exc) or repr(exc), "type": type(exc).__name__, "worker": worker}, b""
    return {"rows": rows, "seconds": seconds, "worker": worker}, blob
