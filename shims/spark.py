"""The Spark engine: every Spark task folds its Arrow batches into a partial (``DataFrame.mapInArrow``).

Only the DataFrame API is used (no RDDs, no pandas), so the same code runs on ``local[N]``, on
standalone/YARN/Kubernetes clusters and on Spark Connect (``sc://host:port``).  A task answers with
one row: its partial's bytes and (partition, rows, seconds, worker).  A second stage merges those rows
on the executors, ``fan_in`` partitions to a group, and the driver merges the few that are left.
"""

from __future__ import annotations

import functools
import json
import os
import re
import socket
import sys
import time
import warnings
from typing import Any

import pyarrow as pa

from ..config import ProfileConfig
from ..distributed.base import ProfilingBackend, tree_reduce
from ..distributed.configs import SparkConfig
from ..errors import BackendError, ConfigError, InputError, UnsupportedInputError
from ..table import TablePartial

__all__ = ["SparkBackend"]

_PARAMS = ("kll_k", "hll_lg_k", "exact_threshold", "frequent_capacity", "batch_rows")
_ROW = pa.schema([("g", pa.int64()), ("partial", pa.binary()), ("meta", pa.string())])
_DDL = "g long, partial binary, meta string"
_FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".tsv": "tsv", ".json": "json",
            ".jsonl": "json", ".ndjson": "json", ".orc": "orc"}  # fmt: skip
_FAILED = re.compile(r"truthound_sketch partition (\d+) on (\S+): ([^\n]*)")


# -- tasks (run in Spark's Python workers; partials leave them as bytes) -------------------------
def _worker_id() -> str:
    return f"{socket.gethostname()}:{os.getppid()}"  # the Python daemon of one executor


def _row(group: int, part: TablePartial, meta: list) -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist([{"g": group, "partial": part.to_bytes(), "meta": json.dumps(meta)}], schema=_ROW)


def _rebatch(batches: Any, rows: int) -> Any:
    """Spark's Arrow batches (10,000 rows by default) regrouped into tables of about ``rows`` rows."""
    buf, n = [], 0
    for b in batches:
        buf.append(b)
        n += b.num_rows
        if n >= rows:
            yield pa.Table.from_batches(buf)
            buf, n = [], 0
    if buf:
        yield pa.Table.from_batches(buf)


