"""One peer workload on one parquet file, run by run.py in a fresh interpreter.

    python benchmarks/peers.py polars|duckdb|whylogs|spark|dask FILE

Each workload profiles every column and materialises its whole result. Imports
happen inside the workload so that they count in its time and memory, and so
that the whylogs side environment (no polars there) can run this file too.
"""

from __future__ import annotations

import sys


def run_polars(path: str) -> str:
    import polars as pl

    lazy = pl.scan_parquet(path)
    described = lazy.describe()
    distinct = lazy.select(pl.all().approx_n_unique()).collect()
    return f"describe {described.shape}, approx_n_unique {distinct.shape}"


def run_duckdb(path: str) -> str:
    import duckdb

    with duckdb.connect() as con:
        rows = con.execute("SUMMARIZE SELECT * FROM read_parquet(?)", [path]).fetchall()
    return f"summarize {len(rows)} rows"


def run_whylogs(path: str) -> str:
    import pandas as pd
    import whylogs as why

    frame = pd.read_parquet(path)
    view = why.log(frame).view()
    summary = view.to_pandas()
    return f"whylogs summary {summary.shape}"


def run_spark(path: str) -> str:
    from pyspark.sql import SparkSession

    spark = (
        SparkSession.builder.master("local[2]")
        .appName("benchmark-summary")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.driver.host", "127.0.0.1")
        .getOrCreate()
    )
    try:
        rows = spark.read.parquet(path).summary().collect()
    finally:
        spark.stop()
    return f"summary {len(rows)} rows"


def run_dask(path: str) -> str:
    import dask.dataframe as dd
    from dask.distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with Client(cluster):
            frame = dd.read_parquet(path)
            # Dask's describe() fails on pyarrow decimals and dates (lineitem): cast them first.
            casts = {}
            for name, dtype in frame.dtypes.items():
                if "decimal" in str(dtype):
                    casts[name] = "float64"
                elif str(dtype).startswith("date32"):
                    casts[name] = "datetime64[s]"
            described = frame.astype(casts).describe(include="all").compute()
    return f"describe {described.shape}"


WORKLOADS = {
    "polars": run_polars,
    "duckdb": run_duckdb,
    "whylogs": run_whylogs,
    "spark": run_spark,
    "dask": run_dask,
}


def main() -> None:
    if len(sys.argv) != 3 or sys.argv[1] not in WORKLOADS:
        sys.exit(f"usage: peers.py {{{'|'.join(WORKLOADS)}}} FILE")
    print(WORKLOADS[sys.argv[1]](sys.argv[2]))


if __name__ == "__main__":
    main()
