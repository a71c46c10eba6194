"""The `shims/` folder installs as `truthound_sketch.shims` (never a bare `shims`), in an editable
install and in a built wheel."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_editable_install_maps_shims_into_the_package():
    code = (
        "import importlib.util, truthound_sketch.shims as s, pathlib;"
        "print(pathlib.Path(s.__file__).resolve().parent.name);"
        "print(importlib.util.find_spec('shims') is None)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/", check=True)
    assert out.stdout.split() == ["shims", "True"]


@pytest.mark.slow
def test_built_wheel_holds_truthound_sketch_shims(tmp_path):
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", str(tmp_path), str(ROOT)],
                   check=True, capture_output=True, timeout=600)  # fmt: skip
    wheel = next(tmp_path.glob("truthound_sketch-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "truthound_sketch/shims/__init__.py" in names
    assert "truthound_sketch/schema/profile.schema.json" in names
    assert "truthound_sketch/distributed/monitoring/adapters/__init__.py" in names
    for ext in ("_hll", "_hashcount", "_kll"):
        assert any(n.startswith(f"truthound_sketch/{ext}") and n.endswith(".so") for n in names), ext
    assert not any(n.startswith("shims/") for n in names)
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True)  # fmt: skip
    code = "import truthound_sketch.shims, truthound_sketch._hll, truthound_sketch._hashcount, truthound_sketch._kll; print(truthound_sketch.shims.__file__)"
    env = {**os.environ, "PYTHONPATH": str(target)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/", check=True, env=env)
    assert out.stdout.strip() == str(target / "truthound_sketch" / "shims" / "__init__.py")
