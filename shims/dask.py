"""The Dask engine: one task per partition or file slice builds a partial; partials meet in a tree.

``DaskConfig.scheduler``: threads, processes, synchronous, distributed (the client in scope, else
``DASK_SCHEDULER_ADDRESS``, else a LocalCluster started for the run) or an address (``tcp://host:8786``).
Without a ``DaskConfig`` it does what dask would: the client in scope, else dask's local scheduler.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import uuid
from contextlib import ExitStack, contextmanager, suppress
from operator import itemgetter
from typing import Any

import dask
import polars as pl
from dask import delayed

from ..config import ProfileConfig
from ..distributed.base import ProfilingBackend, tree_reduce
from ..distributed.configs import DaskConfig
from ..distributed.partitioning import PartitionStrategy
from ..errors import BackendError, ConfigError, InputError, TruthoundSketchError, UnsupportedInputError
from ..sources import Slice, resolve_source
from ..table import TablePartial

__all__ = ["DaskBackend"]

_LOCAL = ("threads", "processes", "synchronous")
_PARAMS = ("kll_k", "hll_lg_k", "exact_threshold", "frequent_capacity", "batch_rows")


# -- tasks: run on workers; partials leave them as bytes ------------------------------------------
def _task(source: Any, i: int, params: dict) -> tuple[bytes, int, float, str]:
    """A pandas partition or a file slice (a dict) -> (partial bytes, rows, seconds, worker)."""
    t0, cfg = time.perf_counter(), ProfileConfig(**params)
    try:
        if isinstance(source, dict):  # the worker reads its own slice
            batches = Slice.from_dict(source).read(cfg.batch_rows)
        else:
            df = _to_polars(source, i)
            batches = (df.slice(o, cfg.batch_rows) for o in range(0, max(df.height, 1), cfg.batch_rows))
        part = TablePartial.from_batches(batches, cfg)
    except Exception as exc:
        with suppress(AttributeError):  # these travel with the pickled exception to the client
            exc.truthound_partition, exc.truthound_worker = i, _worker_id()
        raise
    return part.to_bytes(), part.row_count, time.perf_counter() - t0, _worker_id()


def _to_polars(pdf: Any, i: int) -> pl.DataFrame:
    """As ``profile(pandas_df)`` converts: nullable and Arrow dtypes, time zones and categoricals kept."""
    try:
        df = pl.from_pandas(pdf)
    except Exception as exc:
        bad = [c for c in pdf.columns if not _converts(pdf[[c]])][:1] or ["?"]
        raise InputError(f"dask partition {i}: column {bad[0]!r} cannot be profiled ({str(exc)[:300]}); cast it "
                         f"first, e.g. ddf.astype({{{bad[0]!r}: 'string'}})") from None  # fmt: skip
    if not len(pdf):  # no values: an object column's type is unknown here, so other partitions decide it
        df = df.with_columns(pl.lit(None, pl.Null).alias(str(c)) for c, t in pdf.dtypes.items() if t == object)
    return df


def _converts(pdf: Any) -> bool:
    try:
        return pl.from_pandas(pdf) is not None
    except Exception:
        return False


def _worker_id() -> str:
    try:
        return sys.modules["distributed"].get_worker().address
    except (KeyError, ValueError):
        return f"pid-{os.getpid()}/{threading.current_thread().name}"


def _merge(*items: Any) -> bytes:
    return tree_reduce([TablePartial.from_bytes(x[0] if isinstance(x, tuple) else x) for x in items]).to_bytes()


# -- the backend --------------------------------------------------------------------------------
class DaskBackend(ProfilingBackend):
    name = "dask"

    def __init__(self, config: DaskConfig | None = None, *, fan_in: int = 4, storage_options: dict | None = None,
                 **kwargs: Any) -> None:  # fmt: skip
        super().__init__(**kwargs)
        self.config, self.fan_in, self.storage_options = config, fan_in, storage_options or {}
        sched = config.scheduler if config else "threads"
        if sched not in _LOCAL and sched != "distributed" and "://" not in str(sched):
            raise ConfigError(f"DaskConfig.scheduler={sched!r}: use threads, processes, synchronous, distributed "
                              "or a scheduler address such as tcp://host:8786")  # fmt: skip
        if config and config.num_workers is not None and config.num_workers < 1:
            raise ConfigError(f"DaskConfig.num_workers={config.num_workers!r}: use at least 1 (None: every core)")
        if self.partition_strategy is not PartitionStrategy.ROW_BASED:
            raise ConfigError(f"partition_strategy={self.partition_strategy.value!r}: the dask backend profiles dask's own "
                              "row partitions (or file slices); use row_based, or repartition the dask DataFrame")  # fmt: skip
        if not isinstance(fan_in, int) or fan_in < 2:
            raise ConfigError(f"fan_in={fan_in!r}: a merge takes at least 2 partials")
        self.last_graph: Any = None  # the Delayed of the last run's reduction tree
        self.last_workers: dict = {}  # the distributed workers of the last run: {address: info}

    def profile_file(self, path: Any, **options: Any):
        """Profile files (a path, directory, glob or list; local or fsspec URLs), read by Dask's workers."""
        return self.profile(os.fspath(path) if isinstance(path, os.PathLike) else path, **options)

    def partial(self, data: Any, *, config: ProfileConfig, bus: Any) -> tuple[TablePartial, int]:
        with self._scheduler() as (client, scheduler, workers):
            token, params = uuid.uuid4().hex[:12], {k: getattr(config, k) for k in _PARAMS}
            sources, label, rows = self._sources(data, config, workers)
            tasks = [delayed(_task)(s, i, params, dask_key_name=f"truthound-part-{token}-{i}") for i, s in enumerate(sources)]
            bus.run_started(backend=self.name, num_partitions=len(tasks), total_rows=rows, source=label)
            level, depth = tasks, 0
            while len(level) > 1:  # a tree: no merge ever holds more than fan_in partials
                level = [delayed(_merge)(*level[j : j + self.fan_in], dask_key_name=f"truthound-merge-{token}-{depth}-{j}")
                         for j in range(0, len(level), self.fan_in)]  # fmt: skip
                depth += 1
            self.last_graph, self._last_done = level[0], time.perf_counter()
            for i in range(len(tasks)):
                bus.partition_submitted(i)
            try:
                out = self._on_client(client, tasks, bus) if client else self._on_local(scheduler, workers, tasks, bus)
            except Exception as exc:
                i = getattr(exc, "truthound_partition", None)
                if i is not None:
                    bus.partition_failed(i, error=exc, worker_id=getattr(exc, "truthound_worker", None))
                if isinstance(exc, TruthoundSketchError):
                    raise
                raise BackendError(f"dask failed on {label}{f' partition {i}' * (i is not None)}: {exc!r}") from exc
        result = TablePartial.from_bytes(out[0] if isinstance(out, tuple) else out)
        bus.aggregation_completed(partials=len(tasks), duration_seconds=time.perf_counter() - self._last_done)
        return result, len(tasks)

    def _sources(self, data: Any, config: ProfileConfig, n: int) -> tuple[list, str, int | None]:
        """What each task gets: file-slice dicts, or dask partitions (Delayed)."""
        paths = isinstance(data, (list, tuple)) and data and all(isinstance(d, (str, os.PathLike)) for d in data)
        if isinstance(data, (str, os.PathLike)) or paths:
            src = resolve_source(data, columns=config.columns, storage_options=self.storage_options, min_slices=n)
            return [s.to_dict() for s in src.slices], src.label, src.rows
        frame = type(data).__name__ in ("DataFrame", "Series") and hasattr(data, "to_delayed")
        if type(data).__module__.split(".")[0] != "dask" or not frame:
            raise UnsupportedInputError(f"the dask backend profiles dask DataFrames and files, not a {type(data).__name__}; "
                                        "wrap it with dask.dataframe.from_pandas() or use the local backend")  # fmt: skip
        ddf = data.to_frame() if data.ndim == 1 else data
        missing = [c for c in config.columns or () if c not in ddf.columns]
        if missing:
            raise InputError(f"no column(s) {missing} in the dask DataFrame; it has {list(ddf.columns)}")
        ddf = ddf[list(config.columns)] if config.columns else ddf
        return ddf.to_delayed(optimize_graph=True), type(data).__name__, None

    def _done(self, bus: Any, i: int, meta: tuple) -> None:
        rows, seconds, worker = meta
        bus.partition_started(i, worker_id=worker)
        bus.partition_completed(i, rows=rows, duration_seconds=seconds, worker_id=worker)
        self._last_done = time.perf_counter()

    def _on_local(self, scheduler: str, n: int, tasks: list, bus: Any) -> Any:
        from dask.callbacks import Callback

        index = {t.key: i for i, t in enumerate(tasks)}
        with Callback(posttask=lambda key, result, *_: key in index and self._done(bus, index[key], result[1:])):
            return dask.compute(self.last_graph, scheduler=scheduler, num_workers=n, optimize_graph=False)[0]

    def _on_client(self, client: Any, tasks: list, bus: Any) -> Any:
        from distributed import as_completed

        metas = [delayed(itemgetter(slice(1, None)))(t, dask_key_name=f"{t.key}-meta") for t in tasks]  # no bytes
        futures = client.compute([self.last_graph, *metas], optimize_graph=False)
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
        """Yields (client, None) or (None, local scheduler), and the number of workers; closes what it started."""
        cfg, sched = self.config or DaskConfig(), self.config.scheduler if self.config else None
        try:
            client = sys.modules["distributed"].default_client() if sched in (None, "distributed") else None
        except (KeyError, ValueError):  # distributed not imported, or no client
            client = None
        if client is not None:
            yield client, None, sum(client.nthreads().values())
            return
        if sched is None:
            sched = dask.config.get("scheduler", None) if dask.config.get("scheduler", None) in _LOCAL else "threads"
        if sched in _LOCAL:
            yield None, sched, cfg.num_workers or os.cpu_count() or 1
            return
        from distributed import Client

        address = sched if "://" in sched else os.environ.get("DASK_SCHEDULER_ADDRESS") or dask.config.get("scheduler-address", None)
        with ExitStack() as stack:
            try:
                client = stack.enter_context(Client(address or stack.enter_context(_local_cluster(cfg)), set_as_default=False))
            except (OSError, TimeoutError) as exc:
                if not address:
                    raise
                raise BackendError(f"cannot reach the Dask scheduler at {address} (DaskConfig.scheduler or "
                                   f"DASK_SCHEDULER_ADDRESS): {exc}; start one with `dask scheduler`") from exc  # fmt: skip
            yield client, None, sum(client.nthreads().values())


def _local_cluster(cfg: DaskConfig) -> Any:
    """A LocalCluster for one run on 127.0.0.1: single-threaded worker processes (sketches hold the GIL)."""
    from distributed import LocalCluster

    kw = dict(n_workers=cfg.num_workers or os.cpu_count() or 1, threads_per_worker=1, processes=True,
              memory_limit=cfg.memory_limit, host="127.0.0.1")  # fmt: skip
    dash = f"127.0.0.1{cfg.dashboard_address}" if str(cfg.dashboard_address).startswith(":") else cfg.dashboard_address
    try:
        return LocalCluster(dashboard_address=dash, **kw)
    except (OSError, RuntimeError):
        if dash is None:
            raise
        return LocalCluster(dashboard_address=None, **kw)  # the dashboard address cannot be bound: run without it
