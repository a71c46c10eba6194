"""Where batches come from: files split into slices that a worker reads on its own, and frames.

A :class:`Slice` is a small, JSON-serializable description of part of a file (parquet row groups,
a byte range of a CSV or NDJSON file, record batches of an Arrow IPC file).  A worker process is
given slices, never the data.  In-memory frames are cut into row ranges (zero-copy) for threads.
"""

from __future__ import annotations

import glob as _glob
import itertools
import os
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import polars as pl

from . import read_ahead
from .parquet_footer import read_footer
from .errors import InputError, MissingDependencyError, UnsupportedInputError

__all__ = ["Slice", "Source", "resolve_source", "FORMATS", "format_of"]

FORMATS = {
    ".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".tsv": "tsv", ".txt": "csv",
    ".ndjson": "ndjson", ".jsonl": "ndjson", ".json": "json", ".arrow": "ipc", ".ipc": "ipc",
    ".feather": "ipc", ".arrows": "ipc_stream",
}  # fmt: skip
_SPLIT_BYTES = 64 << 20  # text files above this size are split into byte ranges


def format_of(path: str) -> str:
    name = path.lower()
    for comp in (".gz", ".zst", ".bz2", ".xz"):
        if name.endswith(comp):
            name = name[: -len(comp)]
    ext = os.path.splitext(name)[1]
    if ext not in FORMATS:
        known = ", ".join(sorted(set(FORMATS)))
        raise UnsupportedInputError(f"{path}: unknown file type '{ext or '(none)'}'; supported: {known}")
    return FORMATS[ext]


# -- slices -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Slice:
    format: str
    path: str
    row_groups: tuple[int, ...] | None = None
    byte_range: tuple[int, int] | None = None
    batches: tuple[int, ...] | None = None
    columns: tuple[str, ...] | None = None
    schema: dict[str, str] | None = None  # CSV/NDJSON: the schema every slice parses with
    storage_options: dict[str, Any] = field(default_factory=dict)
    rows: int | None = None
    hash_partition: tuple[int, int] | None = None  # (index, count): keep rows whose hash % count == index
    #: parquet: (first row, rows) of each of ``row_groups``, from the planner (else read from the footer)
    group_spans: tuple[tuple[int, int], ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Slice":
        tup = lambda v: tuple(v) if v is not None else None  # noqa: E731
        return cls(
            d["format"], d["path"], tup(d.get("row_groups")), tup(d.get("byte_range")), tup(d.get("batches")),
            tup(d.get("columns")), d.get("schema"), d.get("storage_options") or {}, d.get("rows"),
            tup(d.get("hash_partition")),
            tuple(tuple(x) for x in d["group_spans"]) if d.get("group_spans") is not None else None,
        )  # fmt: skip

    def read(self, batch_rows: int) -> Iterator[pl.DataFrame]:
        """The slice's rows, as polars frames of at most about ``batch_rows`` rows."""
        try:
            batches = _READERS[self.format](self, batch_rows)
            if self.hash_partition is not None:
                index, count = self.hash_partition
                keep = pl.struct(pl.all()).hash(0) % count == index
                batches = (b.filter(keep) for b in batches)
            yield from batches
        except (InputError, MemoryError):
            raise
        except FileNotFoundError:
            raise InputError(f"{self.path}: file not found (it was there when the run was planned)") from None
        except Exception as exc:
            where = f" bytes {self.byte_range[0]}-{self.byte_range[1]}" if self.byte_range else ""
            raise InputError(f"{self.path}{where}: cannot read as {self.format}: {_short(exc)}") from None


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:500]


def _fs(path: str, storage_options: dict[str, Any]):
    import fsspec

    fs, fs_path = fsspec.core.url_to_fs(path, **storage_options)
    return fs, fs_path


def _is_local(path: str) -> bool:
    return "://" not in path or path.startswith("file://")


