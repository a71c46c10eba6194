"""The byte form of partial profiles: versioned, checksummed, parsed (never unpickled).

Layout (all integers little-endian)::

    magic  b"TSKP"  | u16 format version | u16 record kind (1 column, 2 table)
    u64 body length | u32 CRC-32 of body | body

    body = u32 header length | header (UTF-8 JSON) | blobs

The header holds the scalars and a list of ``[name, offset, length]`` blobs.  Sketch blobs are
Apache DataSketches' own serializations (KLL doubles sketch, HLL_8 image); value tables are Arrow
IPC streams; a table's columns are nested column records.  See docs/partials.md.
"""

from __future__ import annotations

import base64
import io
import json
import struct
import zlib
from decimal import Decimal
from typing import Any

import numpy as np
import polars as pl

from .errors import ProfileFormatError

__all__ = ["FORMAT_VERSION", "encode_column", "decode_column", "encode_table", "decode_table"]

MAGIC = b"TSKP"
FORMAT_VERSION = 1
_COLUMN, _TABLE = 1, 2
_HEAD = struct.Struct("<4sHHQI")


# -- framing ----------------------------------------------------------------------------------
def _frame(kind: int, header: dict, blobs: list[tuple[str, bytes]]) -> bytes:
    offset, index = 0, []
    for name, blob in blobs:
        index.append([name, offset, len(blob)])
        offset += len(blob)
    header = dict(header, blobs=index)
    head = json.dumps(header, separators=(",", ":"), allow_nan=False).encode()
    body = b"".join([struct.pack("<I", len(head)), head, *(b for _, b in blobs)])
    return _HEAD.pack(MAGIC, FORMAT_VERSION, kind, len(body), zlib.crc32(body)) + body


def _unframe(data: bytes, kind: int) -> tuple[dict, dict[str, memoryview]]:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ProfileFormatError(f"a partial profile must be bytes, not {type(data).__name__}")
    data = memoryview(data)
    if len(data) < _HEAD.size:
        raise ProfileFormatError("partial profile is truncated: shorter than its 20-byte preamble")
    magic, version, got_kind, length, crc = _HEAD.unpack_from(data)
    if magic != MAGIC:
        raise ProfileFormatError("not a truthound_sketch partial profile (bad magic bytes); was it written by `th profile --save-partial`?")
    if version > FORMAT_VERSION or version < 1:
        raise ProfileFormatError(f"partial profile format version {version} is not supported (this release reads 1..{FORMAT_VERSION}); upgrade truthound_sketch")
    if got_kind != kind:
        want = "column" if kind == _COLUMN else "table"
        raise ProfileFormatError(f"expected a {want} partial profile, found record kind {got_kind}")
    body = data[_HEAD.size:]
    if len(body) != length:
        raise ProfileFormatError(f"partial profile is truncated or padded: body has {len(body)} bytes, header says {length}")
    if zlib.crc32(body) != crc:
        raise ProfileFormatError("partial profile checksum mismatch: the bytes are corrupt")
    try:
        (hlen,) = struct.unpack_from("<I", body)
        header = json.loads(bytes(body[4 : 4 + hlen]))
        blobs_at = 4 + hlen
        blobs = {}
        for name, off, ln in header.pop("blobs"):
            if off < 0 or ln < 0 or blobs_at + off + ln > len(body):
                raise ValueError(f"blob {name!r} lies outside the record")
            blobs[name] = body[blobs_at + off : blobs_at + off + ln]
    except ProfileFormatError:
        raise
    except Exception as exc:
        raise ProfileFormatError(f"partial profile header is malformed: {exc}") from None
    return header, blobs


# -- scalars ----------------------------------------------------------------------------------
def _enc(v: Any) -> Any:
    if v is None:
        return None
    if isinstance(v, bool):
        return ["b", v]
    if isinstance(v, int):
        return ["i", str(v)]
    if isinstance(v, float):
        return ["f", v.hex()]
    if isinstance(v, Decimal):
        return ["d", str(v)]
    if isinstance(v, str):
        return ["s", v]
    if isinstance(v, (bytes, bytearray)):
        return ["x", base64.b64encode(v).decode()]
    raise TypeError(f"cannot encode {type(v).__name__}")


