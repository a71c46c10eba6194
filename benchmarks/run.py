"""Run `th profile` and its peers on the same data in one invocation; print ratios.

    python benchmarks/run.py --datasets synthetic-10m,lineitem-sf1 --repeat 3
    python benchmarks/run.py --datasets synthetic-100k --tools th,polars
    python benchmarks/run.py --spark --dask        # add the engine peers

Every run is a separate subprocess (a fresh interpreter: imports count, memory is
per tool; th's bytecode is written first, as an installed wheel has it). Wall time runs from spawn to exit. A sampler walks the subprocess tree
every ~20 ms (through /proc, or psutil where there is none) and keeps the peak RSS of the largest single process and
the peak of the sum over the tree. Repeats are interleaved across tools and the
median is reported. Results go to benchmarks/results/<timestamp>.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from importlib import metadata
from pathlib import Path

import psutil
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
DATA_DIR = HERE / "data"
RESULTS_DIR = HERE / "results"
PEERS = HERE / "peers.py"
WHYLOGS_PYTHON = HERE / ".venv-whylogs" / "bin" / "python"
MB = 1024 * 1024

DEFAULT_TOOLS = ["th", "th-w1", "polars", "duckdb", "whylogs"]
SPARK_TOOLS = ["th-spark", "spark"]
DASK_TOOLS = ["th-dask", "dask"]
# The `th` run each tool's row is compared with ("th / tool" ratios).
COUNTERPART = {"th-w1": "th", "th-proc": "th", "polars": "th", "duckdb": "th", "whylogs": "th", "spark": "th-spark", "dask": "th-dask"}


class Unavailable(Exception):
    """A tool that cannot run here: a status ("not available", "unavailable") and why."""

    def __init__(self, status: str, reason: str) -> None:
        super().__init__(f"{status} ({reason})")
        self.status, self.reason = status, reason


def th_command(th: str, tool: str, path: Path) -> list[str]:
    if not (os.path.isfile(th) and os.access(th, os.X_OK)):
        raise Unavailable("not available", f"{th} does not exist")
    check = subprocess.run([th, "profile", "--help"], capture_output=True, text=True)
    if check.returncode != 0:
        last = (check.stderr.strip().splitlines() or ["no output"])[-1]
        raise Unavailable("not available", f"`th profile --help` failed: {last}")
    compile_bytecode(th)
    extra = {
        "th": [],
        "th-w1": ["--workers", "1"],
        "th-proc": ["--processes"],
        "th-spark": ["--backend", "spark", "--master", "local[2]"],
        "th-dask": ["--backend", "dask"],
    }
    cmd = [th, "profile", str(path), "--format", "json", "-o", os.devnull, *extra[tool]]
    # one worker on one core: polars' own thread pool would otherwise take the second core
    return ["env", "POLARS_MAX_THREADS=1", *cmd] if tool == "th-w1" else cmd


def compile_bytecode(th: str) -> None:
    """Write the bytecode of th's package, as installing a wheel does (polars and the other peers
    come with theirs): with PYTHONDONTWRITEBYTECODE set, a source checkout would otherwise compile
    its changed modules again in every timed run."""
    python = Path(th).with_name("python")
    code = "import compileall, os, truthound_sketch as t; compileall.compile_dir(os.path.dirname(t.__file__), quiet=2)"
    subprocess.run([str(python) if python.exists() else sys.executable, "-c", code], capture_output=True)


def peer_command(tool: str, path: Path) -> list[str]:
    if tool == "whylogs":
        if not WHYLOGS_PYTHON.exists():
            raise Unavailable("unavailable", "no benchmarks/.venv-whylogs: run benchmarks/whylogs_env.sh")
        check = subprocess.run([str(WHYLOGS_PYTHON), "-c", "import whylogs, pandas, pyarrow"],
                               capture_output=True, text=True)
        if check.returncode != 0:
            raise Unavailable("unavailable", (check.stderr.strip().splitlines() or ["import failed"])[-1])
        return [str(WHYLOGS_PYTHON), str(PEERS), tool, str(path)]
    if tool == "spark" and shutil.which("java") is None:
        raise Unavailable("unavailable", "no java on PATH")
    return [sys.executable, str(PEERS), tool, str(path)]


def command_for(tool: str, path: Path, th: str) -> list[str]:
    return th_command(th, tool, path) if tool.startswith("th") else peer_command(tool, path)


PAGE = os.sysconf("SC_PAGE_SIZE")


def tree_pids(root: int) -> list[int]:
    """root and its descendants, from /proc/<pid>/task/<tid>/children (cheap: reads only the tree)."""
    if not os.path.exists(f"/proc/{root}/task"):
        try:
            return [root, *(p.pid for p in psutil.Process(root).children(recursive=True))]
        except psutil.Error:
            return []
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        try:
            for tid in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{tid}/children") as f:
                    todo.extend(int(child) for child in f.read().split())
        except OSError:
            pass
    return found


def rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * PAGE
    except OSError:
        try:
            return psutil.Process(pid).memory_info().rss
        except psutil.Error:
            return 0


class TreeSampler(threading.Thread):
    """Samples the RSS of a process and all its descendants every `interval` seconds until stopped."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.root = pid
        self.interval = interval
        self.peak_largest = 0
        self.peak_tree = 0
        self.samples = 0
        self.stop_event = threading.Event()

    def sample(self) -> None:
        sizes = [rss(pid) for pid in tree_pids(self.root)]
        if sizes:
            self.peak_largest = max(self.peak_largest, max(sizes))
            self.peak_tree = max(self.peak_tree, sum(sizes))
            self.samples += 1

    def run(self) -> None:
        while not self.stop_event.is_set():
            self.sample()
            self.stop_event.wait(self.interval)