def _read_parquet(sl: Slice, batch_rows: int) -> Iterator[pl.DataFrame]:
    cols = list(sl.columns) if sl.columns else None
    if _is_local(sl.path):
        # polars' own reader decodes straight into polars memory: whole row groups, several a batch
        path = sl.path.removeprefix("file://")
        if sl.group_spans is not None and sl.row_groups is not None:
            groups, spans = list(sl.row_groups), dict(zip(sl.row_groups, sl.group_spans))
        else:
            rows = _parquet_groups(path, {})[0]
            firsts = itertools.accumulate(rows, initial=0)
            groups = list(sl.row_groups) if sl.row_groups is not None else list(range(len(rows)))
            spans = dict(enumerate(zip(firsts, rows)))
        columns = tuple(cols) if cols else None
        read = 0
        for run in _consecutive(groups):  # batches never span a gap between row groups
            start = spans[run[0]][0]
            for first, rows in read_ahead.batch_spans([spans[g][1] for g in run], _NO_TARGET, batch_rows):
                batch = read_ahead.take(path, columns, start + first, rows)
                yield batch if batch is not None else read_ahead.decode(path, columns, start + first, rows)
                read += 1
        if not read:  # no rows: a batch with the schema
            yield read_ahead.decode(path, columns, 0, 0)
        return
    import pyarrow.parquet as pq

    fs, p = _fs(sl.path, sl.storage_options)
    pf = pq.ParquetFile(fs.open(p, "rb"))
    groups = list(sl.row_groups) if sl.row_groups is not None else list(range(pf.num_row_groups))
    for group in groups:
        df = pl.from_arrow(pf.read_row_group(group, columns=cols), rechunk=False)
        for off in range(0, df.height, batch_rows):
            yield df.slice(off, batch_rows)
        if not df.height:
            yield df


def _read_ipc(sl: Slice, batch_rows: int) -> Iterator[pl.DataFrame]:
    import pyarrow as pa

    if sl.format == "ipc_stream" or not _is_local(sl.path):
        fs, p = _fs(sl.path, sl.storage_options)
        with fs.open(p, "rb") as fh:
            reader = pa.ipc.open_stream(fh) if sl.format == "ipc_stream" else pa.ipc.open_file(pa.py_buffer(fh.read()))
            batches = reader if sl.format == "ipc_stream" else (reader.get_batch(i) for i in range(reader.num_record_batches))
            yield from _or_empty(_from_arrow_batches(batches, sl.columns), lambda: _empty_frame(reader.schema, sl.columns))
        return
    with pa.memory_map(sl.path.removeprefix("file://")) as src:
        reader = pa.ipc.open_file(src)
        idx = sl.batches if sl.batches is not None else range(reader.num_record_batches)
        # a file of no record batches still has its columns
        yield from _or_empty(_from_arrow_batches((reader.get_batch(i) for i in idx), sl.columns),
                             lambda: _empty_frame(reader.schema, sl.columns))  # fmt: skip


def _from_arrow_batches(batches, columns) -> Iterator[pl.DataFrame]:
    for rb in batches:
        df = pl.from_arrow(rb, rechunk=False)
        yield df.select(columns) if columns else df


def _text_bytes(sl: Slice) -> bytes | None:
    """The bytes of a byte-range slice (None: read the whole file as a stream)."""
    if sl.byte_range is None:
        return None
    start, end = sl.byte_range
    fs, p = _fs(sl.path, sl.storage_options)
    with fs.open(p, "rb") as fh:
        fh.seek(start)
        return fh.read(end - start)


def _schema(sl: Slice) -> dict[str, pl.DataType] | None:
    if not sl.schema:
        return None
    from .codec import _dtype_from_str

    return {k: _dtype_from_str(v, f"{sl.path} schema.{k}") for k, v in sl.schema.items()}


def _read_csv(sl: Slice, batch_rows: int) -> Iterator[pl.DataFrame]:
    sep = "\t" if sl.format == "tsv" else ","
    data = _text_bytes(sl)
    schema = _schema(sl)
    if data is not None:
        first = sl.byte_range[0] == 0
        # later ranges have no header: the planned schema names the columns, chosen by position
        cols = (list(sl.columns) if first else [list(schema).index(c) for c in sl.columns]) if sl.columns else None
        df = pl.read_csv(data, separator=sep, has_header=first, schema=schema if not first else None,
                         schema_overrides=schema if first else None, columns=cols)  # fmt: skip
    else:
        fs, p = _fs(sl.path, sl.storage_options)
        with fs.open(p, "rb", compression="infer") as fh:
            df = pl.read_csv(fh, separator=sep, schema_overrides=schema, infer_schema_length=10_000,
                             columns=list(sl.columns) if sl.columns else None)  # fmt: skip
    if sl.columns:
        df = df.select(sl.columns)
    for off in range(0, max(df.height, 1), batch_rows):
        yield df.slice(off, batch_rows)


