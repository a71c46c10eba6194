"""The local engine: threads, or worker processes that read their own file slices.

The heavy parts of a batch (polars' aggregates, the C kernels of the sketches) run without the GIL;
the Python between them holds it.  Threads share one interpreter (no process starts, imports done
once); processes (each worker reads its own slices: parquet row groups, Arrow IPC batches, CSV/NDJSON
byte ranges, and a worker that dies is replaced and its slice retried) scale past the GIL's share.
By default files are profiled by threads up to ``THREADS_UP_TO`` workers (one reader decoding the
batches that the threads profile) and by processes beyond; in-memory frames always by threads.
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import polars as pl

from .. import workers
from ..workers import THREADS_UP_TO
from ..config import ProfileConfig
from ..errors import ConfigError
from ..sources import Slice, Source, resolve_source
from ..table import TablePartial
from .base import ProfilingBackend, reduce_partials
from .configs import LocalConfig
from .partitioning import HashPartitioner, PartitionStrategy, split_columns

__all__ = ["LocalBackend", "SPLIT_MIN_ROWS", "THREADS_UP_TO"]

#: the run's last batch is cut among the threads when each piece has at least this many rows
SPLIT_MIN_ROWS = 65_536

class LocalBackend(ProfilingBackend):
    name = "local"

    def __init__(self, num_workers: int | None = None, use_processes: bool | None = None, *,
                 config: LocalConfig | None = None, max_retries: int | None = None,
                 storage_options: dict[str, Any] | None = None, **kwargs: Any) -> None:  # fmt: skip
        super().__init__(**kwargs)
        #: fsspec options for remote paths (s3://, gs://...), handed to every slice and worker
        self.storage_options: dict[str, Any] = dict(storage_options or {})
        config = config or LocalConfig()
        self.num_workers = num_workers or config.num_workers or workers.default_workers()
        if self.num_workers < 1:
            raise ConfigError(f"num_workers must be at least 1, got {self.num_workers}")
        chosen = config.use_processes if use_processes is None else use_processes
        self.use_processes: bool = self.num_workers > THREADS_UP_TO if chosen is None else bool(chosen)
        self.max_retries = config.max_retries if max_retries is None else max_retries
        self.last_pool_pids: list[int] = []

    # -- map ------------------------------------------------------------------------------
    def partial(self, data: Any, *, config: ProfileConfig, bus: Any) -> tuple[TablePartial, int]:
        n = self.num_workers
        source = resolve_source(data, columns=config.columns, storage_options=self.storage_options,
                                min_slices=n if n > 1 else 1)  # fmt: skip
        if source.is_files:
            tasks = self._file_tasks(source, n)
            partitions = len(tasks)
            bus.run_started(backend=self.name, num_partitions=len(tasks), total_rows=source.rows, source=source.label)
            pooled = self.use_processes and n > 1 and len(tasks) > 1 and (source.bytes or 0) >= workers.POOL_MIN_BYTES
            keyed = self._run_pool(tasks, config, bus) if pooled else self._run_threads(
                [(k, lambda s=s: s.read(config.batch_rows)) for k, s in tasks], config, bus, n, files=True,
                last_rows=tasks[-1][1].rows if tasks else None)  # fmt: skip
        else:
            parts = self._frame_tasks(source, n)
            partitions = len(parts)
            bus.run_started(backend=self.name, num_partitions=len(parts), total_rows=source.rows, source=source.label)
            keyed = self._run_threads(parts, config, bus, n if len(parts) > 1 else 1)
        started = time.perf_counter()
        result = reduce_partials(keyed)
        bus.aggregation_completed(partials=len(keyed), duration_seconds=time.perf_counter() - started)
        return result, partitions

    def _file_tasks(self, source: Source, n: int) -> list[tuple[Any, Slice]]:
        strategy = self.partition_strategy
        slices = source.slices
        if strategy is PartitionStrategy.HASH:
            whole = {s.path: replace(s, row_groups=None, byte_range=None, batches=None, rows=None, schema=s.schema) for s in slices}
            # one key per (partition, file): parts with one key are column groups of the same rows
            return [((i, j), replace(s, hash_partition=(i, n))) for i in range(n) for j, s in enumerate(whole.values())]
        if strategy in (PartitionStrategy.COLUMN_BASED, PartitionStrategy.HYBRID):
            if strategy is PartitionStrategy.COLUMN_BASED:
                whole = {s.path: replace(s, row_groups=None, byte_range=None, batches=None) for s in slices}
                slices = list(whole.values())
            k = n if strategy is PartitionStrategy.COLUMN_BASED else 2
            names: dict[str, list[str]] = {}  # files of a directory may have different columns
            tasks = []
            for i, s in enumerate(slices):
                if s.path not in names:
                    names[s.path] = _slice_columns(s)
                tasks += [(i, replace(s, columns=tuple(g))) for g in split_columns(names[s.path], k)]
            return tasks
        return list(enumerate(slices))

    def _frame_tasks(self, source: Source, n: int) -> list[tuple[Any, Any]]:
        df, strategy = source.frame, self.partition_strategy
        if df is None or strategy is PartitionStrategy.ROW_BASED:
            return list(enumerate(source.frames(n)))
        if strategy is PartitionStrategy.HASH:
            hp = HashPartitioner(n)
            return [(i, lambda i=i: iter([df.filter(hp.expr(i))])) for i in range(n)]
        rows = _row_slices(df, n if strategy is PartitionStrategy.HYBRID else 1)
        groups = split_columns(df.columns, n if strategy is PartitionStrategy.COLUMN_BASED else 2)
        return [(i, lambda p=p, g=g: iter([p.select(g)])) for i, p in enumerate(rows) for g in groups]

    # -- run ------------------------------------------------------------------------------
    def _run_threads(self, parts: list[tuple[Any, Any]], config: ProfileConfig, bus: Any, n: int,
                     files: bool = False, last_rows: int | None = None) -> list[tuple[Any, TablePartial]]:  # fmt: skip
        """Each part on a thread; row slices of files on several threads are fed by one reader
        (:func:`_run_fed`).  Other ``files`` parts (column groups, hash partitions, or one
        thread): read one batch at a time per four threads (polars decodes a batch with its own
        threads; two decodes at once on two cores were slower and held twice the decoding
        buffers, measured); with row-based slices the thread adds all its slices to one partial,
        so that memory does not grow with the number of slices and a column's mode (exact or
        sketched) carries over from slice to slice."""
        if files and self.partition_strategy is PartitionStrategy.ROW_BASED and n > 1 and len(parts) > 1:
            return _run_fed(parts, config, bus, n, last_rows)
        reading = threading.Semaphore(max(1, n // 4))
        fold = files and self.partition_strategy is PartitionStrategy.ROW_BASED
        folded: dict[int, TablePartial] = {}  # thread ident -> its partial

        def serial(batches):
            it = iter(batches)
            while True:
                with reading:
                    batch = next(it, None)
                if batch is None:
                    return
                yield batch
                del batch  # not held while the next one is decoded

        def run(index: int, key: Any, produce: Any) -> tuple[Any, TablePartial]:
            worker = f"thread-{index % n}"
            bus.partition_started(index, worker_id=worker)
            t0 = time.perf_counter()
            part = folded.setdefault(threading.get_ident(), TablePartial.zero(None, config)) if fold else None
            before = part.row_count if fold else 0
            try:
                if fold:
                    part.update_all(serial(produce()), consume=True)
                else:
                    part = TablePartial.from_batches(serial(produce()) if files else produce(), config, consume=files)
            except BaseException as exc:
                bus.partition_failed(index, error=exc, worker_id=worker)
                raise
            rows = part.row_count - before
            bus.partition_completed(index, rows=rows, duration_seconds=time.perf_counter() - t0, worker_id=worker)
            return key, part

        for i, _ in enumerate(parts):
            bus.partition_submitted(i)
        if n <= 1 or len(parts) <= 1:
            keyed = [run(i, k, p) for i, (k, p) in enumerate(parts)]
        else:
            with ThreadPoolExecutor(max_workers=n, thread_name_prefix="truthound-sketch") as pool:
                keyed = list(pool.map(lambda a: run(a[0], *a[1]), enumerate(parts)))
        return list(enumerate(folded.values())) if fold else keyed

    def _run_pool(self, tasks: list[tuple[Any, Slice]], config: ProfileConfig, bus: Any) -> list[tuple[Any, TablePartial]]:
        params = {k: getattr(config, k) for k in ("kll_k", "hll_lg_k", "exact_threshold", "frequent_capacity", "batch_rows")}
        requests = [{"slice": s.to_dict(), "config": params} for _, s in tasks]
        for i, (_, s) in enumerate(tasks):
            bus.partition_submitted(i, total_rows=s.rows)

        partials: dict[int, TablePartial] = {}

        def done(r) -> None:
            partials[r.index] = TablePartial.from_bytes(r.data)  # decoded while other slices run
            bus.partition_completed(r.index, rows=r.rows, duration_seconds=r.seconds, worker_id=r.worker_id)

        def failed(i, worker_id, reason, retry) -> None:
            bus.partition_failed(i, error=reason, worker_id=worker_id, will_retry=retry)
            if retry:
                bus.worker_lost(worker_id, reason=reason)

        with workers.WorkerPool(min(self.num_workers, len(tasks)), max_retries=self.max_retries) as pool:
            self.last_pool_pids = pool.pids
            results = pool.run(requests, on_start=lambda i, w: bus.partition_started(i, worker_id=w), on_done=done, on_fail=failed)
        return [(tasks[r.index][0], partials[r.index]) for r in results]

    # -- seed API -------------------------------------------------------------------------
    def profile_columns_parallel(self, lf: Any, columns: list[str] | None = None, *, config: ProfileConfig | None = None) -> dict:
        """Profile ``columns`` of ``lf`` with one task per column group; returns {name: ColumnProfile}."""
        config = config or self.profile_config
        lf = lf if isinstance(lf, pl.LazyFrame) else pl.DataFrame(lf).lazy() if not isinstance(lf, pl.DataFrame) else lf.lazy()
        names = list(columns) if columns else lf.collect_schema().names()
        groups = split_columns(names, self.num_workers)
        parts = [(0, lambda g=g: iter(lf.select(g).collect_batches())) for g in groups]
        keyed = self._run_threads(parts, config, bus_none(), min(self.num_workers, len(groups)))
        prof = reduce_partials(keyed).finalize(config)
        return {c.name: c for c in prof.columns}


def _run_fed(parts: list[tuple[Any, Any]], config: ProfileConfig, bus: Any, n: int,
             last_rows: int | None = None) -> list[tuple[Any, TablePartial]]:  # fmt: skip
    """Row slices of files on ``n`` threads fed by one reader: the reader decodes the slices'
    batches in order, one batch ahead of the threads (at most ``n + 1`` batches alive), so that no
    thread waits for a decode (synthetic-10m 1.12 -> 1.08 s, lineitem-sf1 1.63 -> 1.55 s, means of
    6-8 interleaved runs).  Each thread adds the batches it takes to its own partial, taking each
    batch apart as it goes (memory does not grow with the number of slices, and a column's mode
    carries over from batch to batch).  The run's last batch (known when the last slice has
    ``last_rows`` rows) is cut into ``n`` row ranges, so that the threads finish together rather
    than one waiting for the other's last batch.  A slice is started when its first batch is taken
    and completed when its last one has been added; an error (or an interrupt) stops the reader
    and the threads, and is raised."""
    tokens = threading.Semaphore(n + 1)  # batches alive: decoding, waiting or being added
    ready: queue.Queue = queue.Queue()
    stop = threading.Event()
    lock = threading.Lock()
    pending = [0] * len(parts)  # batches of a slice read and not yet added
    rows = [0] * len(parts)
    read_all = [False] * len(parts)
    started: dict[int, float] = {}
    last_worker: dict[int, str] = {}
    finished = object()  # the reader's last message, one per thread

    def begin(i: int, worker: str) -> None:
        with lock:
            first = i not in started
            if first:
                started[i] = time.perf_counter()
        if first:
            bus.partition_started(i, worker_id=worker)

    def end(i: int, worker: str) -> None:
        bus.partition_completed(i, rows=rows[i], duration_seconds=time.perf_counter() - started[i], worker_id=worker)

    def reader() -> None:
        i = 0
        try:
            for i, (_, produce) in enumerate(parts):
                batches = iter(produce())
                left = last_rows if i == len(parts) - 1 else None  # rows of the run still to read
                while not stop.is_set():
                    tokens.acquire()
                    batch = next(batches, None)
                    if batch is None:
                        tokens.release()
                        break
                    left = None if left is None else left - batch.height
                    pieces = _row_slices(batch, n) if left == 0 and batch.height >= n * SPLIT_MIN_ROWS else [batch]
                    del batch
                    for k, piece in enumerate(pieces):
                        if k:  # each piece holds a token, as a batch does
                            tokens.acquire()
                            if stop.is_set():
                                return
                        with lock:
                            pending[i] += 1
                        ready.put((i, piece))
                    del pieces, piece
                if stop.is_set():
                    return
                with lock:
                    read_all[i] = True
                    over = pending[i] == 0  # no batch, or the last one added before the end was seen
                if over:
                    begin(i, last_worker.get(i, "reader"))
                    end(i, last_worker.get(i, "reader"))
        except BaseException as exc:
            stop.set()
            bus.partition_failed(i, error=exc, worker_id="reader")
            ready.put((i, exc))
        finally:
            for _ in range(n):
                ready.put((-1, finished))

    def work(index: int) -> TablePartial:
        worker = f"thread-{index}"
        part = TablePartial.zero(None, config)
        while True:
            i, batch = ready.get()
            if batch is finished:
                return part
            if isinstance(batch, BaseException):
                raise batch
            if stop.is_set():  # another thread failed: drop what is left
                del batch
                tokens.release()
                continue
            begin(i, worker)
            try:
                before = part.row_count
                part.update(batch, consume=True)
            except BaseException as exc:
                stop.set()
                bus.partition_failed(i, error=exc, worker_id=worker)
                raise
            finally:
                del batch
                tokens.release()
            with lock:
                rows[i] += part.row_count - before
                pending[i] -= 1
                last_worker[i] = worker
                over = pending[i] == 0 and read_all[i]
            if over:
                end(i, worker)

    for i, _ in enumerate(parts):
        bus.partition_submitted(i)
    feeder = threading.Thread(target=reader, name="truthound-sketch-reader", daemon=True)
    feeder.start()
    try:
        with ThreadPoolExecutor(max_workers=n, thread_name_prefix="truthound-sketch") as pool:
            try:
                return list(enumerate(pool.map(work, range(n))))
            except BaseException:  # the threads drop what is left rather than finish the file
                stop.set()
                raise
    finally:
        stop.set()
        while feeder.is_alive():  # a reader waiting for a token: let it see the stop
            tokens.release()
            feeder.join(0.05)


def bus_none():
    from .bus import bus_for

    return bus_for(None)


def _row_slices(df: pl.DataFrame, n: int) -> list[pl.DataFrame]:
    size = max(1, -(-df.height // max(n, 1)))
    return [df.slice(off, size) for off in range(0, max(df.height, 1), size)]


def _slice_columns(sl: Slice) -> list[str]:
    if sl.columns:
        return list(sl.columns)
    return next(iter(sl.read(1))).columns
