"""A profiling worker process: reads slices it is told about and answers with partial bytes.

Run as ``python -m truthound_sketch.worker``.  Requests and answers are length-prefixed frames
on stdin/stdout: a request is JSON (a slice and the partial's parameters), an answer is a status
byte, a JSON header (rows, seconds, pid, or the error) and the partial's bytes.  Nothing is pickled.
"""

from __future__ import annotations

import gc
import json
import os
import struct
import sys
import time

__all__ = ["main", "read_frame", "write_frame"]

_LEN = struct.Struct("<Q")


def read_frame(stream) -> bytes | None:
    head = stream.read(_LEN.size)
    if len(head) < _LEN.size:
        return None
    (n,) = _LEN.unpack(head)
    data = stream.read(n)
    return data if len(data) == n else None


def write_frame(stream, *parts: bytes) -> None:
    stream.write(_LEN.pack(sum(len(p) for p in parts)))
    for p in parts:
        stream.write(p)
    stream.flush()


def run_slice(request: dict) -> tuple[dict, bytes]:
    from .config import ProfileConfig
    from .sources import Slice
    from .table import TablePartial

    sl = Slice.from_dict(request["slice"])
    config = ProfileConfig(**request["config"])
    started = time.perf_counter()
    part = TablePartial.from_batches(sl.read(config.batch_rows), config, consume=True)
    return {"rows": part.row_count, "seconds": time.perf_counter() - started, "pid": os.getpid()}, part.to_bytes()


def main() -> None:
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything printed by libraries goes to stderr, not into the protocol
    inp = sys.stdin.buffer
    gc.disable()  # the first slice imports polars, numpy and DataSketches: no collections meanwhile
    while True:
        frame = read_frame(inp)
        if frame is None:  # no more requests: everything is written; skip the interpreter's teardown
            out.flush()
            os._exit(0)
        try:
            meta, data = run_slice(json.loads(frame))
            head = json.dumps(meta).encode()
            write_frame(out, b"O", struct.pack("<I", len(head)), head, data)
        except Exception as exc:
            head = json.dumps({"error": str(exc) or type(exc).__name__, "type": type(exc).__name__}).encode()
            write_frame(out, b"E", struct.pack("<I", len(head)), head)
        if not gc.isenabled():  # imports done: their objects are frozen out of later collections
            gc.freeze()
            gc.enable()


if __name__ == "__main__":
    main()