def _read_ndjson(sl: Slice, batch_rows: int) -> Iterator[pl.DataFrame]:
    data = _text_bytes(sl)
    schema = _schema(sl)
    if data is None:
        fs, p = _fs(sl.path, sl.storage_options)
        with fs.open(p, "rb", compression="infer") as fh:
            data = fh.read()
    if sl.format == "json" and data.lstrip()[:1] == b"[":
        df = pl.read_json(data, schema=schema)
    else:
        df = pl.read_ndjson(data, schema=schema)
    if sl.columns:
        df = df.select(sl.columns)
    for off in range(0, max(df.height, 1), batch_rows):
        yield df.slice(off, batch_rows)


_READERS: dict[str, Callable[[Slice, int], Iterator[pl.DataFrame]]] = {
    "parquet": _read_parquet, "ipc": _read_ipc, "ipc_stream": _read_ipc, "csv": _read_csv, "tsv": _read_csv,
    "ndjson": _read_ndjson, "json": _read_ndjson,
}  # fmt: skip


# -- planning ---------------------------------------------------------------------------------
@dataclass
class Source:
    """What to profile: file slices (workers read them) or an in-memory batch producer."""

    label: str
    slices: list[Slice] = field(default_factory=list)
    frames: Callable[[int], list[Callable[[], Iterator[Any]]]] | None = None  # parts for threads
    rows: int | None = None
    bytes: int | None = None
    frame: pl.DataFrame | None = None  # set for in-memory frames, so strategies can cut them

    @property
    def is_files(self) -> bool:
        return self.frames is None


def expand_paths(path: str, storage_options: dict[str, Any]) -> list[str]:
    """Files named by a path, directory or glob (local or fsspec URL), sorted."""
    local = _is_local(path)
    if local:
        p = path.removeprefix("file://")
        if any(ch in p for ch in "*?["):
            files = sorted(f for f in _glob.glob(p, recursive=True) if os.path.isfile(f))
        elif os.path.isdir(p):
            files = sorted(
                os.path.join(root, f) for root, _, names in os.walk(p) for f in names
                if not f.startswith((".", "_")) and _known(f)
            )  # fmt: skip
        elif os.path.exists(p):
            files = [p]
        else:
            raise InputError(f"{path}: no such file or directory")
    else:
        try:
            fs, fp = _fs(path, storage_options)
        except ImportError as exc:
            proto = path.split("://", 1)[0]
            raise MissingDependencyError(str(exc.name or proto), "s3" if proto == "s3" else "all", f"reading {proto}:// paths") from None
        proto = path.split("://", 1)[0]
        if any(ch in fp for ch in "*?["):
            found = fs.glob(fp)
        elif fs.isdir(fp):
            found = [f for f in fs.find(fp) if _known(f) and not os.path.basename(f).startswith((".", "_"))]
        elif fs.exists(fp):
            found = [fp]
        else:
            raise InputError(f"{path}: no such file or directory")
        files = sorted(f if "://" in f else f"{proto}://{f}" for f in found)
    if not files:
        raise InputError(f"{path}: matched no files; check the path or glob")
    return files


def _known(name: str) -> bool:
    try:
        format_of(name)
        return True
    except UnsupportedInputError:
        return False


def plan_files(path: str, *, columns: tuple[str, ...] | None, storage_options: dict[str, Any],
               min_slices: int = 1) -> Source:  # fmt: skip
    files = expand_paths(path, storage_options)
    slices: list[Slice] = []
    total_rows, total_bytes = 0, 0
    for f in files:
        fmt = format_of(f)
        part = _PLANNERS.get(fmt, _plan_whole)(f, fmt, columns, storage_options, min_slices)
        slices += part
        total_rows += sum(s.rows or 0 for s in part)
        total_bytes += _size(f, storage_options)
    return Source(path, slices, rows=total_rows or None, bytes=total_bytes)


