"""What every engine's partition task and reducer do, whatever the engine.

A partition task turns one partition (a file-slice dict, a polars frame, an Arrow table or batches,
a pandas frame) into ``(partial bytes, rows, seconds, worker)``; reducers merge partial bytes into
bytes; the driver publishes started/completed from the metadata the task returned.  Nothing here
imports an engine: the engine adapters call these from their workers and drivers.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import suppress
from typing import Any

import polars as pl
import pyarrow as pa

from .. import errors
from ..config import ProfileConfig
from ..errors import BackendError, ConfigError, InputError, TruthoundSketchError, UnsupportedInputError
from ..sources import Slice, resolve_source
from ..table import TablePartial
from .base import tree_reduce

__all__ = ["PARAMS", "FORMATS", "params_of", "is_paths", "require_columns", "rebatch", "frame_batches",
           "pandas_to_polars", "arrow_of", "schema_partial", "partition_partial", "partition_record", "publish_record",
           "Arrivals", "merge_bytes", "merge_tree", "fold_partials", "publish_run", "publish_done",
           "raise_failure", "require_options", "FileProfiling", "first_line", "file_format", "read_plan",
           "PARTIAL_ROW", "partial_row", "merge_partial_rows", "failure_text", "text_failure"]  # fmt: skip

#: the ProfileConfig fields a worker needs to build the same partial as the driver would
PARAMS = ("kll_k", "hll_lg_k", "exact_threshold", "frequent_capacity", "batch_rows")
#: file extension -> reader format, for engines that read files with their own readers
FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".tsv": "tsv", ".json": "json",
           ".jsonl": "json", ".ndjson": "json", ".orc": "orc"}  # fmt: skip


def params_of(config: ProfileConfig, *extra: str) -> dict[str, Any]:
    """The plain dict a task rebuilds its ProfileConfig from (``ProfileConfig(**params)``)."""
    return {k: getattr(config, k) for k in (*PARAMS, *extra)}


def is_paths(data: Any) -> bool:
    """A path, or a non-empty list/tuple of paths."""
    if isinstance(data, (str, os.PathLike)):
        return True
    return isinstance(data, (list, tuple)) and bool(data) and all(isinstance(d, (str, os.PathLike)) for d in data)


def require_columns(columns: Iterable[str] | None, have: list, where: str) -> None:
    missing = [c for c in columns or () if c not in have]
    if missing:
        raise InputError(f"no column(s) {missing} in {where}; it has {have}")


def rebatch(batches: Iterable[Any], rows: int) -> Any:
    """Arrow record batches regrouped into tables of about ``rows`` rows."""
    buf, n = [], 0
    for b in batches:
        buf.append(b)
        n += b.num_rows
        if n >= rows:
            yield pa.Table.from_batches(buf)
            buf, n = [], 0
    if buf:
        yield pa.Table.from_batches(buf)


def frame_batches(frame: Any, rows: int, columns: list[str] | None = None, where: str = "the data") -> Any:
    """A polars frame or Arrow table (its ``columns``, if given) in slices of ``rows`` rows (one if it has none)."""
    if columns:
        require_columns(columns, list(frame.columns if isinstance(frame, pl.DataFrame) else frame.column_names), where)
        frame = frame.select(list(columns))
    height = frame.height if isinstance(frame, pl.DataFrame) else frame.num_rows
    return (frame.slice(o, rows) for o in range(0, max(height, 1), rows))


def pandas_to_polars(pdf: Any, i: int, engine: str, hint: str = "df") -> pl.DataFrame:
    """As ``profile(pandas_df)`` converts: nullable and Arrow dtypes, time zones and categoricals kept."""
    try:
        df = pl.from_pandas(pdf)
    except Exception as exc:
        bad = [c for c in pdf.columns if not _converts(pdf[[c]])][:1] or ["?"]
        raise InputError(f"{engine} partition {i}: column {bad[0]!r} cannot be profiled ({str(exc)[:300]}); cast it "
                         f"first, e.g. {hint}.astype({{{bad[0]!r}: 'string'}})") from None  # fmt: skip
    if not len(pdf):  # no values: an object column's type is unknown here, so other partitions decide it
        df = df.with_columns(pl.lit(None, pl.Null).alias(str(c)) for c, t in pdf.dtypes.items() if t == object)
    return df


def _converts(pdf: Any) -> bool:
    try:
        return pl.from_pandas(pdf) is not None
    except Exception:
        return False


def arrow_of(data: Any, engine: str, accepts: str) -> pa.Table:
    """An in-memory frame (polars, pandas, Arrow) as Arrow, read as the local engine reads it."""
    frame = resolve_source(data).frame
    if frame is None:
        raise UnsupportedInputError(f"the {engine} backend profiles {accepts}; got {type(data).__module__}.{type(data).__name__}")
    return frame.to_arrow()


def schema_partial(schema: Any, config: ProfileConfig, where: str) -> TablePartial:
    """A partial with an Arrow schema's columns (``config.columns`` of them, if set) and no rows."""
    if not isinstance(schema, pa.Schema):
        return TablePartial.zero(config=config)
    table = schema.empty_table()
    if config.columns:
        require_columns(config.columns, table.column_names, where)
        table = table.select(list(config.columns))
    return TablePartial.from_batches([table], config)


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


