"""Make the benchmark data sets in benchmarks/data/ (idempotent: existing files are kept).

    python benchmarks/make_data.py                               # synthetic-10m + lineitem-sf1
    python benchmarks/make_data.py --rows 100000 --scales 0.01   # small variants for quick runs
    python benchmarks/make_data.py --no-synthetic --scales 3,10  # lineitem-sf3/sf10 (sf10: minutes, 2.5 GB)

synthetic-<N>: N rows x 5 columns (int64 with ~5% nulls, float64 with ~5% nulls,
string with 100k distinct values, bool, datetime[us]), written with polars from a
fixed seed. lineitem-sf<S>: TPC-H lineitem made by `tpchgen-cli` (PyPI).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import polars as pl

DATA_DIR = Path(__file__).resolve().parent / "data"
SEED = 20261129
STRING_POOL = 100_000


def rows_label(rows: int) -> str:
    """10_000_000 -> '10m', 100_000 -> '100k', 1234 -> '1234'."""
    for unit, size in (("m", 1_000_000), ("k", 1_000)):
        if rows >= size and rows % size == 0:
            return f"{rows // size}{unit}"
    return str(rows)


def scale_label(scale: str) -> str:
    """'1' -> 'sf1', '0.01' -> 'sf0.01'."""
    value = float(scale)
    return f"sf{int(value)}" if value.is_integer() else f"sf{value:g}"


def synthetic_frame(rows: int, seed: int = SEED) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    ints = rng.integers(-1_000_000_000, 1_000_000_000, size=rows, dtype=np.int64)
    floats = rng.normal(loc=100.0, scale=25.0, size=rows)
    pool = pl.Series("s", [f"key-{i:06d}" for i in range(STRING_POOL)])
    codes = pl.Series(rng.integers(0, STRING_POOL, size=rows, dtype=np.int64))
    bools = rng.random(rows) < 0.3
    start = np.datetime64("2020-01-01T00:00:00", "us").astype(np.int64)
    span_us = 4 * 365 * 24 * 3600 * 1_000_000
    micros = start + rng.integers(0, span_us, size=rows, dtype=np.int64)
    int_nulls = pl.Series(rng.random(rows) < 0.05)
    float_nulls = pl.Series(rng.random(rows) < 0.05)
    return pl.DataFrame(
        {
            "id_int": ints,
            "value_float": floats,
            "key_str": pool.gather(codes),
            "flag_bool": bools,
            "ts_datetime": pl.Series(micros).cast(pl.Datetime("us")),
        }
    ).with_columns(
        pl.when(int_nulls).then(None).otherwise(pl.col("id_int")).alias("id_int"),
        pl.when(float_nulls).then(None).otherwise(pl.col("value_float")).alias("value_float"),
    )


def make_synthetic(rows: int) -> Path:
    path = DATA_DIR / f"synthetic-{rows_label(rows)}.parquet"
    if path.exists():
        print(f"keep   {path.name}")
        return path
    frame = synthetic_frame(rows)
    tmp = path.with_suffix(".parquet.tmp")
    frame.write_parquet(tmp, compression="snappy", row_group_size=1_000_000)
    tmp.rename(path)
    print(f"wrote  {path.name}: {rows:,} rows, {path.stat().st_size / 1e6:.0f} MB")
    return path


def make_lineitem(scale: str) -> Path:
    path = DATA_DIR / f"lineitem-{scale_label(scale)}.parquet"
    if path.exists():
        print(f"keep   {path.name}")
        return path
    tpchgen = shutil.which("tpchgen-cli", path=str(Path(sys.executable).parent)) or shutil.which("tpchgen-cli")
    if tpchgen is None:
        sys.exit("tpchgen-cli not found: pip install tpchgen-cli")
    with tempfile.TemporaryDirectory(dir=DATA_DIR) as tmp:
        cmd = [tpchgen, "parquet", "-s", scale, "--tables", "lineitem", "--output-dir", tmp, "--quiet"]
        print("run   ", " ".join(cmd))
        subprocess.run(cmd, check=True)
        (Path(tmp) / "lineitem.parquet").rename(path)
    print(f"wrote  {path.name}: {path.stat().st_size / 1e6:.0f} MB")
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default="10000000", help="comma-separated row counts for synthetic-<N>")
    parser.add_argument("--scales", default="1", help="comma-separated TPC-H scale factors for lineitem-sf<S>")
    parser.add_argument("--no-synthetic", action="store_true")
    parser.add_argument("--no-lineitem", action="store_true")
    args = parser.parse_args(argv)
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    if not args.no_synthetic:
        for rows in args.rows.split(","):
            make_synthetic(int(rows.replace("_", "")))
    if not args.no_lineitem:
        for scale in args.scales.split(","):
            make_lineitem(scale.strip())


if __name__ == "__main__":
    main()
