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

from truthound_sketch import errors
from truthound_sketch.config import ProfileConfig
from truthound_sketch.distributed.base import ProfilingBackend, tree_reduce
from truthound_sketch.distributed.configs import RayConfig
from truthound_sketch.distributed.partitioning import PartitionStrategy
from truthound_sketch.errors import BackendError, ConfigError, InputError, TruthoundSketchError
from truthound_sketch.sources import Slice, resolve_source
from truthound_sketch.table import TablePartial

__all__ = ["RayBackend", "block_partial"]

_PARAMS = ("kll_k", "hll_lg_k", "exact_threshold", "frequent_capacity", "batch_rows", "columns")
_RERAISED = ("InputError", "UnsupportedInputError", "SchemaMismatchError", "ConfigError", "ProfileFormatError")


def _work(batches: Any, params: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
    """The partial of ``batches(config)``; a failure travels back as data (Ray Data would hide its type)."""
    started, worker = time.perf_counter(), f"ray-node-{ray.get_runtime_context().get_node_id()[:12]}"  # as RayMonitorAdapter
    try:
        config = ProfileConfig(**params)
        part = TablePartial.from_batches(batches(config), config)
    except Exception as exc:
        return {"error": str(exc) or repr(exc), "type": type(exc).__name__, "worker": worker}, b""
    return {"rows": part.row_count, "seconds": time.perf_counter() - started, "worker": worker}, part.to_bytes()


def _block_batches(block: pa.Table, config: ProfileConfig) -> Any:
    if config.columns:
        missing = [c for c in config.columns if c not in block.column_names]
        if missing:
            raise InputError(f"no column(s) {missing} in the Ray Dataset; it has {block.column_names}")
        block = block.select(list(config.columns))
    return (block.slice(o, config.batch_rows) for o in range(0, max(block.num_rows, 1), config.batch_rows))


def block_partial(block: pa.Table, params: dict[str, Any]) -> pa.Table:
    """``map_batches`` function: one block in, one row (meta JSON, partial bytes) out."""
    meta, blob = _work(lambda config: _block_batches(block, config), params)
    return pa.table({"meta": [json.dumps(meta)], "partial": pa.array([blob], pa.large_binary())})


@ray.remote(num_returns=2)
def _unpack(out: pa.Table, span: tuple[int, int] | None) -> tuple[list[dict], bytes]:
    out = out if span is None else out.slice(span[0], span[1] - span[0])
    if "meta" not in out.column_names or not out.num_rows:
        return [], b""  # Ray Data skipped an empty block
    blobs = [b for b in out.column("partial").to_pylist() if b]
    merged = blobs[0] if len(blobs) == 1 else tree_reduce([TablePartial.from_bytes(b) for b in blobs]).to_bytes()
    return [json.loads(m) for m in out.column("meta").to_pylist()], merged


@ray.remote(num_returns=2)
def _read_slice(slice_dict: dict[str, Any], params: dict[str, Any]) -> tuple[list[dict], bytes]:
    meta, blob = _work(lambda config: Slice.from_dict(slice_dict).read(config.batch_rows), params)
    return [meta], blob


@ray.remote
def _merge(*blobs: bytes) -> bytes:
    return tree_reduce([TablePartial.from_bytes(b) for b in blobs]).to_bytes()


class RayBackend(ProfilingBackend):
    """Profiles Ray Datasets and files on a local Ray, the program's own Ray, or a cluster."""

    name = "ray"

    def __init__(self, config: RayConfig | None = None, *, fan_in: int = 4, storage_options: dict | None = None,
                 runtime_env: dict | None = None, **kwargs: Any) -> None:  # fmt: skip
        super().__init__(**kwargs)
        if self.partition_strategy is not PartitionStrategy.ROW_BASED:
            raise ConfigError(f"the ray backend splits rows (Dataset blocks, file slices): partition_strategy="
                              f"{self.partition_strategy.value!r} is not supported; use 'row_based'")  # fmt: skip
        if not isinstance(fan_in, int) or not 2 <= fan_in <= 64:
            raise ConfigError(f"RayBackend fan_in={fan_in!r} must be an integer in [2, 64]")
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

    def profile_file(self, path: Any, **options: Any) -> Any:
        """Profile files (a path, directory, glob or list of them; local paths must exist on every node)."""
        return self.profile(path, **options)

    def partial(self, data: Any, *, config: ProfileConfig, bus: Any) -> tuple[TablePartial, int]:
        self._connect()
        params = {k: getattr(config, k) for k in _PARAMS}
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
        ds = data if isinstance(data, ray.data.Dataset) else _from_frame(data)
        known = ds.num_blocks() if isinstance(ds, MaterializedDataset) else 0  # 0: known as blocks arrive
        bus.run_started(backend=self.name, num_partitions=known, source=type(data).__name__)
        out = ds.map_batches(block_partial, batch_format="pyarrow", batch_size=None, zero_copy_batch=True, fn_kwargs={"params": params})
        return self._gather(_block_items(out), bus, lambda: _empty(ds, config))

    def _gather(self, items: Any, bus: Any, empty: Any) -> tuple[TablePartial, int]:
        parts, waiting, done, current = [], {}, 0, 0  # waiting: meta ref -> (partial ref, partition id)

        def arrive(ref: Any) -> None:
            nonlocal done, current
            part_ref, pid = waiting.pop(ref)
            current = done if pid is None else pid
            metas = ray.get(ref)
            for m in metas:
                i, done = (done if pid is None else pid), done + 1
                if pid is None:  # a Dataset block: known to the driver only now
                    bus.partition_submitted(i)
                if "error" in m:
                    bus.partition_failed(i, error=m["error"], worker_id=m["worker"])
                    if m["type"] in _RERAISED:
                        raise getattr(errors, m["type"])(m["error"])
                    raise BackendError(f"partition {i} failed on {m['worker']}: {m['type']}: {m['error']}")
                bus.partition_started(i, worker_id=m["worker"])
                bus.partition_completed(i, rows=m["rows"], duration_seconds=m["seconds"], worker_id=m["worker"])
            parts.extend([part_ref] if metas else [])

        try:
            for meta_ref, part_ref, pid in items:
                waiting[meta_ref] = (part_ref, pid)
                for ref in ray.wait(list(waiting), num_returns=len(waiting), timeout=0)[0]:
                    arrive(ref)
            while waiting:
                arrive(ray.wait(list(waiting), num_returns=1)[0][0])
            started, self.last_merges = time.perf_counter(), []
            while len(parts) > 1:  # a tree: no task ever holds more than fan_in partials
                groups = [parts[i : i + self.fan_in] for i in range(0, len(parts), self.fan_in)]
                self.last_merges += [len(g) for g in groups if len(g) > 1]
                parts = [_merge.remote(*g) if len(g) > 1 else g[0] for g in groups]
            result = TablePartial.from_bytes(ray.get(parts[0])) if parts else empty()
        except Exception as exc:
            getattr(items, "close", lambda: None)()
            for ref in waiting:
                with contextlib.suppress(Exception):
                    ray.cancel(ref)
            cause = exc if isinstance(exc, TruthoundSketchError) else getattr(exc, "cause", None)
            if isinstance(cause, TruthoundSketchError):
                raise cause from None
            bus.partition_failed(current, error=exc)
            raise BackendError(f"Ray failed while profiling: {type(exc).__name__}: {str(exc).strip()[:500]}") from exc
        bus.aggregation_completed(partials=done, duration_seconds=time.perf_counter() - started)
        return result, done

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


def _from_frame(data: Any) -> Any:
    frame = resolve_source(data).frame  # polars, pandas or Arrow, as the local engine reads them
    if frame is None:
        raise errors.UnsupportedInputError(f"the ray backend profiles a ray.data.Dataset, an in-memory frame or "
                                           f"a path; got {type(data).__module__}.{type(data).__name__}")  # fmt: skip
    return ray.data.from_arrow(frame.to_arrow())


def _empty(ds: Any, config: ProfileConfig) -> TablePartial:
    """A Dataset without rows: its columns, all empty."""
    schema = getattr(ds.schema(), "base_schema", None)
    if not isinstance(schema, pa.Schema):
        return TablePartial.zero(config=config)
    return TablePartial.from_batches(_block_batches(schema.empty_table(), config), config)
