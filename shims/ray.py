"""The Ray engine: Dataset blocks (``map_batches``) or file slices (one task each) become partials.

Each partition yields a small record (rows, seconds, worker, or the error), which the driver awaits
with ``ray.wait`` to publish events, and the partial's bytes, which only merge tasks fetch: a tree
with at most ``fan_in`` inputs per task.  Task functions live here, at module level, for workers.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from typing import Any

import pyarrow as pa
import ray
from ray.data.dataset import MaterializedDataset

from truthound_sketch.config import ProfileConfig
from truthound_sketch.distributed.base import ProfilingBackend
from truthound_sketch.distributed.configs import RayConfig
from truthound_sketch.distributed.failures import raise_failure
from truthound_sketch.distributed.inputs import FileProfiling, arrow_of, frame_batches, require_options, schema_partial
from truthound_sketch.distributed.partition_work import params_of, partition_record
from truthound_sketch.distributed.reduction import merge_bytes, merge_tree
from truthound_sketch.distributed.run_events import Arrivals
from truthound_sketch.errors import BackendError
from truthound_sketch.sources import resolve_source
from truthound_sketch.table import TablePartial

__all__ = ["RayBackend", "block_partial"]


def _work(source: Any, params: dict[str, Any]) -> tuple[dict[str, Any], bytes]:  # a failure travels back as data
    return partition_record(source, 0, params, f"ray-node-{ray.get_runtime_context().get_node_id()[:12]}", engine="ray")


def block_partial(block: pa.Table, params: dict[str, Any]) -> pa.Table:
    """``map_batches`` function: one block in, one row (meta JSON, partial bytes) out."""
    meta, blob = _work(lambda config: frame_batches(block, config.batch_rows, config.columns, "the Ray Dataset"), params)
    return pa.table({"meta": [json.dumps(meta)], "partial": pa.array([blob], pa.large_binary())})


@ray.remote(num_returns=2)
def _unpack(out: pa.Table, span: tuple[int, int] | None) -> tuple[list[dict], bytes]:
    out = out if span is None else out.slice(span[0], span[1] - span[0])
    if "meta" not in out.column_names or not out.num_rows:
        return [], b""  # Ray Data skipped an empty block
    merged = merge_bytes(*(b for b in out.column("partial").to_pylist() if b))
    return [json.loads(m) for m in out.column("meta").to_pylist()], merged


@ray.remote(num_returns=2)
def _read_slice(slice_dict: dict[str, Any], params: dict[str, Any]) -> tuple[list[dict], bytes]:
    meta, blob = _work(slice_dict, params)
    return [meta], blob


_merge = ray.remote(merge_bytes)


class RayBackend(FileProfiling, ProfilingBackend):
    """Profiles Ray Datasets and files on a local Ray, the program's own Ray, or a cluster."""

    name = "ray"

    def __init__(self, config: RayConfig | None = None, *, fan_in: int = 4, storage_options: dict | None = None,
                 runtime_env: dict | None = None, **kwargs: Any) -> None:  # fmt: skip
        super().__init__(**kwargs)
        require_options(self.name, fan_in, most=64, what="RayBackend fan_in", strategy=self.partition_strategy,
                        splits="rows (Dataset blocks, file slices)")  # fmt: skip
        self.config, self.fan_in, self.runtime_env = config or RayConfig(), fan_in, runtime_env
        self.storage_options, self.started_ray, self.last_merges = storage_options or {}, False, []

    def _connect(self) -> None:
        if ray.is_initialized():
            return  # the program's own Ray: reused, never shut down here
        c, address = self.config, self.config.address or os.environ.get("RAY_ADDRESS") or None
        local = {} if address else {"num_cpus": c.num_cpus, "num_gpus": c.num_gpus, "include_dashboard": False,
                                    "object_store_memory": c.object_store_memory}  # fmt: skip
        try:
            ray.init(address=address, runtime_env=self.runtime_env, **local)
        except Exception as exc:
            where = f"the Ray cluster at {address!r} (RayConfig.address or RAY_ADDRESS)" if address else "a local Ray"
            raise BackendError(f"cannot start or reach {where}: {str(exc).strip()[:300]}") from exc
        self.started_ray = True

    def partial(self, data: Any, *, config: ProfileConfig, bus: Any) -> tuple[TablePartial, int]:
        self._connect()
        params = params_of(config, "columns")
        if isinstance(data, (str, os.PathLike, list, tuple)):
            cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
            source = resolve_source(data, columns=config.columns, storage_options=self.storage_options, min_slices=cpus)
            bus.run_started(backend=self.name, num_partitions=len(source.slices), total_rows=source.rows, source=source.label)
            items = []
            for i, s in enumerate(source.slices):
                bus.partition_submitted(i, total_rows=s.rows)
                items.append((*_read_slice.remote(s.to_dict(), params), i))
            return self._gather(iter(items), bus, None)
        if ray.util.client.ray.is_connected():  # ray-project/ray#48682
            raise BackendError("Ray Data does not run through Ray Client (ray://): profile files with profile_file(), "
                               "or run the program on the cluster (`ray job submit`, or RAY_ADDRESS=host:port)")  # fmt: skip
        ds = data if isinstance(data, ray.data.Dataset) else ray.data.from_arrow(
            arrow_of(data, self.name, "a ray.data.Dataset, an in-memory frame or a path"))
        known = ds.num_blocks() if isinstance(ds, MaterializedDataset) else 0  # 0: known as blocks arrive
        bus.run_started(backend=self.name, num_partitions=known, source=type(data).__name__)
        out = ds.map_batches(block_partial, batch_format="pyarrow", batch_size=None, zero_copy_batch=True, fn_kwargs={"params": params})
        empty = lambda: schema_partial(getattr(ds.schema(), "base_schema", None), config, "the Ray Dataset")  # noqa: E731
        return self._gather(_block_items(out), bus, empty)

    def _gather(self, items: Any, bus: Any, empty: Any) -> tuple[TablePartial, int]:
        got, waiting = Arrivals(bus), {}  # waiting: meta ref -> (partial ref, partition id or None: a Dataset block)

        def arrive(ref: Any) -> None:
            part_ref, pid = waiting.pop(ref)
            got.arrive(lambda: ray.get(ref), part_ref, pid)

        try:
            for meta_ref, part_ref, pid in items:
                waiting[meta_ref] = (part_ref, pid)
                for ref in ray.wait(list(waiting), num_returns=len(waiting), timeout=0)[0]:
                    arrive(ref)
            while waiting:
                arrive(ray.wait(list(waiting), num_returns=1)[0][0])
            started = time.perf_counter()  # a tree: no task ever holds more than fan_in partials
            root, self.last_merges = merge_tree(got.parts, self.fan_in, lambda g, *_: _merge.remote(*g))
            result = TablePartial.from_bytes(ray.get(root)) if got.parts else empty()
        except Exception as exc:
            getattr(items, "close", lambda: None)()
            for ref in waiting:
                with contextlib.suppress(Exception):
                    ray.cancel(ref)
            raise_failure(exc, bus, "Ray failed while profiling", got.current)
        bus.aggregation_completed(partials=got.done, duration_seconds=time.perf_counter() - started)
        return result, got.done

    def close(self) -> None:
        if self.started_ray and ray.is_initialized():
            ray.shutdown()
        self.started_ray = False


def _block_items(out: Any) -> Any:
    """(meta ref, partial ref, None) for each output block, as Ray Data streams them out."""
    for bundle in out.iter_internal_ref_bundles():
        spans = getattr(bundle, "slices", None) or [None] * len(bundle.block_refs)
        for ref, s in zip(bundle.block_refs, spans):
            yield (*_unpack.remote(ref, None if s is None else (s.start_offset, s.end_offset)), None)