#: the project errors a record's failure is raised again as (others become BackendError)
RERAISED = ("InputError", "UnsupportedInputError", "SchemaMismatchError", "ConfigError", "ProfileFormatError")


def publish_record(bus: Any, i: int, record: dict[str, Any], *, submitted: bool = False) -> None:
    """Publishes a ``partition_record`` as it arrives at the driver; a failure is raised again."""
    if submitted:
        bus.partition_submitted(i)
    if "error" in record:
        bus.partition_failed(i, error=record["error"], worker_id=record["worker"])
        if record["type"] in RERAISED:
            raise getattr(errors, record["type"])(record["error"])
        raise BackendError(f"partition {i} failed on {record['worker']}: {record['type']}: {record['error']}")
    publish_done(bus, i, record["rows"], record["seconds"], record["worker"])


class Arrivals:
    """The driver's account of partitions whose records arrive in any order: numbers the ones it learns
    of only on arrival (``pid=None``), publishes their events and keeps the partials (any handle) to merge."""

    def __init__(self, bus: Any) -> None:
        self.bus, self.done, self.current, self.parts = bus, 0, 0, []

    def arrive(self, fetch: Callable[[], list[dict]], part: Any, pid: int | None = None) -> None:
        self.current = self.done if pid is None else pid
        records = fetch()
        for record in records:
            i, self.done = (self.done if pid is None else pid), self.done + 1
            publish_record(self.bus, i, record, submitted=pid is None)
        self.parts.extend([part] if records else [])


def merge_bytes(*items: Any) -> bytes:
    """Partial bytes (or task results whose first item is the bytes) merged into one partial's bytes."""
    blobs = [x[0] if isinstance(x, tuple) else x for x in items]
    return blobs[0] if len(blobs) == 1 else tree_reduce([TablePartial.from_bytes(b) for b in blobs]).to_bytes()


def merge_tree(items: list, fan_in: int, merge: Callable[[list, int, int], Any], *, singles: bool = False) -> tuple[Any, list[int]]:
    """Reduces ``items`` level by level, ``merge(group, depth, offset)`` taking at most ``fan_in`` of them,
    so no merge ever holds every partial.  Returns (root or None, the size of each merge made); a lone
    item at the end of a level is carried up as it is unless ``singles``."""
    sizes, depth = [], 0
    while len(items) > 1:
        groups = [(j, items[j : j + fan_in]) for j in range(0, len(items), fan_in)]
        sizes += [len(g) for _, g in groups if len(g) > 1 or singles]
        items = [merge(g, depth, j) if len(g) > 1 or singles else g[0] for j, g in groups]
        depth += 1
    return (items[0] if items else None), sizes


def fold_partials(blobs: Iterable[bytes]) -> TablePartial | None:
    """Merges a stream of partial bytes; a binary counter keeps at most log2(n) partials at once."""
    stack: list[tuple[int, TablePartial]] = []
    for blob in blobs:
        part, level = TablePartial.from_bytes(blob), 0
        while stack and stack[-1][0] == level:
            part, level = stack.pop()[1].merge(part), level + 1
        stack.append((level, part))
    return tree_reduce([p for _, p in reversed(stack)]) if stack else None


def publish_run(bus: Any, backend: str, n: int, rows: int | None, label: str) -> None:
    """A run whose ``n`` partitions are all known, and submitted, before any starts."""
    bus.run_started(backend=backend, num_partitions=n, total_rows=rows, source=label)
    for i in range(n):
        bus.partition_submitted(i)


def publish_done(bus: Any, i: int, rows: int, seconds: float, worker: str | None, *, submitted: bool = False) -> None:
    """The events of a partition the driver learns of only when its result (and metadata) arrives."""
    if submitted:
        bus.partition_submitted(i)
    bus.partition_started(i, worker_id=worker)
    bus.partition_completed(i, rows=rows, duration_seconds=seconds, worker_id=worker)


def raise_failure(exc: BaseException, bus: Any, what: str, partition: int | None = None) -> None:
    """Raises a run's failure again: a project error (or one an engine wrapped as ``.cause``) as it is,
    others as BackendError after publishing the failure of the partition (``partition_partial``'s tag)."""
    i = getattr(exc, "truthound_partition", None)
    if i is not None:  # a task's failure, published whatever it is
        bus.partition_failed(i, error=exc, worker_id=getattr(exc, "truthound_worker", None))
    if isinstance(exc, TruthoundSketchError):
        raise exc
    if isinstance(getattr(exc, "cause", None), TruthoundSketchError):
        raise exc.cause from None
    if i is None and partition is not None:  # the partition the driver was waiting for
        bus.partition_failed(i := partition, error=exc)
    raise BackendError(f"{what}{f' partition {i}' * (i is not None)}: {type(exc).__name__}: {str(exc).strip()[:500]}") from exc


