"""The Dask engine: one task per partition or file slice builds a partial; partials meet in a tree.

``DaskConfig.scheduler``: threads, processes, synchronous, distributed (the client in scope, else
``DASK_SCHEDULER_ADDRESS``, else a LocalCluster started for the run) or an address (``tcp://host:8786``).
Without a ``DaskConfig`` it does what dask would: the client in scope, else dask's local scheduler.
"""

from __future__ import annotations

import functools
import os
import sys
import threading
import time
import uuid
from contextlib import ExitStack, contextmanager, suppress
from operator import itemgetter
from typing import Any

import dask
from dask import delayed

from ..config import ProfileConfig
from ..distributed.base import ProfilingBackend
from ..distributed.configs import DaskConfig
from ..distributed.failures import raise_failure
from ..distributed.inputs import FileProfiling, is_paths, require_columns, require_options
from ..distributed.partition_work import params_of, partition_partial
from ..distributed.reduction import merge_bytes, merge_tree
from ..distributed.run_events import publish_done, publish_run
from ..errors import BackendError, ConfigError, UnsupportedInputError
from ..sources import resolve_source
from ..table import TablePartial

__all__ = ["DaskBackend"]

_LOCAL = ("threads", "processes", "synchronous")


def _worker_id() -> str:
    with suppress(KeyError, ValueError):  # not on a distributed worker
        return sys.modules["distributed"].get_worker().address
    return f"pid-{os.getpid()}/{threading.current_thread().name}"


_task = functools.partial(partition_partial, worker=_worker_id, engine="dask", hint="ddf")  # a partition or a slice dict


class DaskBackend(FileProfiling, ProfilingBackend):
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
        require_options(self.name, fan_in, strategy=self.partition_strategy,
                        splits="dask's own row partitions (or file slices); repartition the dask DataFrame")  # fmt: skip
        self.last_graph, self.last_workers = None, {}  # the last run's reduction tree (Delayed), workers {address: info}

    def partial(self, data: Any, *, config: ProfileConfig, bus: Any) -> tuple[TablePartial, int]:
        with self._scheduler() as (client, scheduler, workers):
            token, params = uuid.uuid4().hex[:12], params_of(config)
            sources, label, rows = self._sources(data, config, workers)
            tasks = [delayed(_task)(s, i, params, dask_key_name=f"truthound-part-{token}-{i}") for i, s in enumerate(sources)]
            self.last_graph, self._last_done = merge_tree(tasks, self.fan_in, lambda g, depth, j: delayed(merge_bytes)(
                *g, dask_key_name=f"truthound-merge-{token}-{depth}-{j}"), singles=True)[0], time.perf_counter()  # fmt: skip
            publish_run(bus, self.name, len(tasks), rows, label)
            try:
                out = self._on_client(client, tasks, bus) if client else self._on_local(scheduler, workers, tasks, bus)
            except Exception as exc:
                raise_failure(exc, bus, f"dask failed on {label}")
        result = TablePartial.from_bytes(out[0] if isinstance(out, tuple) else out)
        bus.aggregation_completed(partials=len(tasks), duration_seconds=time.perf_counter() - self._last_done)
        return result, len(tasks)

    def _sources(self, data: Any, config: ProfileConfig, n: int) -> tuple[list, str, int | None]:
        if is_paths(data):
            src = resolve_source(data, columns=config.columns, storage_options=self.storage_options, min_slices=n)
            return [s.to_dict() for s in src.slices], src.label, src.rows
        frame = type(data).__name__ in ("DataFrame", "Series") and hasattr(data, "to_delayed")
        if type(data).__module__.split(".")[0] != "dask" or not frame:
            raise UnsupportedInputError(f"the dask backend profiles dask DataFrames and files, not a {type(data).__name__}; "
                                        "wrap it with dask.dataframe.from_pandas() or use the local backend")  # fmt: skip
        ddf = data.to_frame() if data.ndim == 1 else data
        require_columns(config.columns, list(ddf.columns), "the dask DataFrame")
        ddf = ddf[list(config.columns)] if config.columns else ddf
        return ddf.to_delayed(optimize_graph=True), type(data).__name__, None

    def _done(self, bus: Any, i: int, meta: tuple) -> None:
        publish_done(bus, i, *meta)
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
        cfg, sched, client = self.config or DaskConfig(), self.config.scheduler if self.config else None, None
        with suppress(KeyError, ValueError):  # distributed not imported, or no client
            client = sys.modules["distributed"].default_client() if sched in (None, "distributed") else None
        sched = sched or (dask.config.get("scheduler", None) if dask.config.get("scheduler", None) in _LOCAL else "threads")
        if client is None and sched in _LOCAL:
            yield None, sched, cfg.num_workers or os.cpu_count() or 1
            return
        address = sched if "://" in str(sched) else os.environ.get("DASK_SCHEDULER_ADDRESS") or dask.config.get("scheduler-address", None)
        with ExitStack() as stack:
            try:
                if client is None:
                    from distributed import Client
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

    kw = dict(n_workers=cfg.num_workers or os.cpu_count() or 1, threads_per_worker=1, processes=True, memory_limit=cfg.memory_limit, host="127.0.0.1")
    dash = f"127.0.0.1{cfg.dashboard_address}" if str(cfg.dashboard_address).startswith(":") else cfg.dashboard_address
    try:
        return LocalCluster(dashboard_address=dash, **kw)
    except (OSError, RuntimeError):
        if dash is None:
            raise
        return LocalCluster(dashboard_address=None, **kw)  # the dashboard address cannot be bound: run without it
