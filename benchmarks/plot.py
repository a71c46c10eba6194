"""Plot wall time against rows for every tool, from run.py results JSON files.

    python benchmarks/plot.py                                   # all of benchmarks/results/*.json
    python benchmarks/plot.py results/a.json results/b.json -o scaling.png --prefix lineitem-sf

Data sets whose names start with --prefix (default "lineitem-sf", i.e. TPC-H lineitem
at several scales: `make_data.py --scales 1,3,10`) give the points. When a tool was
measured on one data set in several files, the file with the most runs wins (the newest
among equals).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def collect(files: list[Path], prefix: str) -> dict[str, dict[int, float]]:
    """tool -> {rows: median wall seconds}: of the files that measured a tool on a data set, the
    one with the most runs wins, the newest among equals."""
    best: dict[tuple[str, int], tuple[int, float]] = {}
    for path in sorted(files, key=lambda p: json.loads(p.read_text()).get("started", "")):
        report = json.loads(path.read_text())
        for name, dataset in report.get("datasets", {}).items():
            if not name.startswith(prefix):
                continue
            for tool, result in dataset["tools"].items():
                if result.get("status") == "ok" and "median" in result:
                    runs = len(result.get("runs", []))
                    key = (tool, dataset["rows"])
                    if runs >= best.get(key, (0, 0.0))[0]:
                        best[key] = (runs, result["median"]["wall_s"])
    points: dict[str, dict[int, float]] = {}
    for (tool, rows), (_, wall) in best.items():
        points.setdefault(tool, {})[rows] = wall
    return points


def plot(points: dict[str, dict[int, float]], title: str, out: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for tool in sorted(points):
        rows = sorted(points[tool])
        ax.plot(rows, [points[tool][r] for r in rows], marker="o", label=tool)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("rows")
    ax.set_ylabel("wall time, s (median)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=120)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="*", type=Path, help="results JSON files (default: benchmarks/results/*.json)")
    parser.add_argument("--prefix", default="lineitem-sf", help="data set name prefix to plot")
    parser.add_argument("-o", "--output", type=Path, default=RESULTS_DIR / "scaling.png")
    args = parser.parse_args(argv)
    files = args.files or sorted(RESULTS_DIR.glob("*.json"))
    points = collect(files, args.prefix)
    if not points:
        print(f"no results for data sets named {args.prefix}* in {len(files)} file(s)", file=sys.stderr)
        return 1
    plot(points, f"Wall time against rows ({args.prefix}*, 2 cores)", args.output)
    for tool, series in sorted(points.items()):
        print(tool, ", ".join(f"{rows:,} rows: {wall:.2f} s" for rows, wall in sorted(series.items())))
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
