"""The local engine: worker processes and threads, every partition strategy, the profiler facade,
configuration from the environment, the backend registry, worker loss, and merging profiles.

Whatever the engine, strategy or number of workers, exact statistics must be identical to a
single-thread run; sketched ones (quantiles and top values of high-cardinality columns) depend on
the split, so for those only counts, moments, min/max and the HLL distinct estimate are compared.
"""

from __future__ import annotations

import os
import signal
import sys
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import polars as pl
import pytest

import truthound_sketch as ts
import truthound_sketch.read_ahead as read_ahead
import truthound_sketch.workers as workers
from _core_compare import assert_columns_equal, assert_profiles_equal
from truthound_sketch import BackendError, ConfigError, ProfileConfig, TablePartial
from truthound_sketch.distributed import (
    BackendRegistry,
    DistributedBackend,
    DistributedProfiler,
    LocalBackend,
    LocalConfig,
    PartitionStrategy,
    ProfileMerger,
    ProfilingBackend,
    auto_select_backend,
)
from truthound_sketch.distributed.bus import NullBus

STRATEGIES = list(PartitionStrategy)
ROWS = 1_200_000


def make_frame(rows: int, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    cats = np.array(["north", "south", "east", "west", "ünïcode", "😀"])
    return pl.DataFrame({
        "x": rng.normal(0, 1, rows),                                  # sketched (all distinct)
        "y": rng.lognormal(1, 1, rows),                               # sketched
        "k": rng.integers(0, 1000, rows),                             # exact
        "v": (rng.random(rows) * 30).round(2),                        # exact: 3001 distinct values
        "c": pl.Series(cats[rng.integers(0, len(cats), rows)]),       # exact strings
    }).with_columns(pl.when(pl.col("k") < 50).then(None).otherwise(pl.col("v")).alias("v"))  # fmt: skip


@pytest.fixture(scope="module")
def big_parquet(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("local") / "big.parquet"
    make_frame(ROWS, 1).write_parquet(path, row_group_size=100_000, statistics=False)
    assert os.path.getsize(path) > workers.POOL_MIN_BYTES  # the process pool starts
    return str(path)


@pytest.fixture(scope="module")
def baseline(big_parquet):
    return LocalBackend(num_workers=1, use_processes=False).profile(big_parquet)


@pytest.fixture(scope="module")
def frame() -> pl.DataFrame:
    return make_frame(300_000, 2)


@pytest.fixture(scope="module")
def frame_baseline(frame):
    return LocalBackend(num_workers=1).profile(frame)


def assert_exact_equal(prof, base) -> None:
    assert_profiles_equal(prof, base, strict=False)
    for name in ("k", "v", "c"):  # exact columns: quantiles and top values identical too
        assert prof.column(name).exact
        assert_columns_equal(prof.column(name), base.column(name), strict=True)


class Recorder(NullBus):
    """A monitor that records the engine's events (thread-safe)."""

    def __init__(self) -> None:
        self.events: list[tuple] = []
        self.lock = threading.Lock()
        self.started = threading.Condition(self.lock)

    def partition_started(self, partition_id, *, worker_id):
        with self.started:
            self.events.append(("started", partition_id, worker_id))
            self.started.notify_all()

    def partition_completed(self, partition_id, *, rows, duration_seconds, worker_id=None):
        with self.lock:
            self.events.append(("completed", partition_id, worker_id, rows))

    def partition_failed(self, partition_id, *, error, worker_id=None, will_retry=False):
        with self.lock:
            self.events.append(("failed", partition_id, worker_id, will_retry))

    def worker_lost(self, worker_id, *, reason):
        with self.lock:
            self.events.append(("lost", worker_id, reason))

    def of(self, kind: str) -> list[tuple]:
        with self.lock:
            return [e for e in self.events if e[0] == kind]


# -- strategies x processes/threads on a file -----------------------------------------------------
@pytest.mark.parametrize("strategy", STRATEGIES, ids=[s.value for s in STRATEGIES])
@pytest.mark.parametrize("processes", [True, False], ids=["processes", "threads"])
def test_file_strategies_match_single_thread(big_parquet, baseline, strategy, processes) -> None:
    backend = LocalBackend(num_workers=2, use_processes=processes, partition_strategy=strategy)
    events = Recorder()
    prof = backend.profile(big_parquet, monitor=events)
    assert prof.row_count == ROWS and prof.engine == "local"
    assert bool(backend.last_pool_pids) is processes
    assert len(events.of("completed")) == prof.partitions >= 2
    assert sum(e[3] for e in events.of("completed")) >= ROWS
    if processes:
        assert {e[2] for e in events.of("started")} <= {f"local-{p}" for p in backend.last_pool_pids}
    assert_exact_equal(prof, baseline)


@pytest.mark.parametrize("strategy", STRATEGIES, ids=[s.value for s in STRATEGIES])
def test_frame_strategies_match_single_thread(frame, frame_baseline, strategy) -> None:
    backend = LocalBackend(num_workers=2, partition_strategy=strategy)
    prof = backend.profile(frame)
    assert prof.partitions >= 2
    assert_exact_equal(prof, frame_baseline)
    assert_exact_equal(backend.profile(frame.lazy()), frame_baseline)


def test_threads_or_processes_by_default(big_parquet, baseline) -> None:
    """Threads up to THREADS_UP_TO workers, processes beyond; an explicit choice wins."""
    from truthound_sketch.distributed.local import THREADS_UP_TO

    assert LocalBackend(num_workers=2).use_processes is False
    assert LocalBackend(num_workers=THREADS_UP_TO + 1).use_processes is True
    assert LocalBackend(num_workers=2, config=LocalConfig(use_processes=True)).use_processes is True
    assert LocalBackend(num_workers=8, use_processes=False).use_processes is False
    backend = LocalBackend(num_workers=2)
    assert_exact_equal(backend.profile(big_parquet), baseline)
    assert not backend.last_pool_pids  # no process pool ran


def test_profiler_create(big_parquet, baseline) -> None:
    for strategy in ("hybrid", PartitionStrategy.HASH):
        with DistributedProfiler.create(backend="local", partition_strategy=strategy, num_workers=2) as profiler:
            assert profiler.backend_name == "local"
            assert profiler.backend.partition_strategy is PartitionStrategy(strategy)
            assert_exact_equal(profiler.profile(big_parquet), baseline)
    with DistributedProfiler.create(DistributedBackend.LOCAL, LocalConfig(num_workers=3, use_processes=False)) as p:
        assert (p.backend.num_workers, p.backend.use_processes) == (3, False)
    with DistributedProfiler.create(config=LocalConfig(num_workers=2)) as p:
        assert p.backend_name == "local"
    expected = auto_select_backend().value
    with DistributedProfiler.create(backend="auto") as p:
        assert p.backend_name == expected
    with DistributedProfiler.create("local", profile_config=ProfileConfig(quantiles=(0.5,), top_k=2)) as p:
        prof = p.profile(pl.DataFrame({"a": [1, 2, 3, 3]}))
        assert prof.column("a").quantiles == {"p50": 2} and len(prof.column("a").top_values) == 2
    with pytest.raises(ValueError):
        DistributedProfiler.create("local", partition_strategy="diagonal")


def test_environment(monkeypatch) -> None:
    monkeypatch.setenv("TRUTHOUND_NUM_WORKERS", "3")
    assert LocalBackend().num_workers == 3
    assert LocalBackend(num_workers=1).num_workers == 1  # an explicit argument wins
    for bad in ("zero", "0", "-2"):
        monkeypatch.setenv("TRUTHOUND_NUM_WORKERS", bad)
        with pytest.raises(ConfigError, match="TRUTHOUND_NUM_WORKERS"):
            LocalBackend()
    monkeypatch.delenv("TRUTHOUND_NUM_WORKERS")
    assert LocalBackend().num_workers == (os.cpu_count() or 1)
    monkeypatch.setenv("TRUTHOUND_DISTRIBUTED_BACKEND", "LOCAL")
    with DistributedProfiler.create() as p:
        assert p.backend_name == "local"
    monkeypatch.setenv("TRUTHOUND_DISTRIBUTED_BACKEND", "nosuchengine")
    with pytest.raises(ConfigError, match="nosuchengine"):
        DistributedProfiler.create()
    with pytest.raises(ConfigError):
        LocalBackend(num_workers=-1)


# -- registry -------------------------------------------------------------------------------------
class EchoBackend(ProfilingBackend):
    """A custom engine: one partial, made in-process."""

    name = "echo"

    def __init__(self, *, tag: str = "", **kwargs) -> None:
        super().__init__(**kwargs)
        self.tag = tag

    def partial(self, data, *, config, bus):
        return TablePartial.from_batches([data], config), 1


def test_registry_register_list_create() -> None:
    assert BackendRegistry.list()[:4] == ["local", "spark", "dask", "ray"]
    BackendRegistry.register("echo")(EchoBackend)
    try:
        assert "echo" in BackendRegistry.list()
        backend = BackendRegistry.create("echo", tag="t")
        assert isinstance(backend, EchoBackend) and backend.tag == "t"
        prof = ts.profile(pl.DataFrame({"a": [1, 2]}), backend="echo")
        assert prof.engine == "echo" and prof.column("a").max == 2
    finally:
        BackendRegistry.unregister("echo")
    assert "echo" not in BackendRegistry.list()
    with pytest.raises(ConfigError, match="unknown backend 'echo'"):
        BackendRegistry.create("echo")
    assert BackendRegistry.get(DistributedBackend.LOCAL) is LocalBackend
    assert isinstance(BackendRegistry.create("local", LocalConfig(num_workers=2)), LocalBackend)


def test_registry_entry_points(tmp_path, monkeypatch) -> None:
    (tmp_path / "th_plugin_engine.py").write_text(textwrap.dedent("""
        from truthound_sketch.distributed import ProfilingBackend
        from truthound_sketch import TablePartial

        class PluginBackend(ProfilingBackend):
            name = "plugin"

            def partial(self, data, *, config, bus):
                return TablePartial.from_batches([data], config), 1
    """))
    info = tmp_path / "th_plugin_engine-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: th-plugin-engine\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[truthound_sketch.backends]\nplugin = th_plugin_engine:PluginBackend\n")
    assert "plugin" not in BackendRegistry.list()
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "plugin" in BackendRegistry.list()
    cls = BackendRegistry.get("plugin")
    assert cls.__name__ == "PluginBackend"
    prof = ts.profile(pl.DataFrame({"z": ["a", "b", "b"]}), backend="plugin")
    assert prof.engine == "plugin" and prof.column("z").top_values[0].value == "b"
    with DistributedProfiler.create("plugin") as p:
        assert p.backend_name == "plugin"


# -- worker loss ----------------------------------------------------------------------------------
def _kill_a_busy_worker(backend, path, events):
    """Profile ``path`` in the background and SIGKILL a worker that is reading its second slice
    (its imports are done); returns the future and the victim's worker id."""
    psutil = pytest.importorskip("psutil")
    ex = ThreadPoolExecutor(1)
    future = ex.submit(backend.profile, path, monitor=events)
    ex.shutdown(wait=False)
    with events.started:
        ok = events.started.wait_for(lambda: _second_start(events.events) is not None or future.done(), timeout=120)
        victim = _second_start(events.events)
    assert ok and victim is not None, "no worker reached a second slice"
    proc = psutil.Process(int(victim.removeprefix("local-")))
    cpu0 = sum(proc.cpu_times()[:2])
    deadline = time.monotonic() + 10
    while sum(proc.cpu_times()[:2]) < cpu0 + 0.05 and time.monotonic() < deadline:
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    return future, victim, proc


def test_killed_worker_slice_is_retried(big_parquet, baseline, monkeypatch) -> None:
    psutil = pytest.importorskip("psutil")
    monkeypatch.setattr(read_ahead, "TARGET_SLICE_ROWS", 200_000)  # 6 slices: 3 a worker
    backend = LocalBackend(num_workers=2, use_processes=True, max_retries=2)
    events = Recorder()
    future, victim, proc = _kill_a_busy_worker(backend, big_parquet, events)
    prof = future.result(timeout=300)
    failed = events.of("failed")
    assert failed and all(e[3] for e in failed), failed  # will_retry
    assert failed[0][2] == victim
    assert any(e[1] == victim for e in events.of("lost"))
    assert not psutil.pid_exists(proc.pid) or proc.status() == psutil.STATUS_ZOMBIE
    assert prof.row_count == ROWS
    assert_exact_equal(prof, baseline)


def test_killed_worker_without_retries_fails_the_run(big_parquet, monkeypatch) -> None:
    monkeypatch.setattr(read_ahead, "TARGET_SLICE_ROWS", 200_000)
    backend = LocalBackend(num_workers=2, use_processes=True, max_retries=0)
    events = Recorder()
    future, victim, _ = _kill_a_busy_worker(backend, big_parquet, events)
    with pytest.raises(BackendError, match=f"worker {victim} exited.*gave up after 1 attempt"):
        future.result(timeout=300)
    assert [e[3] for e in events.of("failed")] == [False]


def _second_start(events: list[tuple]) -> str | None:
    seen: dict[str, int] = {}
    for e in events:
        if e[0] == "started":
            seen[e[2]] = seen.get(e[2], 0) + 1
            if seen[e[2]] == 2:
                return e[2]
    return None


def test_worker_errors_are_not_retried(tmp_path, monkeypatch) -> None:
    """A slice that fails to read is reported (with its path), not retried as a lost worker."""
    monkeypatch.setattr(workers, "POOL_MIN_BYTES", 0)
    good = tmp_path / "a.csv"
    pl.DataFrame({"a": range(1000)}).write_csv(good)
    (tmp_path / "b.ndjson").write_text('{"a": 1}\n{"a": oops\n')
    events = Recorder()
    backend = LocalBackend(num_workers=2, use_processes=True)
    with pytest.raises(ts.InputError, match="b.ndjson"):
        backend.profile(str(tmp_path), monitor=events)
    assert backend.last_pool_pids
    assert not any(e[3] for e in events.of("failed"))


def test_threads_fed_by_one_reader_report_each_slice_once(big_parquet, baseline, monkeypatch) -> None:
    """Row slices on threads are decoded by one reader and added by whichever thread is free:
    each slice is started and completed once, with its rows, and the profile is the one-thread one;
    the last batch is cut in two, one piece a thread."""
    monkeypatch.setattr(read_ahead, "TARGET_SLICE_ROWS", 200_000)  # 6 slices of 2 row groups
    added = []
    update = TablePartial.update
    monkeypatch.setattr(TablePartial, "update", lambda self, b, **kw: added.append(b.height) or update(self, b, **kw))
    events = Recorder()
    prof = LocalBackend(num_workers=2, use_processes=False).profile(big_parquet, monitor=events)
    assert_exact_equal(prof, baseline)
    assert sorted(added) == [100_000, 100_000] + [200_000] * 5
    started, completed = events.of("started"), events.of("completed")
    assert sorted(e[1] for e in started) == sorted(e[1] for e in completed) == list(range(6))
    assert sum(e[3] for e in completed) == ROWS and all(e[3] == 200_000 for e in completed)
    assert {e[2] for e in started + completed} <= {"thread-0", "thread-1", "reader"}
    assert not events.of("failed")


def test_threads_fed_by_one_reader_raise_what_the_reader_raised(tmp_path) -> None:
    """A slice that fails to decode stops the threads: reported as failed by the reader and raised
    with its path, without a hang."""
    for name in "abcd":
        pl.DataFrame({"a": range(1000)}).write_csv(tmp_path / f"{name}.csv")
    (tmp_path / "e.ndjson").write_text('{"a": 1}\n{"a": oops\n')
    events = Recorder()
    with ThreadPoolExecutor(1) as pool:
        run = pool.submit(LocalBackend(num_workers=2, use_processes=False).profile, str(tmp_path), monitor=events)
        with pytest.raises(ts.InputError, match="e.ndjson"):
            run.result(timeout=120)
    assert [e[2] for e in events.of("failed")] == ["reader"]


def test_threads_fed_by_one_reader_raise_what_a_thread_raised(big_parquet, monkeypatch) -> None:
    """A batch that cannot be added stops the reader and the other thread: reported as failed by
    its thread and raised, without a hang."""
    monkeypatch.setattr(read_ahead, "TARGET_SLICE_ROWS", 100_000)  # 12 slices, a batch each
    calls = []
    update = TablePartial.update

    def failing(self, batch, **kw):
        calls.append(1)
        if len(calls) == 3:
            raise ValueError("the third batch")
        return update(self, batch, **kw)

    monkeypatch.setattr(TablePartial, "update", failing)
    events = Recorder()
    with ThreadPoolExecutor(1) as pool:
        run = pool.submit(LocalBackend(num_workers=2, use_processes=False).profile, big_parquet, monitor=events)
        with pytest.raises(ValueError, match="the third batch"):
            run.result(timeout=120)
    failed = events.of("failed")
    assert len(failed) == 1 and failed[0][2].startswith("thread-")
    assert len(calls) < 12  # the rest of the file was not profiled


# -- merging profiles -----------------------------------------------------------------------------
def test_profile_merger_and_add(frame, frame_baseline) -> None:
    thirds = [frame.slice(i * 100_000, 100_000) for i in range(3)]
    profs = [ts.profile(t) for t in thirds]
    summed = profs[0] + profs[1] + profs[2]
    assert summed.engine == "merge" and summed.row_count == frame.height
    assert_exact_equal(summed, frame_baseline)
    merger = ProfileMerger()
    merged = merger.merge(profs)
    assert merged.partitions == 3
    assert_exact_equal(merged, frame_baseline)
    # partials and their bytes merge the same way
    raw = [p.partial.to_bytes() for p in profs]
    assert_exact_equal(merger.merge([raw[0], profs[1].partial, profs[2]]), frame_baseline)
    assert_exact_equal(merger.merge_partials(raw).finalize(), frame_baseline)
    with pytest.raises(ts.TruthoundSketchError, match="cannot merge"):
        merger.merge([profs[0], 42])


def test_profile_columns_parallel(frame, frame_baseline) -> None:
    backend = LocalBackend(num_workers=2)
    cols = backend.profile_columns_parallel(frame.lazy(), ["k", "c", "x"])
    assert list(cols) == ["k", "c", "x"]
    for name in ("k", "c"):
        assert_columns_equal(cols[name], frame_baseline.column(name), strict=True)
    assert_columns_equal(cols["x"], frame_baseline.column("x"), strict=False)
    all_cols = backend.profile_columns_parallel(frame)
    assert sorted(all_cols) == sorted(frame.columns)
    assert all_cols["v"].null_count == frame["v"].null_count()


@pytest.mark.parametrize("strategy", STRATEGIES, ids=[s.value for s in STRATEGIES])
@pytest.mark.parametrize("processes", [True, False], ids=["processes", "threads"])
def test_directory_of_files_with_different_columns(tmp_path, monkeypatch, strategy, processes) -> None:
    """Files of one directory with different columns (and equal row counts, so that a wrong join of
    two files' rows would not be caught by a row-count check) profile like their concatenation."""
    monkeypatch.setattr(workers, "POOL_MIN_BYTES", 0)
    a = pl.DataFrame({"k": [1, 2, 3, 4], "s": ["a", "b", "c", "d"]})
    b = pl.DataFrame({"k": [5, 6, 7, 8], "s": ["e", "f", "g", "h"], "x": [0.5, None, 1.5, 2.5]})
    c = pl.DataFrame({"x": [9.5, 8.5, 7.5, 6.5], "k": [9, 10, 11, 12]})
    for name, df in zip("abc", (a, b, c)):
        df.write_parquet(tmp_path / f"{name}.parquet")
    backend = LocalBackend(num_workers=2, use_processes=processes, partition_strategy=strategy)
    prof = backend.profile(str(tmp_path))
    assert bool(backend.last_pool_pids) is processes
    want = ts.profile(pl.concat([a, b, c], how="diagonal"))
    assert_profiles_equal(prof, want, ignore_order=True)


def test_plain_registered_backend() -> None:
    """A registered class with nothing but ``profile(data)`` (the documented minimal form) works
    through the registry, ``profile()`` and the profiler facade."""

    @BackendRegistry.register("plain")
    class PlainBackend:
        def profile(self, data):
            return TablePartial.from_batches([data]).finalize(engine="plain")

    try:
        df = pl.DataFrame({"a": [1, 2, 2]})
        assert isinstance(BackendRegistry.create("plain"), PlainBackend)
        prof = ts.profile(df, backend="plain")
        assert prof.engine == "plain" and prof.column("a").distinct.estimate == 2
        with DistributedProfiler.create("plain", partition_strategy="hash") as p:
            assert p.profile(df).row_count == 3
        with pytest.raises(ConfigError, match="does not take"):
            BackendRegistry.create("plain", config=LocalConfig())
    finally:
        BackendRegistry.unregister("plain")


def test_partitioners(frame, frame_baseline) -> None:
    from truthound_sketch.distributed import ColumnBasedPartitioner, HashPartitioner, HybridPartitioner, RowBasedPartitioner
    from truthound_sketch.distributed.partitioning import join_columns

    lf = frame.lazy()
    rows = RowBasedPartitioner(num_partitions=7).partition(lf)
    assert len(rows) == 7 and sum(p.select(pl.len()).collect().item() for p in rows) == frame.height
    merged = ProfileMerger().merge([ts.profile(p) for p in rows])
    assert_exact_equal(merged, frame_baseline)

    groups = ColumnBasedPartitioner().partition(lf, num_workers=2)
    assert sorted(c for g in groups for c in g) == sorted(frame.columns) and len(groups) == 2
    joined = join_columns([TablePartial.from_batches([frame.select(g)]) for g in groups])
    assert_exact_equal(joined.finalize(), frame_baseline)

    parts = HybridPartitioner(row_partitions=3, column_partitions=2).partition(lf)
    assert len(parts) == 6
    keyed = [(i // 2, TablePartial.from_batches([p.collect()])) for i, p in enumerate(parts)]
    from truthound_sketch.distributed import reduce_partials

    assert_exact_equal(reduce_partials(keyed).finalize(), frame_baseline)

    hashed = HashPartitioner(num_partitions=3, key=["k"]).partition(lf)
    frames = [p.collect() for p in hashed]
    assert sum(f.height for f in frames) == frame.height
    assert not set(frames[0]["k"]) & set(frames[1]["k"])  # a key lives in one partition
    assert_exact_equal(ProfileMerger().merge([ts.profile(f) for f in frames]), frame_baseline)
    with pytest.raises(ConfigError):
        RowBasedPartitioner(0)


def test_worker_pool_raises_what_a_serving_thread_raised(tmp_path):
    """An error while a slice's answer is handled (here: in the done callback) fails the run,
    never leaves a silent gap in the results."""
    from truthound_sketch.sources import Slice

    path = tmp_path / "small.parquet"
    pl.DataFrame({"x": range(1000)}).write_parquet(path)
    request = {"slice": Slice("parquet", str(path)).to_dict(), "config": {"batch_rows": 500}}

    def done(result):
        raise RuntimeError(f"cannot take slice {result.index}")

    with workers.WorkerPool(1) as pool:
        [ok] = pool.run([request])
        assert ok.rows == 1000 and TablePartial.from_bytes(ok.data).row_count == 1000
        with pytest.raises(RuntimeError, match="cannot take slice 0"):
            pool.run([request], on_done=done)
