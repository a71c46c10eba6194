"""Importing and using the core never imports an optional engine (pyspark, dask, distributed, ray)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

ENGINES = ("pyspark", "dask", "distributed", "ray")

SCRIPT = textwrap.dedent("""
    import json, sys, tempfile, os
    import polars as pl
    import truthound_sketch as ts
    from truthound_sketch.distributed import auto_select_backend, DistributedProfiler, BackendRegistry

    df = pl.DataFrame({"a": [1, 2, None], "s": ["x", "y", "x"]})
    out = {"frame_rows": ts.profile(df).row_count}
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "t.parquet")
        df.write_parquet(path)
        out["parquet_rows"] = ts.profile(path, num_workers=2).row_count
        with DistributedProfiler.create(backend="auto") as p:
            out["auto_profile_rows"] = p.profile(path).row_count
    out["auto"] = auto_select_backend().value
    out["backends"] = BackendRegistry.list()
    out["loaded"] = sorted({m.split(".")[0] for m in sys.modules} & {"pyspark", "dask", "distributed", "ray"})
    print(json.dumps(out))
""")


def test_core_imports_no_engine() -> None:
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["frame_rows"] == 3 and out["parquet_rows"] == 3 and out["auto_profile_rows"] == 3
    assert out["auto"] == "local"
    assert {"local", "spark", "dask", "ray"} <= set(out["backends"])
    assert out["loaded"] == [], f"engines imported by the core: {out['loaded']}"


def test_engine_names_resolve_lazily() -> None:
    """Touching the lazily exported shim names is what imports an engine, not the package import."""
    script = textwrap.dedent("""
        import sys
        import truthound_sketch.distributed as d
        assert "SparkBackend" in d.__all__
        print(sorted({m.split(".")[0] for m in sys.modules} & {"pyspark", "dask", "distributed", "ray"}))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