def _dec(v: Any, field: str) -> Any:
    if v is None:
        return None
    try:
        tag, raw = v
        return {"b": bool, "i": int, "f": float.fromhex, "d": Decimal, "s": str, "x": base64.b64decode}[tag](raw)
    except Exception:
        raise ProfileFormatError(f"field {field!r} holds {v!r}, which is not an encoded scalar") from None


def _check_range(col: Any) -> None:
    """A column's min and max: both or neither, of the type its kind produces, in order."""
    from .kinds import Kind

    want = {Kind.FLOAT: float, Kind.DECIMAL: Decimal, Kind.STRING: str, Kind.BOOLEAN: bool}.get(
        col.kind, int if col.kind is Kind.INTEGER or col.kind.temporal else None
    )
    for field, v in (("min", col.min), ("max", col.max)):
        if v is not None and type(v) is not want:
            raise ProfileFormatError(
                f"field '{col.name}.{field}' holds {v!r} ({type(v).__name__}), which a {col.kind.value} column never has"
            )
    if (col.min is None) != (col.max is None) or (col.min is not None and col.min > col.max):
        raise ProfileFormatError(f"fields '{col.name}.min' and '{col.name}.max' ({col.min!r}, {col.max!r}) are not a range")


def _ipc(df: pl.DataFrame) -> bytes:
    buf = io.BytesIO()
    df.write_ipc_stream(buf, compression="uncompressed")
    return buf.getvalue()


def _from_ipc(blob: memoryview, field: str) -> pl.DataFrame:
    try:
        return pl.read_ipc_stream(io.BytesIO(bytes(blob)))
    except (Exception, pl.exceptions.PanicException) as exc:  # malformed IPC can make polars panic
        raise ProfileFormatError(f"{field}: not an Arrow IPC stream ({exc})") from None


def _dtype_to_str(dtype: pl.DataType) -> str:
    return base64.b64encode(_ipc(pl.DataFrame(schema={"x": dtype}))).decode()


def _dtype_from_str(raw: str, field: str) -> pl.DataType:
    try:
        return _from_ipc(memoryview(base64.b64decode(raw)), field).schema["x"]
    except ProfileFormatError:
        raise
    except Exception:
        raise ProfileFormatError(f"{field}: not an encoded data type") from None


# -- column -----------------------------------------------------------------------------------
def encode_column(col) -> bytes:
    header = {
        "name": col.name, "dtype": _dtype_to_str(col.dtype), "dtype_name": str(col.dtype),
        "params": col.params(), "count": col.count, "null_count": col.null_count,
        "nan_count": col.nan_count, "pos_inf_count": col.pos_inf_count, "neg_inf_count": col.neg_inf_count,
        "moments": [col.moments.n, col.moments.mean.hex(), col.moments.m2.hex()],
        "min": _enc(col.min), "max": _enc(col.max), "has_empty": col.has_empty,
        "frequent_error": col.frequent.error if col.frequent is not None else None,
    }  # fmt: skip
    blobs: list[tuple[str, bytes]] = []
    if col.values is not None:
        blobs.append(("values", _ipc(col.values)))
    if col.kll is not None:
        blobs.append(("kll", col.kll.to_bytes()))
    if col.hll is not None:
        blobs.append(("hll", col.hll.to_bytes()))
    if col.frequent is not None:
        blobs.append(("frequent", _ipc(col.frequent.table)))
    if col.lengths is not None:
        ls = col.lengths
        header["lengths"] = {
            "moments": [ls.moments.n, ls.moments.mean.hex(), ls.moments.m2.hex()],
            "min": ls.min, "max": ls.max, "exact": ls.lengths is not None,
        }  # fmt: skip
        if ls.lengths is not None:
            blobs.append(("length_values", ls.lengths.astype("<i8").tobytes()))
            blobs.append(("length_counts", ls.counts.astype("<i8").tobytes()))
        else:
            blobs.append(("length_kll", ls.kll.to_bytes()))
    return _frame(_COLUMN, header, blobs)


