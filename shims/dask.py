"""The Dask engine: one task per partition or file slice builds a partial; partials meet in a tree.

Schedulers (``DaskConfig.scheduler``): ``threads``, ``processes``, ``synchronous``, ``distributed`` (the
client in scope, else ``DASK_SCHEDULER_ADDRESS``, else a LocalCluster started for the run) or a scheduler
address (``tcp://host:8786``).  Without a ``DaskConfig`` the backend does what dask would: the client in
scope if there is one, else dask's configured local scheduler, else threads.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import uuid
from contextlib import ExitStack, contextmanager
from typing import Any

import dask
import polars as pl
from dask import delayed

from ..config import ProfileConfig
from ..distributed.base import ProfilingBackend, tree_reduce
from ..distributed.configs import DaskConfig
from ..errors import BackendError, ConfigError, InputError, TruthoundSketchError, UnsupportedInputError
from ..sources import Slice, resolve_source
from ..table import TablePartial

__all__ = ["DaskBackend"]

_LOCAL = {"threads": "threads", "processes": "processes", "synchronous": "synchronous", "sync": "synchronous",
          "single-threaded": "synchronous"}  # fmt: skip
_PARAMS = ("kll_k", "hll_lg_k", "exact_threshold", "frequent_capacity", "batch_rows")


# -- tasks (run on workers; partials leave them as bytes) --------------------------------------
def _run(i: int, produce: Any, params: dict) -> tuple[bytes, int, float, str]:
    t0, cfg = time.perf_counter(), ProfileConfig(**params)
    try:
        part = TablePartial.from_batches(produce(cfg.batch_rows), cfg)
    except Exception as exc:
        exc.truthound_partition, exc.truthound_worker = i, _worker_id()  # travel with the pickled exception
        raise
    return part.to_bytes(), part.row_count, time.perf_counter() - t0, _worker_id()


def _worker_id() -> str:
    if "distributed" in sys.modules:
        try:
            return sys.modules["distributed"].get_worker().address
        except ValueError:
            pass
    return f"pid-{os.getpid()}/{threading.current_thread().name}"


def _to_polars(pdf: Any, i: int) -> pl.DataFrame:
    """A pandas partition as polars, as ``profile(pandas_df)`` converts it (nullable, Arrow, tz, categorical)."""
    try:
        df = pl.from_pandas(pdf)
    except Exception as exc:
        bad = next((c for c in pdf.columns if not _converts(pdf[c])), "?")
        raise InputError(f"dask partition {i}: column {bad!r} ({pdf[bad].dtype if bad != '?' else ''}) cannot be "
                         f"profiled: {str(exc)[:300]}; cast it first, e.g. ddf.astype({{{bad!r}: 'string'}})") from None  # fmt: skip
    if not len(pdf):  # no values, so an object column's type is unknown here: let other partitions decide it
        df = df.with_columns(pl.lit(None, pl.Null).alias(str(c)) for c, t in pdf.dtypes.items() if t == object)
    return df


def _converts(series: Any) -> bool:
    try:
        pl.from_pandas(series.to_frame())
        return True
    except Exception:
        return False


def _frame_task(pdf: Any, i: int, params: dict) -> tuple[bytes, int, float, str]:
    return _run(i, lambda rows: _slices(_to_polars(pdf, i), rows), params)


def _polars_task(df: pl.DataFrame, i: int, params: dict) -> tuple[bytes, int, float, str]:
    return _run(i, lambda rows: _slices(df, rows), params)


def _slice_task(sl: dict, i: int, params: dict) -> tuple[bytes, int, float, str]:
    return _run(i, Slice.from_dict(sl).read, params)


def _slices(df: pl.DataFrame, rows: int):
    return (df.slice(off, rows) for off in range(0, max(df.height, 1), rows))


def _merge(*items: Any) -> bytes:
    return tree_reduce([TablePartial.from_bytes(x[0] if isinstance(x, tuple) else x) for x in items]).to_bytes()


def _meta(result: tuple) -> tuple:
    return (None, *result[1:])


# -- the backend --------------------------------------------------------------------------------
class DaskBackend(ProfilingBackend):
    name = "dask"

    def __init__(self, config: DaskConfig | None = None, *, fan_in: int = 4, storage_options: dict | None = None,
                 **kwargs: Any) -> None:  # fmt: skip
        super().__init__(**kwargs)
        self.config, self.fan_in, self.storage_options = config, fan_in, storage_options or {}
        sched = config.scheduler if config else None
        if sched is not None and sched not in _LOCAL and sched != "distributed" and "://" not in str(sched):
            raise ConfigError(f"DaskConfig.scheduler={sched!r}: use threads, processes, synchronous, distributed "
                              "or a scheduler address such as tcp://host:8786")  # fmt: skip
        if config and config.num_workers is not None and config.num_workers < 1:
            raise ConfigError(f"DaskConfig.num_workers={config.num_workers!r} must be at least 1 (or None for all cores)")
        if not isinstance(fan_in, int) or fan_in < 2:
            raise ConfigError(f"fan_in={fan_in!r} must be an integer of at least 2")
        self.last_graph: Any = None  # the Delayed of the last run's reduction, for inspection
        self.last_workers: dict = {}  # the distributed workers of the last run: {address: info}

    def profile_file(self, path: Any, **options: Any):
        """Profile files (path, directory, glob or list; local or fsspec URLs): Dask workers read the slices."""
        return self.profile(os.fspath(path) if isinstance(path, os.PathLike) else path, **options)

    def partial(self, data: Any, *, config: ProfileConfig, bus: Any) -> tuple[TablePartial, int]:
        with self._scheduler() as (client, scheduler, workers):
            token = uuid.uuid4().hex[:12]
            tasks, label, rows = self._tasks(data, config, workers, token)
            bus.run_started(backend=self.name, num_partitions=len(tasks), total_rows=rows, source=label)
            level, depth = tasks, 0
            while len(level) > 1:  # a tree: no merge ever holds more than fan_in partials
                level = [delayed(_merge)(*level[j : j + self.fan_in], dask_key_name=f"truthound-merge-{token}-{depth}-{j}")
                         for j in range(0, len(level), self.fan_in)]  # fmt: skip
                depth += 1
            self.last_graph = final = level[0]
            for i in range(len(tasks)):
                bus.partition_submitted(i)
            self._last_done = time.perf_counter()
            try:
                out = self._on_client(client, tasks, final, bus) if client else self._on_local(scheduler, workers, tasks, final, bus)
            except Exception as exc:
                i = getattr(exc, "truthound_partition", None)
                if i is not None:
                    bus.partition_failed(i, error=exc, worker_id=getattr(exc, "truthound_worker", None))
                if isinstance(exc, TruthoundSketchError):
                    raise
                where = f"partition {i} of {label}" if i is not None else label
                raise BackendError(f"dask failed on {where}: {type(exc).__name__}: {exc}") from exc
        result = TablePartial.from_bytes(out[0] if isinstance(out, tuple) else out)
        bus.aggregation_completed(partials=len(tasks), duration_seconds=time.perf_counter() - self._last_done)
        return result, len(tasks)

    def _tasks(self, data: Any, config: ProfileConfig, n: int, token: str) -> tuple[list, str, int | None]:
        params = {k: getattr(config, k) for k in _PARAMS}
        key = f"truthound-part-{token}-%d"
        if isinstance(data, (str, os.PathLike)) or (isinstance(data, (list, tuple)) and data
                                                    and all(isinstance(d, (str, os.PathLike)) for d in data)):  # fmt: skip
            src = resolve_source(data, columns=config.columns, storage_options=self.storage_options, min_slices=n)
            tasks = [delayed(_slice_task)(s.to_dict(), i, params, dask_key_name=key % i) for i, s in enumerate(src.slices)]
            return tasks, src.label, src.rows
        if type(data).__module__.split(".")[0] == "dask":
            ddf = data.to_frame() if getattr(data, "ndim", 2) == 1 and hasattr(data, "to_frame") else data
            if not hasattr(ddf, "columns") or not hasattr(ddf, "to_delayed"):
                raise UnsupportedInputError(f"the dask backend profiles dask DataFrames, Series and files, not {type(data).__name__}")
            if config.columns:
                missing = [c for c in config.columns if c not in ddf.columns]
                if missing:
                    raise InputError(f"no column(s) {missing} in the dask DataFrame; it has {list(ddf.columns)}")
                ddf = ddf[list(config.columns)]
            parts = ddf.to_delayed(optimize_graph=True)
            return [delayed(_frame_task)(p, i, params, dask_key_name=key % i) for i, p in enumerate(parts)], type(data).__name__, None
        df = resolve_source(data, columns=config.columns).frame
        if df is None:
            raise UnsupportedInputError(f"the dask backend cannot split a {type(data).__name__}; pass a dask DataFrame, files or a frame")
        size = max(1, -(-df.height // n))
        offs = range(0, max(df.height, 1), size)
        return [delayed(_polars_task)(df.slice(o, size), i, params, dask_key_name=key % i) for i, o in enumerate(offs)], type(data).__name__, df.height

    def _done(self, bus: Any, i: int, result: tuple) -> None:
        _, rows, seconds, worker = result
        bus.partition_started(i, worker_id=worker)
        bus.partition_completed(i, rows=rows, duration_seconds=seconds, worker_id=worker)
        self._last_done = time.perf_counter()

    def _on_local(self, scheduler: str, n: int, tasks: list, final: Any, bus: Any) -> Any:
        from dask.callbacks import Callback

        index = {t.key: i for i, t in enumerate(tasks)}
        with Callback(posttask=lambda key, result, *_: key in index and self._done(bus, index[key], result)):
            return dask.compute(final, scheduler=scheduler, num_workers=n, optimize_graph=False)[0]

    def _on_client(self, client: Any, tasks: list, final: Any, bus: Any) -> Any:
        from distributed import as_completed

        metas = [delayed(_meta)(t, dask_key_name=f"{t.key}-meta") for t in tasks]
        futures = client.compute([final, *metas], optimize_graph=False)
        index = {f.key: i for i, f in enumerate(futures[1:])}
        self.last_workers = dict(client.scheduler_info(n_workers=-1)["workers"])
        try:
            for future, meta in as_completed(futures[1:], loop=client.loop, with_results=True):
                self._done(bus, index[future.key], meta)
            return futures[0].result()
        finally:
            client.cancel(futures)

    @contextmanager
    def _scheduler(self):
        """Yields (client or None, local scheduler name or None, number of workers); closes what it started."""
        cfg = self.config or DaskConfig()
        sched = self.config.scheduler if self.config else None
        client = _client_in_scope() if sched in (None, "distributed") else None
        if client is None and sched is None:
            sched = _LOCAL.get(str(dask.config.get("scheduler", None) or "threads"), "threads")
        if client is not None or sched in _LOCAL:
            yield client, _LOCAL.get(sched), _nthreads(client) if client else cfg.num_workers or os.cpu_count() or 1
            return
        from distributed import Client

        address = sched if "://" in sched else os.environ.get("DASK_SCHEDULER_ADDRESS") or dask.config.get("scheduler-address", None)
        with ExitStack() as stack:
            try:
                client = stack.enter_context(Client(address or stack.enter_context(_local_cluster(cfg)),
                                                    set_as_default=False))  # fmt: skip
            except (OSError, TimeoutError) as exc:
                if not address:
                    raise
                raise BackendError(f"cannot reach the Dask scheduler at {address} (DaskConfig.scheduler or "
                                   f"DASK_SCHEDULER_ADDRESS): {exc}; start one with `dask scheduler`") from exc  # fmt: skip
            yield client, None, _nthreads(client)


def _client_in_scope() -> Any:
    if "distributed" not in sys.modules:
        return None
    try:
        return sys.modules["distributed"].default_client()
    except ValueError:
        return None


def _nthreads(client: Any) -> int:
    return max(1, sum(client.nthreads().values()))


def _local_cluster(cfg: DaskConfig) -> Any:
    from distributed import LocalCluster

    kw = dict(n_workers=cfg.num_workers or os.cpu_count() or 1, threads_per_worker=1, processes=True,
              memory_limit=cfg.memory_limit, host="127.0.0.1")  # fmt: skip
    dash = cfg.dashboard_address
    dash = f"127.0.0.1{dash}" if dash and dash.startswith(":") else dash
    try:
        return LocalCluster(dashboard_address=dash, **kw)
    except (OSError, RuntimeError):
        if dash is None:
            raise
        return LocalCluster(dashboard_address=None, **kw)  # the dashboard address cannot be bound: run without it