def _size(path: str, storage_options) -> int:
    try:
        if _is_local(path):
            return os.path.getsize(path.removeprefix("file://"))
        fs, p = _fs(path, storage_options)
        return int(fs.size(p) or 0)
    except Exception:
        return 0


#: a target no slice of row groups reaches: batches end at ``batch_rows`` or at the slice's end
_NO_TARGET = 1 << 62


def _consecutive(groups: list[int]) -> Iterator[list[int]]:
    """The runs of consecutive row-group numbers in ``groups``."""
    run: list[int] = []
    for g in groups:
        if run and g != run[-1] + 1:
            yield run
            run = []
        run.append(g)
    if run:
        yield run


def _plan_whole(path, fmt, columns, storage_options, min_slices) -> list[Slice]:
    return [Slice(fmt, path, columns=columns, storage_options=storage_options)]


#: local parquet footers up to this size are read in Python (lineitem-sf1's 109 KB in 9 ms, sf10's
#: 1 MB in 73 ms), larger ones by pyarrow: importing it costs 20-30 ms and keeps ~40 MB mapped
_OWN_FOOTER_BYTES = 64 << 20


def _parquet_groups(path: str, storage_options: dict[str, Any]) -> tuple[list[int], list[str]]:
    """The row counts of a parquet file's row groups and its top-level column names."""
    try:
        footer = read_footer(path.removeprefix("file://"), _OWN_FOOTER_BYTES) if _is_local(path) else None
    except (OSError, ValueError):
        footer = None  # pyarrow says what is wrong with it
    if footer is not None:
        return footer.group_rows, footer.columns
    import pyarrow.parquet as pq

    def groups_and_names(pf: Any) -> tuple[list[int], list[str]]:
        return [pf.metadata.row_group(i).num_rows for i in range(pf.metadata.num_row_groups)], pf.schema_arrow.names

    try:
        if _is_local(path):
            return groups_and_names(pq.ParquetFile(path.removeprefix("file://")))
        fs, p = _fs(path, storage_options)
        with fs.open(p, "rb") as fh:
            return groups_and_names(pq.ParquetFile(fh))
    except Exception as exc:
        raise InputError(f"{path}: not a readable parquet file: {_short(exc)}") from None


def _plan_parquet(path, fmt, columns, storage_options, min_slices) -> list[Slice]:
    rows, names = _parquet_groups(path, storage_options)
    if columns:
        missing = [c for c in columns if c not in names]
        if missing:
            raise InputError(f"{path}: no column(s) {missing}; the file has {names}")
    firsts = list(itertools.accumulate(rows, initial=0))  # the first row of each group
    target = read_ahead.slice_target(sum(rows), min_slices)
    slices, group, acc = [], [], 0

    def cut() -> Slice:
        spans = tuple((firsts[g], rows[g]) for g in group)
        return Slice(fmt, path, row_groups=tuple(group), columns=columns, storage_options=storage_options, rows=acc,
                     group_spans=spans)  # fmt: skip

    for i, r in enumerate(rows):
        group.append(i)
        acc += r
        if acc >= target:
            slices.append(cut())
            group, acc = [], 0
    if group or not slices:
        slices.append(cut())
    return slices


