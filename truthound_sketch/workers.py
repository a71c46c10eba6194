"""A pool of profiling worker processes (``python -m truthound_sketch.worker``).

Each worker reads its own slices of the files and returns partial bytes; the parent only merges.
Workers are plain subprocesses, so profiling from a script needs no ``if __name__ == "__main__"``
guard.  A worker that dies mid-slice is replaced and the slice retried up to ``max_retries`` times.
"""

from __future__ import annotations

import json
import os
import queue
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from .errors import BackendError, ConfigError, InputError, TruthoundSketchError
from .worker import read_frame, write_frame

__all__ = ["POOL_MIN_BYTES", "SliceResult", "THREADS_UP_TO", "WorkerPool", "default_workers"]

#: with ``use_processes=None``, files are profiled by threads up to this many workers: on 2 cores,
#: threads took 1.11 s and 1.57 s on synthetic-10m and lineitem-sf1 against 1.33 s and 1.75 s for
#: processes (medians of 3, docs/benchmarks.md); the Python that holds the GIL (a fifth to a
#: quarter of a batch's time, by the CPU use of two threads) limits threads on more cores
THREADS_UP_TO = 4

#: below this many bytes of input, starting worker processes costs more than it saves
POOL_MIN_BYTES = 16 << 20


def default_workers() -> int:
    """``TRUTHOUND_NUM_WORKERS``, else the number of CPUs."""
    env = os.environ.get("TRUTHOUND_NUM_WORKERS")
    if env:
        try:
            n = int(env)
        except ValueError:
            raise ConfigError(f"TRUTHOUND_NUM_WORKERS={env!r} is not a whole number") from None
        if n < 1:
            raise ConfigError(f"TRUTHOUND_NUM_WORKERS={env!r} must be at least 1")
        return n
    return os.cpu_count() or 1


def _worker_env(num_workers: int) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("POLARS_MAX_THREADS", str(max(1, (os.cpu_count() or 1) // num_workers)))
    env.setdefault("OPENBLAS_NUM_THREADS", "1")  # numpy's BLAS pool: ~50 ms of CPU a process to start
    env["PYTHONUNBUFFERED"] = "1"
    return env


@dataclass
class SliceResult:
    index: int
    data: bytes
    rows: int
    seconds: float
    worker_id: str


class _Worker:
    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "truthound_sketch.worker"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=None, env=env,
        )  # fmt: skip
        self.id = f"local-{self.proc.pid}"

    def ask(self, request: bytes) -> tuple[bytes, dict, bytes] | None:
        try:
            write_frame(self.proc.stdin, request)
            frame = read_frame(self.proc.stdout)
        except (BrokenPipeError, OSError):
            return None
        if frame is None:
            return None
        (hlen,) = struct.unpack_from("<I", frame, 1)
        return frame[:1], json.loads(frame[5 : 5 + hlen]), frame[5 + hlen :]

    def close(self, wait: bool = True) -> None:
        try:
            self.proc.stdin.close()  # end of requests: the worker exits
            if wait:
                self.proc.wait(timeout=5)
        except Exception:
            self.proc.kill()


class WorkerPool:
    """``num_workers`` worker processes; ``run()`` hands them slices and collects partial bytes."""

    def __init__(self, num_workers: int, *, max_retries: int = 2) -> None:
        self.num_workers = max(1, num_workers)
        self.max_retries = max_retries
        self._env = env = _worker_env(self.num_workers)
        self._workers = [_Worker(env) for _ in range(self.num_workers)]
        self._lock = threading.Lock()

    @property
    def pids(self) -> list[int]:
        return [w.proc.pid for w in self._workers]

    def run(self, requests: list[dict], *, on_start: Callable | None = None, on_done: Callable | None = None,
            on_fail: Callable | None = None) -> list[SliceResult]:  # fmt: skip
        """Run every request; callbacks get (index, worker_id[, ...]) as slices start, end or fail."""
        todo: queue.Queue = queue.Queue()
        for i, req in enumerate(requests):
            todo.put((i, json.dumps(req).encode(), 0))
        results: list[SliceResult | None] = [None] * len(requests)
        errors: list[BaseException] = []

        def serve(slot: int) -> None:
            while not errors:
                try:
                    i, req, tries = todo.get_nowait()
                except queue.Empty:
                    return
                worker = self._workers[slot]
                if on_start:
                    on_start(i, worker.id)
                answer = worker.ask(req)
                if answer is None:  # the worker died: replace it, retry the slice
                    code = worker.proc.poll()
                    worker.close()
                    self._workers[slot] = _Worker(self._env)
                    retry = tries < self.max_retries
                    reason = f"worker {worker.id} exited with code {code} while profiling slice {i}"
                    if on_fail:
                        on_fail(i, worker.id, reason, retry)
                    if retry:
                        todo.put((i, req, tries + 1))
                        continue
                    errors.append(BackendError(f"{reason}; gave up after {tries + 1} attempts"))
                    return
                status, meta, data = answer
                if status == b"E":
                    exc_type = InputError if meta.get("type") in ("InputError", "UnsupportedInputError") else TruthoundSketchError
                    if on_fail:
                        on_fail(i, worker.id, meta["error"], False)
                    errors.append(exc_type(meta["error"]))
                    return
                results[i] = SliceResult(i, data, meta["rows"], meta["seconds"], worker.id)
                if on_done:
                    on_done(results[i])

        def guarded(slot: int) -> None:
            try:
                serve(slot)
            except BaseException as exc:  # raised in the caller's thread below
                errors.append(exc)

        threads = [threading.Thread(target=guarded, args=(k,), daemon=True) for k in range(self.num_workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]
        missing = [i for i, r in enumerate(results) if r is None]
        if missing:  # never a silent gap: every slice has a result or the run fails
            raise BackendError(f"slices {missing} of {len(results)} produced no result")
        return results  # type: ignore[return-value]

    def close(self) -> None:
        for w in self._workers:  # all told first, so that they exit together
            w.close(wait=False)
        for w in self._workers:
            w.close()

    def __enter__(self) -> "WorkerPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
