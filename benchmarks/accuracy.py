"""Compare `th profile --format json` with exact answers computed by polars.

    python benchmarks/accuracy.py                                  # synthetic-10m, lineitem-sf1
    python benchmarks/accuracy.py --datasets synthetic-100k
    python benchmarks/accuracy.py --profile synthetic-100k=out.json  # check a saved profile

Exact statistics (row count, count, null count, NaN/inf counts, min, max, mean,
std, variance) must match (floating point to a relative 1e-9). Sketches must keep
their bounds: KLL k=200 quantiles within 1.33% normalized rank error, HLL lg_k=12
distinct counts within 3 x 1.6% relative error, frequent-item counts inside their
reported bounds. A key the profile lacks is reported as "missing" and fails.
Exits 1 when any check fails, 2 when `th` cannot be run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

import polars as pl

HERE = Path(__file__).resolve().parent
DATA_DIR = HERE / "data"
KLL_RANK_ERROR = 0.0133  # k=200, single-sided, 99% confidence
HLL_RELATIVE_ERROR = 3 * 0.016  # lg_k=12: 3 standard errors
FLOAT_TOLERANCE = 1e-9
QUANTILES = {"p1": 0.01, "p5": 0.05, "p25": 0.25, "p50": 0.50, "p75": 0.75, "p95": 0.95, "p99": 0.99}
MISSING = object()


class Checks:
    """Collects one row per (column, statistic)."""

    def __init__(self, dataset: str) -> None:
        self.dataset = dataset
        self.rows: list[tuple[str, str, str, str, str, str]] = []

    def add(self, column: str, stat: str, expected, got, error: str, ok: bool | None) -> None:
        status = "n/a" if ok is None else ("ok" if ok else "FAIL")
        if got is MISSING:
            status, got = "missing", "-"
        self.rows.append((column, stat, short(expected), short(got), error, status))

    @property
    def failures(self) -> int:
        return sum(row[-1] in ("FAIL", "missing") for row in self.rows)


def short(value) -> str:
    text = f"{value:.6g}" if isinstance(value, float) else str(value)
    return text if len(text) <= 28 else text[:25] + "..."


def is_numeric(dtype: pl.DataType) -> bool:
    return dtype.is_numeric() or isinstance(dtype, pl.Decimal)


def is_temporal(dtype: pl.DataType) -> bool:
    return dtype.is_temporal() and not isinstance(dtype, pl.Duration)


def to_python(value, dtype: pl.DataType):
    """A profile value (JSON) as a Python value comparable with the column's values."""
    if value is None:
        return None
    if isinstance(dtype, pl.Datetime):
        return dt.datetime.fromisoformat(str(value)).replace(tzinfo=None)
    if isinstance(dtype, pl.Date):
        return dt.date.fromisoformat(str(value)[:10])
    if is_numeric(dtype):
        return float(value)
    if dtype == pl.Boolean and isinstance(value, str):
        return value.lower() == "true"
    return value


def close(got: float, expected: float, scale: float) -> bool:
    return abs(got - expected) <= FLOAT_TOLERANCE * max(scale, 1e-300)


def check_equal(checks: Checks, column: str, stat: str, got, expected, dtype: pl.DataType) -> None:
    if got is MISSING:
        return checks.add(column, stat, expected, got, "", False)
    value = to_python(got, dtype)
    if isinstance(expected, float) and isinstance(value, float):
        ok = close(value, expected, abs(expected))
    elif is_numeric(dtype) and expected is not None and value is not None:
        ok = close(float(value), float(expected), abs(float(expected)))
    else:
        ok = value == expected
    checks.add(column, stat, expected, got, "", ok)


def temporal_unit_seconds(dtype: pl.DataType) -> float:
    if isinstance(dtype, pl.Date):
        return 86400.0
    return {"ns": 1e-9, "us": 1e-6, "ms": 1e-3}[getattr(dtype, "time_unit", None) or "us"]


def temporal_seconds(value) -> float:
    """ISO date/datetime as seconds since the epoch, ISO duration "PT<s>S" as seconds."""
    text = str(value)
    if text.startswith("PT") and text.endswith("S"):
        return float(text[2:-1])
    moment = dt.datetime.fromisoformat(text).replace(tzinfo=None)
    return (moment - dt.datetime(1970, 1, 1)).total_seconds()


def check_moments(checks: Checks, name: str, profile: dict, exact: dict, dtype: pl.DataType) -> None:
    temporal = is_temporal(dtype)
    keys = ("mean", "std") if temporal else ("mean", "std", "variance")
    std = exact.get("std") or 0.0
    for key in keys:
        value = profile.get(key, MISSING)
        if value is None and dtype == pl.Boolean:
            checks.add(name, key, exact[key], None, "not reported", None)
            continue
        if value is MISSING or value is None:
            checks.add(name, key, exact[key], MISSING, "", False)
            continue
        number = temporal_seconds(value) if temporal else float(value)
        scale = std + abs(exact["mean"]) if key == "mean" else abs(exact[key])
        # temporal values are printed to microseconds (a day for a bare date) / 9 significant digits
        resolution = 86400.0 if temporal and len(str(value)) == 10 else 1e-6
        ok = close(number, exact[key], scale) or (temporal and abs(number - exact[key]) <= max(resolution, 1e-8 * scale))
        note = ("seconds" + (", to the day" if resolution > 1 else "")) if temporal else ""
        if key == "std" and not temporal and not ok and close(number, exact["std_other"], exact["std_other"]):
            note = "matches the other ddof"
        checks.add(name, key, exact[key], value, note, ok)