def _plan_ipc(path, fmt, columns, storage_options, min_slices) -> list[Slice]:
    if not _is_local(path):
        return _plan_whole(path, fmt, columns, storage_options, min_slices)
    import pyarrow as pa

    try:
        with pa.memory_map(path.removeprefix("file://")) as src:
            reader = pa.ipc.open_file(src)
            n = reader.num_record_batches
            rows = [reader.get_batch(i).num_rows for i in range(n)]
    except Exception as exc:
        raise InputError(f"{path}: not a readable Arrow IPC file: {_short(exc)}") from None
    per = max(1, -(-n // max(min_slices, 1)))
    return [
        Slice(fmt, path, batches=tuple(range(i, min(i + per, n))), columns=columns, rows=sum(rows[i : i + per]))
        for i in range(0, max(n, 1), per)
    ]


def _plan_text(path, fmt, columns, storage_options, min_slices) -> list[Slice]:
    """Split a large uncompressed CSV/NDJSON file into newline-aligned byte ranges."""
    from .codec import _dtype_to_str

    size = _size(path, storage_options)
    compressed = path.lower().endswith((".gz", ".zst", ".bz2", ".xz"))
    if compressed or size < _SPLIT_BYTES or min_slices < 2 or fmt == "json":
        return _plan_whole(path, fmt, columns, storage_options, min_slices)
    fs, p = _fs(path, storage_options)
    with fs.open(p, "rb") as fh:
        head = fh.read(1 << 20)
        if fmt in ("csv", "tsv") and b'"' in head:
            return _plan_whole(path, fmt, columns, storage_options, min_slices)  # quoted fields may hold newlines
        header_end = head.find(b"\n") + 1 if fmt in ("csv", "tsv") else 0
        sample = head[: head.rfind(b"\n") + 1]
        try:
            if fmt == "ndjson":
                schema = pl.read_ndjson(sample).schema
            else:
                schema = pl.read_csv(sample, separator="\t" if fmt == "tsv" else ",", infer_schema_length=10_000).schema
        except Exception as exc:
            raise InputError(f"{path}: cannot read as {fmt}: {_short(exc)}") from None
        n = max(min_slices, -(-size // _SPLIT_BYTES))
        cuts = [0]
        for i in range(1, n):
            fh.seek(max(size * i // n, header_end))
            fh.readline()
            pos = fh.tell()
            if pos < size and pos > cuts[-1]:
                cuts.append(pos)
        cuts.append(size)
    enc = {k: _dtype_to_str(v) for k, v in schema.items()}
    return [
        Slice(fmt, path, byte_range=(a, b), columns=columns, schema=enc, storage_options=storage_options)
        for a, b in zip(cuts, cuts[1:]) if b > a
    ]  # fmt: skip


_PLANNERS = {"parquet": _plan_parquet, "ipc": _plan_ipc, "csv": _plan_text, "tsv": _plan_text, "ndjson": _plan_text}


# -- frames -----------------------------------------------------------------------------------
_ENGINES = {"pyspark": ("spark", "pyspark"), "dask": ("dask", "dask"), "ray": ("ray", "ray")}


def engine_of(data: Any) -> str | None:
    """'spark', 'dask' or 'ray' for those engines' frames (detected without importing them)."""
    mod = type(data).__module__.split(".")[0]
    if mod in _ENGINES:
        return _ENGINES[mod][0]
    return None


def resolve_source(data: Any, *, columns: tuple[str, ...] | None = None, storage_options: dict | None = None,
                   min_slices: int = 1) -> Source:  # fmt: skip
    """Turn what the user passed into a :class:`Source`."""
    storage_options = storage_options or {}
    if isinstance(data, os.PathLike):
        data = os.fspath(data)
    if isinstance(data, str):
        return plan_files(data, columns=columns, storage_options=storage_options, min_slices=min_slices)
    if isinstance(data, (list, tuple)) and data and all(isinstance(d, (str, os.PathLike)) for d in data):
        parts = [plan_files(os.fspath(d), columns=columns, storage_options=storage_options, min_slices=min_slices) for d in data]
        return Source(", ".join(p.label for p in parts), [s for p in parts for s in p.slices],
                      rows=sum(p.rows or 0 for p in parts) or None, bytes=sum(p.bytes or 0 for p in parts))  # fmt: skip
    label = type(data).__name__
    if isinstance(data, pl.LazyFrame):
        lf = data.select(columns) if columns else data
        empty = lambda: pl.DataFrame(schema=lf.collect_schema())  # noqa: E731
        return Source(label, frames=lambda n: [lambda: _or_empty(lf.collect_batches(chunk_size=None), empty)])
    import pyarrow as pa  # not for paths: the command line profiles files without it

    if isinstance(data, pa.RecordBatchReader) or (hasattr(data, "__arrow_c_stream__") and not isinstance(data, _frames()) and not _is_pandas(data)):
        reader = data if isinstance(data, pa.RecordBatchReader) else _stream_reader(data)
        empty = lambda: _empty_frame(reader.schema, columns)  # noqa: E731
        return Source(label, frames=lambda n: [lambda: _or_empty(_from_arrow_batches(reader, columns), empty)])
    if _is_dataset(data):
        files = getattr(data, "files", None)
        fmt = getattr(getattr(data, "format", None), "default_extname", None)
        if files and fmt in ("parquet", "ipc", "arrow", "feather", "csv") and all(os.path.exists(f) for f in files) \
                and _plain_files(data):
            slices = [s for f in files for s in plan_files(f, columns=columns, storage_options={}, min_slices=min_slices).slices]
            return Source(label, slices)
        scanner = data.scanner(columns=list(columns) if columns else None)
        empty = lambda: _empty_frame(scanner.projected_schema, None)  # noqa: E731
        return Source(label, frames=lambda n: [lambda: _or_empty(_from_arrow_batches(scanner.to_batches(), None), empty)])
    df = _as_frame(data)
    if df is None:
        raise UnsupportedInputError(
            f"cannot profile an object of type {type(data).__module__}.{type(data).__name__}; pass a polars or "
            "pandas DataFrame, a polars LazyFrame, a pyarrow Table/RecordBatchReader/Dataset, an object with "
            "__arrow_c_stream__, or a path, directory or glob"
        )
    if columns:
        missing = [c for c in columns if c not in df.columns]
        if missing:
            raise InputError(f"no column(s) {missing} in the frame; it has {df.columns}")
        df = df.select(columns)
    return Source(label, frames=lambda n: _frame_parts(df, n), rows=df.height, frame=df)


_MIN_PART_ROWS = 100_000


def _or_empty(batches: Iterator[pl.DataFrame], empty: Callable[[], pl.DataFrame]) -> Iterator[pl.DataFrame]:
    """The batches, or one empty frame with the schema if there are none (so the columns are kept)."""
    seen = False
    for batch in batches:
        seen = True
        yield batch
    if not seen:
        yield empty()


def _empty_frame(schema: pa.Schema, columns) -> pl.DataFrame:
    df = pl.from_arrow(schema.empty_table())
    return df.select(columns) if columns else df  # type: ignore[union-attr]


def _frame_parts(df: pl.DataFrame, n: int) -> list[Callable[[], Iterator[pl.DataFrame]]]:
    n = max(1, min(n, df.height // _MIN_PART_ROWS))
    size = max(1, -(-df.height // n))
    return [(lambda off=off: iter([df.slice(off, size)])) for off in range(0, max(df.height, 1), size)]


def _is_pandas(obj: Any) -> bool:
    return type(obj).__module__.startswith("pandas")


def _plain_files(dataset: Any) -> bool:
    """True when a dataset is just its files: no filter, no partition columns from directory
    names, no schema other than the files' own (otherwise the dataset's scanner reads it)."""
    if getattr(dataset, "_scan_options", None):
        return False
    try:
        first = next(iter(dataset.get_fragments()))
        return dataset.schema.equals(first.physical_schema, check_metadata=False)
    except Exception:
        return False


def _is_dataset(obj: Any) -> bool:
    return type(obj).__module__.startswith("pyarrow._dataset")


def _frames() -> tuple[type, ...]:
    """Frames and columns that have __arrow_c_stream__ but are read directly (a column is a
    one-column table)."""
    import pyarrow as pa

    return (pa.Table, pa.RecordBatch, pa.Array, pa.ChunkedArray, pl.DataFrame, pl.Series)


def _stream_reader(data: Any) -> pa.RecordBatchReader:
    import pyarrow as pa

    try:
        return pa.RecordBatchReader.from_stream(data)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError) as exc:
        raise UnsupportedInputError(
            f"cannot profile an object of type {type(data).__module__}.{type(data).__name__}: its Arrow stream is "
            f"not a table of columns ({_short(exc)}); pass a table or data frame"
        ) from None


def _as_frame(data: Any) -> pl.DataFrame | None:
    if isinstance(data, pl.DataFrame):
        return data
    if isinstance(data, pl.Series):
        return data.to_frame()
    import pyarrow as pa

    if isinstance(data, (pa.Array, pa.ChunkedArray)):
        return pl.from_arrow(data).to_frame()  # type: ignore[union-attr]
    if isinstance(data, (pa.Table, pa.RecordBatch)):
        return pl.from_arrow(data, rechunk=False)  # type: ignore[return-value]
    if _is_pandas(data) and hasattr(data, "columns"):
        return pl.from_pandas(data)
    return None