def decode_column(data: bytes):
    from .column import ColumnPartial
    from .frequent import FrequentItems
    from .hll import HllDistinct
    from .kll import KllQuantiles
    from .lengths import LengthStats
    from .moments import Moments

    h, blobs = _unframe(data, _COLUMN)
    try:
        name = h["name"]
        params = {k: int(v) for k, v in h["params"].items()}
        col = ColumnPartial(name, _dtype_from_str(h["dtype"], f"{name}.dtype"), **params)
        for key in ("count", "null_count", "nan_count", "pos_inf_count", "neg_inf_count"):
            setattr(col, key, int(h[key]))
        col.moments = _moments(h["moments"])
        col.min, col.max = _dec(h["min"], f"{name}.min"), _dec(h["max"], f"{name}.max")
        _check_range(col)
        col.has_empty = bool(h["has_empty"])
        col.values = _counts_table(blobs["values"], f"{name}.values", col) if "values" in blobs else None
        if "kll" in blobs:
            col.kll = KllQuantiles.from_bytes(blobs["kll"], field=f"{name}.kll")
        if "hll" in blobs:
            col.hll = HllDistinct.from_bytes(bytes(blobs["hll"]))
        if "frequent" in blobs:
            table = _counts_table(blobs["frequent"], f"{name}.frequent", col)
            col.frequent = FrequentItems(table, int(h["frequent_error"]), params["frequent_capacity"])
        if "lengths" in h:
            lh = h["lengths"]
            ls = LengthStats(params["exact_threshold"], params["kll_k"])
            ls.moments, ls.min, ls.max = _moments(lh["moments"]), lh["min"], lh["max"]
            if lh["exact"]:
                ls.lengths = np.frombuffer(blobs["length_values"], "<i8").astype(np.int64)
                ls.counts = np.frombuffer(blobs["length_counts"], "<i8").astype(np.int64)
                if len(ls.lengths) != len(ls.counts):
                    raise ValueError("length histogram arrays differ in size")
            else:
                ls.lengths = None
                ls.kll = KllQuantiles.from_bytes(blobs["length_kll"], field=f"{name}.length_kll")
            col.lengths = ls
        if col.kind.valued and col.values is None and (col.hll is None or col.frequent is None):
            raise ValueError("a sketched column needs both 'hll' and 'frequent' blobs")
        if col.kind.numeric and bool(col.moments.n) != (col.min is not None and col.max is not None):
            raise ValueError("min/max and the count of numeric values disagree")
    except ProfileFormatError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ProfileFormatError(f"column record is missing or has a bad field: {exc}") from None
    return col


def _counts_table(blob: memoryview, field: str, col) -> pl.DataFrame:
    """A value-count table: columns ``value`` (the column's value type) and ``count`` (UInt64)."""
    from .column import _value_dtype

    table = _from_ipc(blob, field)
    want = pl.Schema({"value": _value_dtype(col.dtype), "count": pl.UInt64})
    if table.schema != want:
        raise ProfileFormatError(f"{field}: expected columns {dict(want)}, found {dict(table.schema)}")
    return table


def _moments(raw) -> Any:
    from .moments import Moments

    n, mean, m2 = raw
    return Moments(int(n), float.fromhex(mean), float.fromhex(m2))


# -- table ------------------------------------------------------------------------------------
def encode_table(table) -> bytes:
    header = {"row_count": table.row_count, "params": table.params, "columns": list(table.columns)}
    return _frame(_TABLE, header, [(name, col.to_bytes()) for name, col in table.columns.items()])


def decode_table(data: bytes):
    from .table import TablePartial

    h, blobs = _unframe(data, _TABLE)
    try:
        cols = {}
        for name in h["columns"]:
            cols[name] = decode_column(bytes(blobs[name]))
        return TablePartial(cols, int(h["row_count"]), **{k: int(v) for k, v in h["params"].items()})
    except ProfileFormatError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise ProfileFormatError(f"table record is missing or has a bad field: {exc}") from None
