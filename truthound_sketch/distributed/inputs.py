"""What an engine backend is given, recognised and converted, whatever the engine.

Paths (and the reader format of files, for engines that read them with their own readers), in-memory
frames (polars, pandas, Arrow) as Arrow tables or slices of rows, the schema of data with no rows, and
the backend's options.  Nothing here imports an engine.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import polars as pl
import pyarrow as pa

from ..config import ProfileConfig
from ..errors import ConfigError, InputError, UnsupportedInputError
from ..sources import resolve_source
from ..table import TablePartial

__all__ = ["FORMATS", "is_paths", "require_columns", "rebatch", "frame_batches", "pandas_to_polars", "arrow_of",
           "schema_partial", "require_options", "FileProfiling", "file_format", "read_plan"]  # fmt: skip


#: file extension -> reader format, for engines that read files with their own readers
FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".tsv": "tsv", ".json": "json",
           ".jsonl": "json", ".ndjson": "json", ".orc": "orc"}  # fmt: skip


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