def in_group(pid: int, pgid: int) -> bool:
    try:
        return os.getpgid(pid) == pgid
    except OSError:
        return False


def kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def measure(cmd: list[str], log_path: Path, timeout: float) -> dict:
    """Run cmd once; return wall time, memory peaks and exit status."""
    with open(log_path, "ab") as log:
        log.write(f"\n$ {' '.join(cmd)}\n".encode())
        log.flush()
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
        sampler = TreeSampler(proc.pid)
        sampler.start()
        timer = threading.Timer(timeout, kill_group, [proc.pid])
        timer.start()
        try:
            # Wait for the exit without reaping, so the pid and its group stay ours while we clean up.
            os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
            wall = time.perf_counter() - start
        finally:
            timer.cancel()
            sampler.stop_event.set()
            sampler.join()
            leftovers = [p.name() for p in psutil.process_iter(["name"]) if p.pid != proc.pid and in_group(p.pid, proc.pid)]
            kill_group(proc.pid)  # end anything the tool left running (or all of it, on Ctrl-C)
            _, status = os.waitpid(proc.pid, 0)
    return {
        "wall_s": round(wall, 3),
        "peak_mb_largest": round(sampler.peak_largest / MB, 1),
        "peak_mb_tree": round(sampler.peak_tree / MB, 1),
        "samples": sampler.samples,
        "returncode": os.waitstatus_to_exitcode(status),
        "timed_out": wall >= timeout,
        "left_running": leftovers,  # processes still in the tool's group at exit (then killed)
    }


def dataset_info(name: str) -> dict:
    path = Path(name) if name.endswith(".parquet") else DATA_DIR / f"{name}.parquet"
    if not path.exists():
        sys.exit(f"{path} not found: make it with `python benchmarks/make_data.py` (see --rows/--scales)")
    meta = pq.ParquetFile(path).metadata
    return {"path": str(path), "rows": meta.num_rows, "columns": meta.num_columns, "bytes": path.stat().st_size}


def last_error(log_path: Path) -> str:
    lines = [line for line in log_path.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1][:160] if lines else "no output"


def summarize(runs: list[dict]) -> dict:
    keys = ("wall_s", "peak_mb_largest", "peak_mb_tree")
    return {key: round(statistics.median(run[key] for run in runs), 3) for key in keys}


def ratio(num: float | None, den: float | None) -> str:
    return f"{num / den:.2f}" if num and den else "-"


def print_table(name: str, info: dict, tools: dict) -> None:
    print(f"\n## {name}: {info['rows']:,} rows x {info['columns']} columns, {info['bytes'] / 1e6:.0f} MB")
    head = ("tool", "wall s", "peak MB (largest)", "peak MB (tree)", "th/tool wall", "th/tool mem (largest)",
            "th/tool mem (tree)")
    rows = []
    for tool, result in tools.items():
        if result["status"] != "ok":
            print(f"{tool}: {result['status']}" + (f" ({result['reason']})" if result.get("reason") else ""))
            continue
        med = result["median"]
        other = tools.get(COUNTERPART.get(tool, ""), {}).get("median", {})
        rows.append((
            tool, f"{med['wall_s']:.2f}", f"{med['peak_mb_largest']:.0f}", f"{med['peak_mb_tree']:.0f}",
            ratio(other.get("wall_s"), med["wall_s"]), ratio(other.get("peak_mb_largest"), med["peak_mb_largest"]),
            ratio(other.get("peak_mb_tree"), med["peak_mb_tree"]),
        ))
    widths = [max(len(str(cell)) for cell in column) for column in zip(head, *rows)]
    for line in (head, tuple("-" * w for w in widths), *rows):
        print("| " + " | ".join(str(cell).ljust(w) for cell, w in zip(line, widths)) + " |")
    print("th/tool: the matching th run (th, th-spark, th-dask) divided by the tool's; above 1, th is slower or larger")
    if "th" in tools and "th-w1" in tools and tools["th"]["status"] == tools["th-w1"]["status"] == "ok":
        speedup = tools["th-w1"]["median"]["wall_s"] / tools["th"]["median"]["wall_s"]
        print(f"scaling: wall of th --workers 1 / th (default workers) = {speedup:.2f}")


