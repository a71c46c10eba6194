"""The Spark engine: every Spark task folds its Arrow batches into a partial (``DataFrame.mapInArrow``).

Only the DataFrame API is used (no RDDs, no pandas), so the same code runs on ``local[N]``, on
standalone/YARN/Kubernetes clusters and on Spark Connect (``sc://host:port``).  A task answers with
one row: its partial's bytes and (partition, rows, seconds, worker).  A second stage merges those rows
on the executors, ``fan_in`` partitions to a group, and the driver merges the few that are left.

Local files on a classic session are cut into slices (parquet row groups, CSV/NDJSON byte ranges)
that the executors' Python workers read themselves, one task a slice, as the local engine's workers
do: no trip through Spark's reader and its Arrow conversion.  Other paths (URLs, Spark Connect) are
read by Spark.
"""

from __future__ import annotations

import functools
import json
import os
import socket
import sys
import time
import warnings
from contextlib import contextmanager, suppress
from typing import Any

from ..config import ProfileConfig
from ..distributed.base import ProfilingBackend
from ..distributed.configs import SparkConfig
from ..distributed.failures import failure_text, first_line, text_failure
from ..distributed.inputs import FileProfiling, is_paths, read_plan, require_columns, require_options
from ..distributed.partition_work import params_of, partition_partial
from ..distributed.reduction import merge_bytes, merge_partial_rows, partial_row
from ..distributed.run_events import publish_done
from ..errors import BackendError, ConfigError, InputError, UnsupportedInputError
from ..sources import resolve_source
from ..table import TablePartial

__all__ = ["SparkBackend"]

_DDL = "g long, partial binary, meta string"


def _worker_id() -> str:
    return f"{socket.gethostname()}:{os.getppid()}"  # the Python daemon of one executor


