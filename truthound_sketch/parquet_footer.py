"""Row counts from a parquet file's footer, read without pyarrow.

The footer is a Thrift ``FileMetaData`` in the compact protocol: field 3 is the file's row count,
field 4 the list of row groups, each with its row count in field 3.  :func:`row_counts` reads the
total and then the row groups lazily, one at a time, so that the first few are known after parsing
only the schema and those groups (a small prefix of a footer that describes hundreds of groups).
It serves :mod:`truthound_sketch.read_ahead`, which starts decoding before pyarrow is imported;
planning uses pyarrow's metadata.
"""

from __future__ import annotations

from collections.abc import Iterator

__all__ = ["row_counts"]

_MAGIC = b"PAR1"
# compact protocol types
_TRUE, _FALSE, _BYTE, _I16, _I32, _I64, _DOUBLE, _BINARY, _LIST, _SET, _MAP, _STRUCT = range(1, 13)
_ROWS, _ROW_GROUPS = 3, 4  # FileMetaData fields
_GROUP_ROWS = 3  # RowGroup field


def row_counts(path: str) -> tuple[int, Iterator[int]]:
    """The file's row count and an iterator over its row groups' row counts, in order.

    Raises ``OSError`` when the file cannot be read and ``ValueError`` when it is not parquet or
    its footer is malformed (also while iterating)."""
    with open(path, "rb") as fh:
        size = fh.seek(0, 2)
        if size < 12:
            raise ValueError(f"{path}: too short for a parquet file")
        fh.seek(size - 8)
        tail = fh.read(8)
        length = int.from_bytes(tail[:4], "little")
        if tail[4:] != _MAGIC or length > size - 12:
            raise ValueError(f"{path}: no parquet footer")
        fh.seek(size - 8 - length)
        reader = _Compact(fh.read(length))
    fields = reader.fields()
    for field, kind in fields:
        if field == _ROWS and kind == _I64:
            total = reader.signed()
            break
        reader.skip(kind)
    else:
        raise ValueError(f"{path}: the footer has no row count")
    return total, _groups(reader, fields, path)


def _groups(reader: "_Compact", fields: Iterator[tuple[int, int]], path: str) -> Iterator[int]:
    for field, kind in fields:
        if field != _ROW_GROUPS or kind != _LIST:
            reader.skip(kind)
            continue
        count, element = reader.list_header()
        if element != _STRUCT:
            raise ValueError(f"{path}: malformed row groups in the footer")
        for _ in range(count):
            rows = None
            for f, k in reader.fields():
                if f == _GROUP_ROWS and k == _I64:
                    rows = reader.signed()
                else:
                    reader.skip(k)
            if rows is None or rows < 0:
                raise ValueError(f"{path}: a row group without a row count in the footer")
            yield rows
        return


class _Compact:
    """A reader of Thrift's compact protocol over bytes; running past the end is a ValueError."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise ValueError("parquet footer: truncated")
        self.pos += 1
        return self.data[self.pos - 1]

    def varint(self) -> int:
        value = shift = 0
        while True:
            b = self.byte()
            value |= (b & 0x7F) << shift
            if b < 0x80:
                return value
            shift += 7
            if shift > 63:
                raise ValueError("parquet footer: malformed integer")

    def signed(self) -> int:
        v = self.varint()
        return (v >> 1) ^ -(v & 1)

    def advance(self, n: int) -> None:
        if n < 0 or self.pos + n > len(self.data):
            raise ValueError("parquet footer: truncated")
        self.pos += n

    def fields(self) -> Iterator[tuple[int, int]]:
        """(field id, type) of each field of a struct, up to its stop byte; the caller reads or
        skips each value before asking for the next."""
        last = 0
        while True:
            header = self.byte()
            if header == 0:
                return
            delta, kind = header >> 4, header & 0x0F
            last = last + delta if delta else self.signed()
            yield last, kind

    def list_header(self) -> tuple[int, int]:
        header = self.byte()
        count = header >> 4
        return (self.varint() if count == 15 else count), header & 0x0F

    def skip(self, kind: int, element: bool = False) -> None:
        if kind in (_TRUE, _FALSE):
            if element:  # a boolean in a list or map is a byte; in a field header, no byte at all
                self.advance(1)
        elif kind == _BYTE:
            self.advance(1)
        elif kind in (_I16, _I32, _I64):
            self.varint()
        elif kind == _DOUBLE:
            self.advance(8)
        elif kind == _BINARY:
            self.advance(self.varint())
        elif kind in (_LIST, _SET):
            count, element_kind = self.list_header()
            for _ in range(count):
                self.skip(element_kind, True)
        elif kind == _MAP:
            count = self.varint()
            if count:
                kinds = self.byte()
                for _ in range(count):
                    self.skip(kinds >> 4, True)
                    self.skip(kinds & 0x0F, True)
        elif kind == _STRUCT:
            for _, k in self.fields():
                self.skip(k)
        else:
            raise ValueError(f"parquet footer: unknown type {kind}")
