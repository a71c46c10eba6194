"""docs/monitoring.md stays true: its runnable examples run, and the package exports what it lists."""

from __future__ import annotations

import re
from pathlib import Path

import truthound_sketch.distributed.monitoring as monitoring
import truthound_sketch.distributed.monitoring.adapters as adapters

DOC = Path(__file__).resolve().parents[1] / "docs" / "monitoring.md"


def runnable_blocks() -> list[str]:
    return re.findall(r"<!-- runnable -->\s*```python\n(.*?)```", DOC.read_text(), flags=re.S)


def test_runnable_examples_run(capsys):
    blocks = runnable_blocks()
    assert len(blocks) == 2
    for code in blocks:
        exec(compile(code, str(DOC), "exec"), {"__name__": "docs_example"})
    out = capsys.readouterr().out
    assert "Tasks completed: 3, retried: 1" in out
    assert "first and last event: monitor_start monitor_stop" in out


def test_all_lists_exactly_the_public_names():
    for module in (monitoring, adapters):
        public = {n for n, v in vars(module).items()
                  if not n.startswith("_") and not isinstance(v, type(monitoring)) and n != "annotations"}
        assert set(module.__all__) == public, module.__name__
        for name in module.__all__:
            assert getattr(module, name) is not None