def project_commit() -> str | None:
    """The commit of the checkout that holds these scripts (the installed `th` is usually editable)."""
    done = subprocess.run(["git", "-C", str(HERE.parent), "log", "-1", "--format=%h %cI"], capture_output=True, text=True)
    return done.stdout.strip() or None


def versions() -> dict:
    found = {"project_commit": project_commit()}
    for package in ("truthound_sketch", "polars", "duckdb", "pyspark", "dask", "psutil"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    if WHYLOGS_PYTHON.exists():
        out = subprocess.run([str(WHYLOGS_PYTHON), "-c", "import whylogs; print(whylogs.__version__)"],
                             capture_output=True, text=True)
        if out.returncode == 0:
            found["whylogs"] = out.stdout.strip()
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default="synthetic-10m,lineitem-sf1", help="names in benchmarks/data/ or .parquet paths")
    parser.add_argument("--tools", default=None, help=f"comma-separated, default {','.join(DEFAULT_TOOLS)}")
    parser.add_argument("--repeat", type=int, default=1, help="runs per tool; the median is reported")
    parser.add_argument("--spark", action="store_true", help="add Spark df.summary() and th --backend spark")
    parser.add_argument("--dask", action="store_true", help="add Dask describe() and th --backend dask")
    parser.add_argument("--th", default=str(Path(sys.executable).parent / "th"), help="path of the th executable")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds before one run is killed")
    parser.add_argument("--output", default=None, help="results JSON path (default results/<timestamp>.json)")
    parser.add_argument("--settle", type=float, default=1.0,
                        help="seconds of idle before each run, so that the previous run's exit (freeing its "
                             "memory) does not overlap the next (default 1)")  # fmt: skip
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind, so the running tool's group is killed

    tools = args.tools.split(",") if args.tools else list(DEFAULT_TOOLS)
    tools += (SPARK_TOOLS if args.spark else []) + (DASK_TOOLS if args.dask else [])
    unknown = set(tools) - set(COUNTERPART) - {"th"} - set(SPARK_TOOLS) - set(DASK_TOOLS)
    if unknown:
        parser.error(f"unknown tools: {', '.join(sorted(unknown))}")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%dT%H%M%S")
    out_path = Path(args.output) if args.output else RESULTS_DIR / f"{stamp}.json"
    log_path = out_path.with_suffix(".log")
    report = {
        "started": dt.datetime.now().isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "memory_gb": round(psutil.virtual_memory().total / 1e9, 1),
                    "python": platform.python_version(), "load_avg_start": os.getloadavg()},
        "versions": versions(),
        "repeat": args.repeat,
        "settle_s": args.settle,
        "datasets": {},
    }
    for name in args.datasets.split(","):
        info = dataset_info(name)
        results: dict[str, dict] = {}
        commands = {}
        for tool in tools:
            try:
                commands[tool] = command_for(tool, Path(info["path"]), args.th)
                results[tool] = {"status": "ok", "command": commands[tool], "runs": []}
            except Unavailable as why:
                results[tool] = {"status": why.status, "reason": why.reason}
        for attempt in range(args.repeat):  # interleave tools so machine noise spreads over all of them
            for tool, cmd in commands.items():
                if results[tool]["status"] != "ok":
                    continue
                time.sleep(args.settle)
                run = measure(cmd, log_path, args.timeout)
                results[tool]["runs"].append(run)
                print(f"{name} {tool} run {attempt + 1}: {run['wall_s']:.2f} s, {run['peak_mb_largest']:.0f} MB",
                      flush=True)
                if run["returncode"] != 0:
                    reason = "timed out" if run["timed_out"] else f"exit {run['returncode']}: {last_error(log_path)}"
                    results[tool].update(status="failed", reason=reason)
        for result in results.values():
            if result["status"] == "ok":
                result["median"] = summarize(result["runs"])
        report["datasets"][name] = {**info, "tools": results}
        report["machine"]["load_avg_end"] = os.getloadavg()
        out_path.write_text(json.dumps(report, indent=2))  # after each data set, so a long run keeps its part
        print_table(name, info, results)
    print(f"\nresults: {out_path}\nlog: {log_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