def exact_moments(frame: pl.DataFrame, column: str, ddof: int) -> dict:
    col = pl.col(column)
    dtype = frame.schema[column]
    exprs = [col.null_count().alias("null_count"), col.count().alias("count"),
             col.drop_nulls().n_unique().alias("distinct")]
    if is_numeric(dtype) or is_temporal(dtype) or dtype in (pl.String, pl.Boolean):
        exprs += [col.min().alias("min"), col.max().alias("max")]
    if is_numeric(dtype) or dtype == pl.Boolean:
        values = col.cast(pl.Float64)
        exprs += [values.mean().alias("mean"), values.std(ddof=ddof).alias("std"),
                  values.var(ddof=ddof).alias("variance"), values.std(ddof=1 - ddof).alias("std_other")]
    if is_temporal(dtype):  # in seconds since the epoch
        seconds = col.to_physical().cast(pl.Float64) * temporal_unit_seconds(dtype)
        exprs += [seconds.mean().alias("mean"), seconds.std(ddof=ddof).alias("std")]
    if dtype.is_float():
        exprs += [col.is_nan().sum().alias("nan_count"),
                  (col == math.inf).sum().alias("pos_inf_count"), (col == -math.inf).sum().alias("neg_inf_count")]
    if dtype == pl.String:
        lengths = col.str.len_chars()
        exprs += [lengths.min().alias("len_min"), lengths.max().alias("len_max"), lengths.mean().alias("len_mean")]
    row = frame.select(exprs).row(0, named=True)
    if isinstance(dtype, pl.Decimal):
        row["min"], row["max"] = float(row["min"]), float(row["max"])
    return row


def check_quantiles(checks: Checks, frame: pl.DataFrame, name: str, reported, dtype: pl.DataType,
                    bound: float) -> None:
    if reported is MISSING or not isinstance(reported, dict):
        return checks.add(name, "quantiles", "p1..p99", MISSING if reported is MISSING else reported, "", False)
    col = pl.col(name).cast(pl.Float64) if is_numeric(dtype) else pl.col(name)
    valid = col.is_not_null() & (col.is_not_nan() if is_numeric(dtype) else pl.lit(True))
    exprs, wanted = [valid.sum().alias("n")], []
    for key, q in QUANTILES.items():
        if reported.get(key) is None:
            checks.add(name, f"quantile {key}", q, MISSING, "", False)
            continue
        value = to_python(reported[key], dtype)
        exprs += [(valid & (col <= value)).sum().alias(f"le_{key}"), (valid & (col < value)).sum().alias(f"lt_{key}")]
        wanted.append((key, q))
    counts = frame.select(exprs).row(0, named=True)
    n = counts["n"] or 1
    worst, worst_key = 0.0, "-"
    for key, q in wanted:
        error = max(0.0, q - counts[f"le_{key}"] / n, counts[f"lt_{key}"] / n - q)
        if error >= worst:
            worst, worst_key = error, key
    if wanted:
        checks.add(name, "quantile rank error", f"<= {bound:.2%}", f"max at {worst_key}",
                   f"{worst:.3%}", worst <= bound)


def check_distinct(checks: Checks, name: str, reported, exact: int) -> None:
    if not isinstance(reported, dict) or reported.get("estimate") is None:
        return checks.add(name, "distinct", exact, MISSING if not isinstance(reported, dict) else reported, "", False)
    estimate = float(reported["estimate"])
    if reported.get("exact"):
        return checks.add(name, "distinct (exact)", exact, reported["estimate"], "", estimate == exact)
    error = abs(estimate - exact) / max(exact, 1)
    low, high = reported.get("lower_bound"), reported.get("upper_bound")
    within = "" if low is None or high is None else (" in bounds" if low <= exact <= high else " outside bounds")
    checks.add(name, "distinct (HLL)", exact, round(estimate), f"{error:.3%}{within}", error <= HLL_RELATIVE_ERROR)


def check_top_values(checks: Checks, frame: pl.DataFrame, name: str, reported, dtype: pl.DataType) -> None:
    if reported is MISSING or reported is None:
        return checks.add(name, "top_values", "list", MISSING, "", False)
    items = [item for item in reported if item.get("value") is not None]
    if not items:
        return checks.add(name, "top_values", "list", "[]", "", None)
    values = [to_python(item["value"], dtype) for item in items]
    col = pl.col(name).cast(pl.Float64) if is_numeric(dtype) else pl.col(name)
    exact = frame.select([(col == value).sum().alias(str(i)) for i, value in enumerate(values)]).row(0)
    bad = []
    for item, true_count in zip(items, exact):
        low = item.get("lower_bound", item.get("count"))
        high = item.get("upper_bound", item.get("count"))
        if low is None or high is None or not low <= true_count <= high:
            bad.append(f"{item['value']}: {true_count} not in [{low}, {high}]")
    checks.add(name, "top_values counts", f"{len(items)} values", "; ".join(bad) or "all in bounds", "", not bad)


