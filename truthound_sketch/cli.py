"""The ``th`` command: ``th profile PATH`` and ``th merge A B ... -o OUT``."""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import sys
from typing import Any

from . import read_ahead
from .distributed.bus import NullBus

__all__ = ["entry", "main", "render_table"]

EXIT_USAGE, EXIT_ERROR, EXIT_INTERNAL = 2, 1, 3


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="th", description="Profile tabular data with mergeable sketches.")
    sub = p.add_subparsers(dest="command", required=True)

    pr = sub.add_parser("profile", help="profile a file, directory or glob (local path or fsspec URL)")
    pr.add_argument("path")
    pr.add_argument("--distributed", action="store_true", help="run on the engine given by --backend")
    pr.add_argument("--backend", choices=["local", "spark", "dask", "ray", "auto"], default=None,
                    help="engine (default: TRUTHOUND_DISTRIBUTED_BACKEND or local)")
    pr.add_argument("--workers", type=_positive, default=None, help="local workers (default: TRUTHOUND_NUM_WORKERS or CPU count)")
    how = pr.add_mutually_exclusive_group()
    how.add_argument("--threads", action="store_true", help="local engine: threads (the default up to 4 workers)")
    how.add_argument("--processes", action="store_true", help="local engine: worker processes (the default above 4 workers)")
    pr.add_argument("--strategy", choices=["row_based", "column_based", "hybrid", "hash"], default="row_based")
    pr.add_argument("--master", help="Spark master URL (spark://..., local[N], sc://...)")
    pr.add_argument("--scheduler", help="Dask scheduler: threads, processes, synchronous, distributed or an address")
    pr.add_argument("--address", help="Ray cluster address (ray://... or host:port)")
    pr.add_argument("--format", choices=["table", "json"], default="table")
    pr.add_argument("-o", "--output", help="write the profile here instead of standard output")
    pr.add_argument("--save-partial", metavar="FILE", help="also save the partial profile (for `th merge`)")
    pr.add_argument("--columns", type=_csv, help="comma-separated columns to profile")
    pr.add_argument("--quantiles", type=_floats, help="comma-separated quantiles, e.g. 0.1,0.5,0.9")
    pr.add_argument("--top-k", type=_positive, default=None)
    pr.add_argument("--monitor", help="console | progress | jsonl:PATH | json:PATH | logging")
    pr.add_argument("--prometheus-port", type=int, default=None, help="serve Prometheus metrics on 127.0.0.1:PORT during the run")
    pr.add_argument("--webhook", help="POST monitoring events of severity WARNING and up to this URL")
    pr.add_argument("--no-progress", action="store_true", help="no progress bar")

    mg = sub.add_parser("merge", help="merge partial profiles (from --save-partial) into one")
    mg.add_argument("inputs", nargs="+")
    mg.add_argument("-o", "--output", required=True, help="where to write the merged partial profile")
    mg.add_argument("--format", choices=["table", "json", "none"], default="table", help="print the merged profile")
    mg.add_argument("--report", help="write the merged profile (in --format) to this file")
    return p


