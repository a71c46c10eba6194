"""The JSON output follows the shipped, versioned schema."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from importlib import resources

import jsonschema
import polars as pl

from truthound_sketch import ProfileConfig, profile
from truthound_sketch.result import SCHEMA_VERSION


def schema() -> dict:
    return json.loads(resources.files("truthound_sketch").joinpath("schema/profile.schema.json").read_text())


def test_every_kind_validates_against_the_schema():
    df = pl.DataFrame(
        {
            "i": [1, None, 3],
            "f": [1.5, float("nan"), float("-inf")],
            "d": pl.Series([Decimal("1.25"), None, Decimal("2.50")], dtype=pl.Decimal(10, 2)),
            "b": [True, False, None],
            "s": ["a", "", None],
            "cat": pl.Series(["x", "y", "x"], dtype=pl.Categorical),
            "date": [dt.date(2020, 1, 1), None, dt.date(2021, 1, 1)],
            "ts": pl.Series([dt.datetime(2020, 1, 1), dt.datetime(2020, 6, 1), None]).dt.replace_time_zone("Asia/Tokyo"),
            "dur": [dt.timedelta(seconds=1), None, dt.timedelta(hours=1)],
            "bin": [b"a", b"b", None],
            "lst": [[1], [], None],
            "nul": pl.Series([None, None, None], dtype=pl.Null),
        }
    )
    for cfg in (ProfileConfig(), ProfileConfig(exact_threshold=0)):
        doc = json.loads(profile(df, config=cfg).to_json())
        jsonschema.validate(doc, schema())
        assert doc["schema_version"] == SCHEMA_VERSION
        cols = {c["name"]: c for c in doc["columns"]}
        assert cols["ts"]["min"] == "2020-01-01T00:00:00+09:00"
        assert cols["f"]["nan_count"] == 1 and cols["f"]["neg_inf_count"] == 1
        assert cols["d"]["min"] == "1.25"
        assert cols["lst"]["null_count"] == 1 and cols["lst"]["distinct"] is None