def check_column(checks: Checks, frame: pl.DataFrame, name: str, profile: dict, ddof: int) -> None:
    dtype = frame.schema[name]
    exact = exact_moments(frame, name, ddof)
    got = lambda key: profile.get(key, MISSING)  # noqa: E731
    checks.add(name, "count (rows)", frame.height, got("count"), "", got("count") == frame.height)
    checks.add(name, "null_count", exact["null_count"], got("null_count"), "", got("null_count") == exact["null_count"])
    ratio = got("null_ratio")
    checks.add(name, "null_ratio", exact["null_count"] / frame.height, ratio, "",
               ratio is not MISSING and ratio is not None and close(ratio, exact["null_count"] / frame.height, 1.0))
    if dtype.is_float():
        for key in ("nan_count", "pos_inf_count", "neg_inf_count"):
            checks.add(name, key, exact[key], got(key), "", got(key) == exact[key])
    if "min" in exact:
        for key in ("min", "max"):
            if dtype in (pl.String, pl.Boolean) and got(key) is None:
                checks.add(name, key, exact[key], None, "not reported", None)
            else:
                check_equal(checks, name, key, got(key), exact[key], dtype)
    if is_numeric(dtype) or is_temporal(dtype) or dtype == pl.Boolean:
        check_moments(checks, name, profile, exact, dtype)
    exact_mode = profile.get("exact") is True  # the profile says quantiles and top values are exact
    if is_numeric(dtype) or is_temporal(dtype):
        check_quantiles(checks, frame, name, got("quantiles"), dtype, 0.0 if exact_mode else KLL_RANK_ERROR)
    check_distinct(checks, name, got("distinct"), exact["distinct"])
    check_top_values(checks, frame, name, got("top_values"), dtype)
    if dtype == pl.String:
        lengths = got("string_length")
        if not isinstance(lengths, dict):
            checks.add(name, "string_length", "{min, max, mean}", MISSING, "", False)
        for key in ("min", "max", "mean") if isinstance(lengths, dict) else ():
            if key in lengths:
                checks.add(name, f"string_length {key}", exact[f"len_{key}"], lengths[key], "",
                           lengths[key] is not None and close(float(lengths[key]), float(exact[f"len_{key}"]), 1.0))


def check_profile(dataset: str, frame: pl.DataFrame, profile: dict, ddof: int) -> Checks:
    checks = Checks(dataset)
    for key, expected in (("row_count", frame.height), ("column_count", frame.width)):
        checks.add("*", key, expected, profile.get(key, MISSING), "", profile.get(key) == expected)
    by_name = {column.get("name"): column for column in profile.get("columns", [])}
    for name in frame.columns:
        if name not in by_name:
            checks.add(name, "column", name, MISSING, "", False)
        else:
            check_column(checks, frame, name, by_name[name], ddof)
    return checks


def run_th(th: str, path: Path) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "profile.json"
        done = subprocess.run([th, "profile", str(path), "--format", "json", "-o", str(out)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"`th profile {path}` failed (exit {done.returncode}): {done.stderr.strip()[-500:]}")
        return json.loads(out.read_text())


def print_checks(checks: Checks) -> None:
    head = ("column", "statistic", "expected", "got", "error", "status")
    widths = [max(len(str(cell)) for cell in column) for column in zip(head, *checks.rows)]
    print(f"\n## {checks.dataset}: {checks.failures} failing of {len(checks.rows)} checks")
    for line in (head, tuple("-" * w for w in widths), *checks.rows):
        print("| " + " | ".join(str(cell).ljust(w) for cell, w in zip(line, widths)) + " |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default="synthetic-10m,lineitem-sf1")
    parser.add_argument("--th", default=str(Path(sys.executable).parent / "th"))
    parser.add_argument("--profile", action="append", default=[], metavar="DATASET=JSON",
                        help="check this saved profile instead of running th")
    parser.add_argument("--ddof", type=int, choices=(0, 1), default=1, help="std/variance denominator n - ddof")
    args = parser.parse_args(argv)
    saved = dict(item.split("=", 1) for item in args.profile)
    datasets = list(saved) if saved and args.datasets == parser.get_default("datasets") else args.datasets.split(",")
    failures = 0
    for name in datasets:
        path = DATA_DIR / f"{name}.parquet"
        if not path.exists():
            sys.exit(f"{path} not found: make it with `python benchmarks/make_data.py`")
        if name in saved:
            profile = json.loads(Path(saved[name]).read_text())
        elif not Path(args.th).exists():
            print(f"th: not available ({args.th} does not exist)")
            return 2
        else:
            profile = run_th(args.th, path)
        checks = check_profile(name, pl.read_parquet(path), profile, args.ddof)
        print_checks(checks)
        failures += checks.failures
    print(f"\n{failures} failing checks")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