@contextmanager
def _no_pandas_warning() -> Any:
    """pyspark 4.3 warns that it does not fully support pandas 3; nothing here uses pandas (Arrow only)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "PySpark does not yet fully support pandas", FutureWarning)
        yield


def _slice_task(params: dict, fan_in: int, slices: list[dict], batches: Any) -> Any:
    """One task: the slices whose numbers arrive in ``batches`` (a column ``id``), read here."""
    for batch in batches:
        for i in batch.column("id").to_pylist():
            try:
                blob, rows, seconds, worker = partition_partial(slices[i], i, params, _worker_id, engine="spark")
            except Exception as exc:
                raise RuntimeError(failure_text(exc, i, _worker_id())) from exc
            yield partial_row(i // fan_in, blob, [[i, rows, seconds, worker]])


def _map_task(params: dict, fan_in: int, batches: Any) -> Any:
    from pyspark import TaskContext

    pid = TaskContext.get().partitionId()
    try:
        blob, rows, seconds, worker = partition_partial(batches, pid, params, _worker_id, engine="spark")
    except Exception as exc:
        raise RuntimeError(failure_text(exc, pid, _worker_id())) from exc
    yield partial_row(pid // fan_in, blob, [[pid, rows, seconds, worker]])


class SparkBackend(FileProfiling, ProfilingBackend):
    name = "spark"

    def __init__(self, config: SparkConfig | None = None, *, session: Any = None, fan_in: int = 16, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        require_options(self.name, fan_in)
        self.config, self.fan_in, self._spark, self._owned = config, fan_in, session, False

    @property
    def spark(self) -> Any:
        """The session used for files: the given one, else the active one, else one made from the config."""
        if self._spark is None:
            self._spark, self._owned = _session(self.config)
        return self._spark

    def close(self) -> None:
        if self._owned and self._spark is not None:
            self._spark.stop()
        self._spark, self._owned = None, False

    def partial(self, data: Any, *, config: ProfileConfig, bus: Any) -> tuple[TablePartial, int]:
        source = self._local_files(data, config)
        if source is not None:
            n, label, df = len(source.slices), source.label, None
            bus.run_started(backend=self.name, num_partitions=n, total_rows=source.rows, source=label)
            slices = [s.to_dict() for s in source.slices]
            tasks = self.spark.range(0, n, 1, max(n, 1))  # one slice a partition
            task = functools.partial(_slice_task, params_of(config), self.fan_in, slices)
        else:
            tasks, label = self._frame(data, config)
            df = tasks
            bus.run_started(backend=self.name, num_partitions=0, source=label)  # Spark counts partitions only when it runs
            task = functools.partial(_map_task, params_of(config), self.fan_in)
        with _no_pandas_warning():
            out = tasks.mapInArrow(task, _DDL).repartition("g").mapInArrow(merge_partial_rows, _DDL)
        try:
            table = out.toArrow()
        except Exception as exc:
            raise _failure(exc, label, bus) from exc
        t0 = time.perf_counter()
        metas = sorted(m for s in table.column("meta").to_pylist() for m in json.loads(s))
        for i, rows, seconds, worker in metas:
            publish_done(bus, i, rows, seconds, worker, submitted=True)
        blobs = table.column("partial").to_pylist()  # none when the DataFrame has no partitions at all
        part = TablePartial.from_bytes(merge_bytes(*blobs)) if blobs else TablePartial.zero(config=config)
        if df is not None and list(part.columns) != list(df.columns):  # no rows at all: columns from the schema
            part = TablePartial.from_batches([df.limit(0).toArrow()], config).merge(part)
        bus.aggregation_completed(partials=len(metas), duration_seconds=time.perf_counter() - t0)
        return part, len(metas)

    def _local_files(self, data: Any, config: ProfileConfig) -> Any:
        """The slices of local files on a classic session (a Source), else None."""
        if not is_paths(data) or type(self.spark).__module__.startswith("pyspark.sql.connect"):
            return None
        paths = [os.fspath(p) for p in (data if isinstance(data, (list, tuple)) else [data])]
        if any("://" in p and not p.startswith("file://") for p in paths):
            return None
        parallelism = self.spark.sparkContext.defaultParallelism
        return resolve_source(paths if len(paths) > 1 else paths[0], columns=config.columns, min_slices=parallelism)

    def _frame(self, data: Any, config: ProfileConfig) -> tuple[Any, str]:
        if is_paths(data):
            paths = [os.fspath(p) for p in (data if isinstance(data, (list, tuple)) else [data])]
            spark, (fmt, reader, options), label = self.spark, read_plan(paths), ", ".join(paths)
            try:
                df = spark.read.format(reader).options(**options).load(paths if len(paths) > 1 else paths[0])
            except Exception as exc:
                raise InputError(f"{label}: Spark cannot read it as {fmt}: {first_line(exc)}") from None
        elif type(data).__module__.startswith("pyspark.") and hasattr(data, "mapInArrow"):
            df, label = data, type(data).__name__
        else:
            raise UnsupportedInputError(f"the spark backend profiles Spark DataFrames and files, not {type(data).__name__}; "
                                        "make one with spark.createDataFrame(...) or use the local backend")  # fmt: skip
        if config.columns:
            require_columns(config.columns, df.columns, label)
            df = df.select(*config.columns)
        return df, label


def _session(cfg: SparkConfig | None) -> tuple[Any, bool]:
    """(session, created): the active or default session, else a new one built from ``cfg``."""
    from pyspark.sql import SparkSession

    remote = cfg is not None and cfg.master.startswith("sc://")
    active = None
    with suppress(Exception):
        active = SparkSession.active()
    if active is not None and (cfg is None or type(active).__module__.startswith("pyspark.sql.connect") == remote):
        return active, False
    cfg = cfg or SparkConfig()
    home = os.environ.get("SPARK_HOME")
    if home and not remote and not os.path.isfile(os.path.join(home, "bin", "spark-submit")):
        raise ConfigError(f"SPARK_HOME={home!r} has no bin/spark-submit; point it at a Spark installation "
                          "(4.0 or newer) or unset it to use the Spark that pyspark ships")  # fmt: skip
    builder = SparkSession.builder.remote(cfg.master) if remote else SparkSession.builder.master(cfg.master).appName(cfg.app_name)
    conf: dict[str, Any] = {} if remote else {"spark.executor.memory": cfg.executor_memory, "spark.executor.cores": cfg.executor_cores,
                                              "spark.executor.instances": cfg.num_executors}  # fmt: skip
    if cfg.master.startswith("spark://"):
        conf["spark.cores.max"] = cfg.executor_cores * cfg.num_executors
    # Arrow batches of a profile batch's size (Spark's default, 10,000 rows, costs a fixed price per batch)
    conf["spark.sql.execution.arrow.maxRecordsPerBatch"] = ProfileConfig().batch_rows
    conf.update(cfg.spark_config)
    for key, value in conf.items():
        builder = builder.config(key, str(value))
    try:
        with _no_pandas_warning():
            spark = builder.getOrCreate()
    except Exception as exc:
        raise BackendError(f"cannot start a Spark session for master {cfg.master!r} (SparkConfig.master): "
                           f"{first_line(exc)}") from exc  # fmt: skip
    if not remote:  # Python workers must be able to import truthound_sketch
        spark.sparkContext.pythonExec = str(conf.get("spark.pyspark.python") or os.environ.get("PYSPARK_PYTHON") or sys.executable)
    return spark, True


def _failure(exc: BaseException, label: str, bus: Any) -> BackendError:
    found = text_failure(exc, bus, "spark", label)
    if found is None and "No module named 'truthound_sketch'" in str(exc):
        return BackendError(f"spark's Python workers cannot import truthound_sketch while profiling {label}: install it "
                            "where the executors run and point PYSPARK_PYTHON (or spark.pyspark.python) at that Python")  # fmt: skip
    return found or BackendError(f"spark failed while profiling {label}: {first_line(exc)}")