def _map_task(params: dict, fan_in: int, batches: Any) -> Any:
    from pyspark import TaskContext

    t0, pid = time.perf_counter(), TaskContext.get().partitionId()
    try:
        cfg = ProfileConfig(**params)
        part = TablePartial.from_batches(_rebatch(batches, cfg.batch_rows), cfg)
    except Exception as exc:
        raise RuntimeError(f"truthound_sketch partition {pid} on {_worker_id()}: {type(exc).__name__}: {exc}") from exc
    yield _row(pid // fan_in, part, [[pid, part.row_count, time.perf_counter() - t0, _worker_id()]])


def _merge_task(batches: Any) -> Any:
    """Merges the partials routed to this task; a binary counter keeps at most log2(n) of them."""
    stack: list[tuple[int, TablePartial]] = []
    meta, group = [], 0
    for b in batches:
        for group, data, m in zip(*(c.to_pylist() for c in b.columns)):
            meta += json.loads(m)
            part, level = TablePartial.from_bytes(data), 0
            while stack and stack[-1][0] == level:
                part, level = stack.pop()[1].merge(part), level + 1
            stack.append((level, part))
    if stack:
        yield _row(group, tree_reduce([p for _, p in reversed(stack)]), meta)


# -- the backend --------------------------------------------------------------------------------
class SparkBackend(ProfilingBackend):
    name = "spark"

    def __init__(self, config: SparkConfig | None = None, *, session: Any = None, fan_in: int = 16, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not isinstance(fan_in, int) or fan_in < 2:
            raise ConfigError(f"fan_in={fan_in!r} must be an integer of at least 2")
        self.config, self.fan_in = config, fan_in
        self._spark, self._owned = session, False

    @property
    def spark(self) -> Any:
        """The session used for files: the given one, else the active one, else one made from the config."""
        if self._spark is None:
            self._spark, self._owned = _session(self.config)
        return self._spark

    def profile_file(self, path: Any, **options: Any):
        """Profile files read with ``spark.read`` (format by extension: parquet, csv, tsv, json, orc)."""
        return self.profile(path, **options)

    def close(self) -> None:
        if self._owned and self._spark is not None:
            self._spark.stop()
        self._spark, self._owned = None, False

    def partial(self, data: Any, *, config: ProfileConfig, bus: Any) -> tuple[TablePartial, int]:
        df, label = self._frame(data, config)
        params = {k: getattr(config, k) for k in _PARAMS}
        bus.run_started(backend=self.name, num_partitions=0, source=label)  # Spark counts partitions only when it runs
        with warnings.catch_warnings():  # pyspark warns about pandas 3 here, but nothing of this path uses pandas
            warnings.filterwarnings("ignore", "PySpark does not yet fully support pandas", FutureWarning)
            out = df.mapInArrow(functools.partial(_map_task, params, self.fan_in), _DDL)
            out = out.repartition("g").mapInArrow(_merge_task, _DDL)
        try:
            table = out.toArrow()
        except Exception as exc:
            raise _failure(exc, label, bus) from exc
        t0 = time.perf_counter()
        metas = sorted(m for s in table.column("meta").to_pylist() for m in json.loads(s))
        for i, rows, seconds, worker in metas:
            bus.partition_submitted(i)
            bus.partition_started(i, worker_id=worker)
            bus.partition_completed(i, rows=rows, duration_seconds=seconds, worker_id=worker)
        part = tree_reduce([TablePartial.from_bytes(b) for b in table.column("partial").to_pylist()])
        if list(part.columns) != list(df.columns):  # no rows at all: take the columns from the schema
            part = TablePartial.from_batches([df.limit(0).toArrow()], config).merge(part)
        bus.aggregation_completed(partials=len(metas), duration_seconds=time.perf_counter() - t0)
        return part, len(metas)

    def _frame(self, data: Any, config: ProfileConfig) -> tuple[Any, str]:
        if isinstance(data, (str, os.PathLike)) or (isinstance(data, (list, tuple)) and data
                                                    and all(isinstance(d, (str, os.PathLike)) for d in data)):  # fmt: skip
            paths = [os.fspath(p) for p in (data if isinstance(data, (list, tuple)) else [data])]
            df, label = _read(self.spark, paths), ", ".join(paths)
        elif type(data).__module__.startswith("pyspark.") and hasattr(data, "mapInArrow"):
            df, label = data, type(data).__name__
        else:
            raise UnsupportedInputError(f"the spark backend profiles Spark DataFrames and files, not {type(data).__name__}; "
                                        "make one with spark.createDataFrame(...) or use the local backend")  # fmt: skip
        if config.columns:
            missing = [c for c in config.columns if c not in df.columns]
            if missing:
                raise InputError(f"no column(s) {missing} in {label}; it has {df.columns}")
            df = df.select(*config.columns)
        return df, label


def _session(cfg: SparkConfig | None) -> tuple[Any, bool]:
    """(session, created): the active or default session, else a new one built from ``cfg``."""
    from pyspark.sql import SparkSession

    remote = cfg is not None and cfg.master.startswith("sc://")
    try:
        active = SparkSession.active()
    except Exception:
        active = None
    if active is not None and (cfg is None or _is_remote(active) == remote):
        return active, False
    cfg = cfg or SparkConfig()
    home = os.environ.get("SPARK_HOME")
    if home and not remote and not os.path.isfile(os.path.join(home, "bin", "spark-submit")):
        raise ConfigError(f"SPARK_HOME={home!r} has no bin/spark-submit; point it at a Spark installation "
                          "(4.0 or newer) or unset it to use the Spark that pyspark ships")  # fmt: skip
    conf: dict[str, Any] = {}
    builder = SparkSession.builder.remote(cfg.master) if remote else SparkSession.builder.master(cfg.master).appName(cfg.app_name)
    if not remote:
        conf = {"spark.executor.memory": cfg.executor_memory, "spark.executor.cores": cfg.executor_cores,
                "spark.executor.instances": cfg.num_executors}  # fmt: skip
        if cfg.master.startswith("spark://"):
            conf["spark.cores.max"] = cfg.executor_cores * cfg.num_executors
    conf.update(cfg.spark_config)
    for key, value in conf.items():
        builder = builder.config(key, str(value))
    try:
        spark = builder.getOrCreate()
    except Exception as exc:
        raise BackendError(f"cannot start a Spark session for master {cfg.master!r} (SparkConfig.master): "
                           f"{_first_line(exc)}") from exc  # fmt: skip
    if not remote:  # Python workers must be able to import truthound_sketch
        spark.sparkContext.pythonExec = str(conf.get("spark.pyspark.python") or os.environ.get("PYSPARK_PYTHON") or sys.executable)
    return spark, True


def _is_remote(spark: Any) -> bool:
    return type(spark).__module__.startswith("pyspark.sql.connect")


def _read(spark: Any, paths: list[str]) -> Any:
    fmts = {_format(p) for p in paths}
    if len(fmts) > 1:
        raise InputError(f"{paths}: files of different formats ({sorted(fmts)}); profile each format separately")
    fmt = fmts.pop()
    reader = spark.read.format("csv" if fmt == "tsv" else fmt)
    if fmt in ("csv", "tsv"):
        reader = reader.option("header", True).option("inferSchema", True).option("sep", "\t" if fmt == "tsv" else ",")
    try:
        return reader.load(paths if len(paths) > 1 else paths[0])
    except Exception as exc:
        raise InputError(f"{', '.join(paths)}: Spark cannot read it as {fmt}: {_first_line(exc)}") from None


def _format(path: str) -> str:
    local = path.removeprefix("file://") if "://" not in path or path.startswith("file://") else None
    if local is not None and not any(ch in local for ch in "*?[") and not os.path.exists(local):
        raise InputError(f"{path}: no such file or directory")
    name = path.rstrip("/").lower()
    for comp in (".gz", ".bz2", ".zst", ".snappy", ".lz4", ".deflate"):
        name = name.removesuffix(comp)
    ext = os.path.splitext(name)[1]
    if ext in _FORMATS:
        return _FORMATS[ext]
    if local is not None and os.path.isdir(local):
        for _, _, files in os.walk(local):
            for f in sorted(files):
                if not f.startswith((".", "_")) and os.path.splitext(f.lower())[1] in _FORMATS:
                    return _format(os.path.join(local, f))
        raise InputError(f"{path}: no parquet, csv, tsv, json or orc files in this directory")
    if not ext and local is None:
        return "parquet"  # a remote directory (a table written by Spark)
    raise UnsupportedInputError(f"{path}: the spark backend reads .parquet, .csv, .tsv, .json/.jsonl/.ndjson and .orc "
                                "files; read others with spark.read and profile the DataFrame")  # fmt: skip


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:500]


def _failure(exc: BaseException, label: str, bus: Any) -> BackendError:
    text = str(exc)
    found = _FAILED.search(text)
    if found:
        bus.partition_failed(int(found[1]), error=found[3], worker_id=found[2])
        return BackendError(f"spark failed on partition {found[1]} of {label}: {found[3]}")
    if "No module named 'truthound_sketch'" in text:
        return BackendError(f"spark's Python workers cannot import truthound_sketch while profiling {label}: install it "
                            "where the executors run and point PYSPARK_PYTHON (or spark.pyspark.python) at that Python")  # fmt: skip
    return BackendError(f"spark failed while profiling {label}: {_first_line(exc)}")