def require_options(engine: str, fan_in: Any, *, most: int | None = None, what: str = "fan_in",
                    strategy: Any = None, splits: str = "") -> None:  # fmt: skip
    """``fan_in``: at least 2 partials a merge (and at most ``most``); engines that profile their own row
    partitions (``splits``) take only ``PartitionStrategy.ROW_BASED``."""
    if splits and getattr(strategy, "value", strategy) != "row_based":
        raise ConfigError(f"partition_strategy={getattr(strategy, 'value', strategy)!r} is not supported: the {engine} "
                          f"backend profiles {splits}; use 'row_based'")  # fmt: skip
    if not isinstance(fan_in, int) or isinstance(fan_in, bool) or fan_in < 2 or (most is not None and fan_in > most):
        bound = f"in [2, {most}]" if most is not None else "of at least 2 (a merge takes at least 2 partials)"
        raise ConfigError(f"{what}={fan_in!r} must be an integer {bound}")


class FileProfiling:
    """``profile_file`` for engine backends whose workers read the files themselves."""

    def profile_file(self, path: Any, **options: Any) -> Any:
        """Profile files (a path, directory, glob or list of them; local paths or fsspec URLs)."""
        return self.profile(os.fspath(path) if isinstance(path, os.PathLike) else path, **options)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:500]


def file_format(path: str, engine: str = "spark") -> str:
    """The reader format of a file, directory or glob, by extension (a remote directory: parquet)."""
    local = path.removeprefix("file://") if "://" not in path or path.startswith("file://") else None
    if local is not None and not any(ch in local for ch in "*?[") and not os.path.exists(local):
        raise InputError(f"{path}: no such file or directory")
    name = path.rstrip("/").lower()
    for comp in (".gz", ".bz2", ".zst", ".snappy", ".lz4", ".deflate"):
        name = name.removesuffix(comp)
    ext = os.path.splitext(name)[1]
    if ext in FORMATS:
        return FORMATS[ext]
    if local is not None and os.path.isdir(local):
        for _, _, files in os.walk(local):
            for f in sorted(files):
                if not f.startswith((".", "_")) and os.path.splitext(f.lower())[1] in FORMATS:
                    return file_format(os.path.join(local, f), engine)
        raise InputError(f"{path}: no parquet, csv, tsv, json or orc files in this directory")
    if not ext and local is None:
        return "parquet"  # a remote directory (a table written by its engine)
    raise UnsupportedInputError(f"{path}: the {engine} backend reads .parquet, .csv, .tsv, .json/.jsonl/.ndjson and .orc "
                                f"files; read others with {engine}.read and profile the DataFrame")  # fmt: skip


def read_plan(paths: list[str], engine: str = "spark") -> tuple[str, str, dict[str, Any]]:
    """(format, reader format, reader options) of files that share one format, for an engine's own reader."""
    fmts = {file_format(p, engine) for p in paths}
    if len(fmts) > 1:
        raise InputError(f"{paths}: files of different formats ({sorted(fmts)}); profile each format separately")
    fmt = fmts.pop()
    csv = {"header": True, "inferSchema": True, "sep": "\t" if fmt == "tsv" else ","}
    return fmt, "csv" if fmt == "tsv" else fmt, csv if fmt in ("csv", "tsv") else {}


#: Arrow rows that carry partials between an engine's stages: merge group, partial bytes, and a JSON
#: list of [partition, rows, seconds, worker] for each partition merged into it
PARTIAL_ROW = pa.schema([("g", pa.int64()), ("partial", pa.binary()), ("meta", pa.string())])


def partial_row(group: int, blob: bytes, meta: list) -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist([{"g": group, "partial": blob, "meta": json.dumps(meta)}], schema=PARTIAL_ROW)


def merge_partial_rows(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """The partial rows of one merge group folded into one row (at most log2(n) partials held at once)."""
    meta, group = [], [0]

    def blobs() -> Iterator[bytes]:
        for b in batches:
            for group[0], data, m in zip(*(c.to_pylist() for c in b.columns)):
                meta.extend(json.loads(m))
                yield data

    part = fold_partials(blobs())
    if part is not None:
        yield partial_row(group[0], part.to_bytes(), meta)


_FAILED = re.compile(r"truthound_sketch partition (\d+) on (\S+): ([^\n]*)")


def failure_text(exc: BaseException, i: int, worker: str) -> str:
    """A partition's failure as text, for engines that hand the driver only an error's message."""
    return f"truthound_sketch partition {i} on {worker}: {type(exc).__name__}: {exc}"


def text_failure(exc: BaseException, bus: Any, engine: str, label: str) -> BackendError | None:
    """The BackendError of a ``failure_text`` found in ``exc``'s message (its failure published), else None."""
    found = _FAILED.search(str(exc))
    if found is None:
        return None
    bus.partition_failed(int(found[1]), error=found[3], worker_id=found[2])
    return BackendError(f"{engine} failed on partition {found[1]} of {label}: {found[3]}")