def _positive(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return v


def _csv(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(",") if x.strip())


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in _csv(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: quantiles are numbers between 0 and 1, comma-separated") from None


# -- profile ----------------------------------------------------------------------------------
def _engine_config(args: argparse.Namespace, name: str) -> Any:
    from .distributed import DaskConfig, RayConfig, SparkConfig

    if name == "spark":
        return SparkConfig(master=args.master or os.environ.get("SPARK_MASTER", "local[*]"))
    if name == "dask":
        scheduler = args.scheduler or ("distributed" if os.environ.get("DASK_SCHEDULER_ADDRESS") else "threads")
        return DaskConfig(scheduler=scheduler, num_workers=args.workers)
    if name == "ray":
        return RayConfig(address=args.address or os.environ.get("RAY_ADDRESS"))
    return None


def _monitor(args: argparse.Namespace) -> Any:
    wanted = args.monitor or args.prometheus_port is not None or args.webhook
    if not wanted:
        return None
    return _build_monitor(args.monitor, args.prometheus_port, args.webhook)


def _cmd_profile(args: argparse.Namespace) -> int:
    import polars  # noqa: F401 - first: it brings most of what the modules below import (the read-ahead starts sooner)

    from .config import ProfileConfig

    config = ProfileConfig().with_options(columns=args.columns, quantiles=args.quantiles, top_k=args.top_k)
    _read_ahead(args, config)
    from .distributed.profiler import DistributedProfiler
    from .distributed.registry import backend_from_env

    name = args.backend or (backend_from_env() if args.distributed else "local")
    if name == "auto":
        from .distributed.registry import auto_select_backend

        name = auto_select_backend().value
    monitor = _monitor(args)
    bus = monitor if monitor is not None else (None if args.no_progress else _ProgressBus())
    options: dict[str, Any] = {}
    if name == "local":
        options = {"num_workers": args.workers, "use_processes": True if args.processes else False if args.threads else None}
    profiler = DistributedProfiler.create(name, _engine_config(args, name), partition_strategy=args.strategy,
                                          monitor=bus, profile_config=config, **options)  # fmt: skip
    _resume_gc()
    try:
        result = profiler.profile(args.path)
    finally:
        profiler.close()
        read_ahead.forget()
        if isinstance(bus, _ProgressBus):
            bus.close()
    if args.save_partial:
        _write_bytes(args.save_partial, result.partial.to_bytes())
    _emit(result, args.format, args.output)
    return 0


def _read_ahead(args: argparse.Namespace, config: Any) -> None:
    """A local parquet file profiled by threads (row slices, the default) starts decoding its
    first batches before the engine and the sketches are imported (:mod:`.read_ahead`):
    synthetic-10m 0.92 -> 0.87 s, lineitem-sf1 1.39 -> 1.37 s (means of 10 and 6 runs, alternating)."""
    if args.distributed or args.backend not in (None, "local") or args.processes or args.strategy != "row_based":
        return
    from .workers import THREADS_UP_TO, default_workers

    n = args.workers or default_workers()
    if n > THREADS_UP_TO and not args.threads:
        return  # worker processes read their own slices
    read_ahead.read_ahead(args.path, columns=config.columns, batch_rows=config.batch_rows,
                          min_slices=n if n > 1 else 1, batches=2 if n > 1 else 1)  # fmt: skip


def _emit(result: Any, fmt: str, output: str | None) -> None:
    text = result.to_json() + "\n" if fmt == "json" else render_table(result)
    if output:
        with open(output, "w", encoding="utf-8") as fh:
            fh.write(text)
    else:
        sys.stdout.write(text)


def _write_bytes(path: str, data: bytes) -> None:
    from .errors import InputError

    try:
        with open(path, "wb") as fh:
            fh.write(data)
    except OSError as exc:
        raise InputError(f"{path}: cannot write: {exc.strerror}") from None


# -- merge ------------------------------------------------------------------------------------
def _cmd_merge(args: argparse.Namespace) -> int:
    from .distributed.merger import ProfileMerger
    from .errors import InputError, ProfileFormatError
    from .table import TablePartial

    _resume_gc()
    parts = []
    for path in args.inputs:
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except OSError as exc:
            raise InputError(f"{path}: cannot read: {exc.strerror}") from None
        try:
            parts.append(TablePartial.from_bytes(data))
        except ProfileFormatError as exc:
            raise ProfileFormatError(f"{path}: {exc}") from None
    merger = ProfileMerger()
    merged = merger.merge_partials(parts)
    _write_bytes(args.output, merged.to_bytes())
    if args.format != "none":
        _emit(merged.finalize(merger.config, engine="merge", partitions=len(parts)), args.format, args.report)
    return 0


# -- rendering --------------------------------------------------------------------------------
def _fmt(v: Any, width: int = 14) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        text = f"{v:.6g}"
    else:
        text = str(v)
    text = text.replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


def render_table(result: Any) -> str:
    """A readable, fixed-width summary of a TableProfile."""
    head = ["column", "type", "nulls", "distinct", "mean", "std", "min", "p50", "max", "top value"]
    rows = []
    for c in result.columns:
        d = c.distinct
        distinct = "" if d is None else (f"{int(d.estimate)}" if d.exact else f"~{d.estimate:.0f}")
        top = c.top_values[0] if c.top_values else None
        rows.append([
            _fmt(c.name, 24), _fmt(c.dtype, 18), f"{c.null_ratio:.1%}", distinct, _fmt(c.mean), _fmt(c.std),
            _fmt(c.min), _fmt(c.quantiles.get("p50")), _fmt(c.max),
            f"{_fmt(top.value, 16)} ({top.count})" if top else "",
        ])  # fmt: skip
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(head)]
    line = lambda cells: "  ".join(x.ljust(w) for x, w in zip(cells, widths)).rstrip()  # noqa: E731
    title = (f"{result.source or 'table'}: {result.row_count:,} rows x {result.column_count} columns, "
             f"{result.profile_duration_ms / 1000:.2f} s on {result.engine} ({result.partitions} partitions)")  # fmt: skip
    return "\n".join([title, line(head), line(["-" * w for w in widths]), *map(line, rows)]) + "\n"


class _ProgressBus(NullBus):
    """A progress bar over partitions, shown on a terminal when a run lasts over a second."""

    def __init__(self) -> None:
        self._bar = None

    def run_started(self, *, num_partitions: int, **_: Any) -> None:
        if sys.stderr.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=num_partitions or None, unit="part", desc="profiling", delay=1.0, leave=False)

    def partition_completed(self, partition_id: int, **_: Any) -> None:
        if self._bar is not None:
            self._bar.update(1)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def main(argv: list[str] | None = None) -> int:
    from .errors import TruthoundSketchError

    args = _parser().parse_args(argv)
    try:
        return _cmd_profile(args) if args.command == "profile" else _cmd_merge(args)
    except TruthoundSketchError as exc:
        print(f"th: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("th: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug or an engine failure: one line, traceback on request
        if os.environ.get("TH_DEBUG"):
            raise
        print(f"th: internal error: {type(exc).__name__}: {exc} (set TH_DEBUG=1 for a traceback)", file=sys.stderr)
        return EXIT_INTERNAL


_ENGINE_MODULES = ("pyspark", "dask", "distributed", "ray")
_gc_paused = False


def _pause_gc() -> None:
    """No cyclic garbage collection while the executable imports polars, numpy and the engines:
    their long-lived objects would be traversed again and again (about 50 ms of CPU, measured)."""
    global _gc_paused
    if gc.isenabled():
        gc.disable()
        _gc_paused = True


def _resume_gc() -> None:
    """Collection resumes once the imports are done, with the objects so far frozen out of it."""
    global _gc_paused
    if _gc_paused:
        gc.freeze()
        gc.enable()
        _gc_paused = False


def entry() -> None:
    """The ``th`` executable: :func:`main`, then exit.  When no engine was started, the process
    ends as soon as its output is flushed (nothing is left to clean up but the interpreter, whose
    teardown of polars, Arrow and numpy takes a tenth of a second); engines get a normal exit,
    so that their own exit handlers stop their processes.  numpy's BLAS thread pool is kept to one
    thread unless the environment says otherwise: nothing here multiplies matrices, and starting
    the pool costs about 50 ms of CPU (measured)."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    # polars' allocator (jemalloc) with one arena, so that batches freed by one thread serve the
    # others, and freed pages returned within a second rather than 10 (lineitem-sf1, 2 threads:
    # 396-401 -> 346-348 MB); with the reader one batch ahead, 1 s against 0.3 s: lineitem-sf1
    # 1.48 -> 1.38 s, 2.29 -> 2.12 s of CPU (fewer pages mapped again), the same peak (390, 386 MB)
    os.environ.setdefault("_RJEM_MALLOC_CONF", "narenas:1,dirty_decay_ms:1000,muzzy_decay_ms:0")
    _pause_gc()
    code = main()
    if any(name in sys.modules for name in _ENGINE_MODULES):
        sys.exit(code)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError):  # a closed pipe (th ... | head): the reader has what it wanted
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    entry()


def _build_monitor(spec: str | None, prometheus_port: int | None, webhook: str | None) -> Any:
    """A monitor from ``--monitor console|progress|logging|jsonl:PATH|json:PATH`` (comma-separated),
    ``--prometheus-port`` and ``--webhook``."""
    from .distributed import monitoring as m
    from .errors import ConfigError

    config = m.MonitorConfig.standard()
    if prometheus_port is not None:
        config.metrics.enable_prometheus = True
        config.metrics.prometheus_port = prometheus_port
    callbacks: list[Any] = []
    for item in _csv(spec or ""):
        kind, _, target = item.partition(":")
        if kind == "console":
            callbacks.append(m.ConsoleMonitorCallback(show_progress=True, use_colors=sys.stderr.isatty()))
        elif kind == "progress":
            callbacks.append(m.ProgressBarCallback(desc="Profiling", unit="partitions"))
        elif kind == "logging":
            callbacks.append(m.LoggingMonitorCallback())
        elif kind in ("jsonl", "json") and target:
            callbacks.append(m.FileMonitorCallback(output_path=target, format=kind))
        else:
            raise ConfigError(f"--monitor {item!r}: use console, progress, logging, jsonl:PATH or json:PATH")
    if webhook:
        callbacks.append(m.WebhookMonitorCallback(url=webhook, event_filter=lambda e: e.severity >= m.EventSeverity.WARNING))
    return m.DistributedMonitor(config, callbacks=callbacks)
