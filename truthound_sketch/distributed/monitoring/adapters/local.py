"""Watching a ``concurrent.futures`` pool on this machine with psutil."""

from __future__ import annotations

import os
import signal
from typing import Any

from .base import MonitorAdapter, WorkerSample

__all__ = ["LocalMonitorAdapter"]


class LocalMonitorAdapter(MonitorAdapter):
    """Real CPU and memory readings of a local executor's workers.

    With a process pool (``ProcessPoolExecutor`` or anything holding a ``_processes`` map of
    pid to process) every worker process is one worker, ``local-<pid>``; a worker that dies is
    reported lost with its exit code or the signal that killed it (a clean exit, as at
    shutdown, is an orderly unregistration). With a thread pool, or no executor, this process
    is the one worker. CPU is percent of one core since the previous poll; memory is percent of
    the machine's RAM (resident set).
    """

    engine = "local"

    def __init__(self, executor: Any = None, poll_interval_seconds: float = 1.0) -> None:
        super().__init__(poll_interval_seconds)
        self.executor = executor
        self._procs: dict[int, tuple[Any, Any]] = {}  # pid -> (multiprocessing process, psutil process)
        self._gone: set[int] = set()  # pids already reported dead (a broken pool keeps listing them)

    @property
    def is_process_pool(self) -> bool:
        return hasattr(self.executor, "_processes")

    def connect(self) -> bool:
        return True

    def sample(self) -> list[WorkerSample]:
        import psutil

        if not self.is_process_pool:
            return [self._this_process(psutil)]
        current = dict(getattr(self.executor, "_processes", None) or {})
        for pid, proc in current.items():
            if pid not in self._procs and pid not in self._gone:
                try:
                    ps = psutil.Process(pid)
                    ps.cpu_percent(None)  # prime: the next call measures from here
                except psutil.Error:
                    ps = None
                self._procs[pid] = (proc, ps)
        return [self._sample_process(psutil, pid, proc, ps) for pid, (proc, ps) in list(self._procs.items())]

    def _reported(self, samples: list[WorkerSample]) -> None:
        for s in samples:
            pid = s.info.get("pid")
            if not s.alive and pid is not None:
                self._procs.pop(pid, None)
                self._gone.add(pid)

    def get_metrics(self) -> dict[str, Any]:
        import psutil

        ex = self.executor
        procs = dict(getattr(ex, "_processes", None) or {})
        alive = [p for p in procs.values() if getattr(p, "exitcode", None) is None]
        return {
            "executor": type(ex).__name__ if ex is not None else None,
            "kind": "processes" if self.is_process_pool else "threads",
            "max_workers": getattr(ex, "_max_workers", None),
            "workers": len(alive) if self.is_process_pool else 1,
            "pending_work_items": len(getattr(ex, "_pending_work_items", {}) or {}),
            "queued_work_items": _qsize(getattr(ex, "_work_queue", None)),
            "broken": bool(getattr(ex, "_broken", False)),
            "host_cpu_percent": psutil.cpu_percent(None),
            "host_memory_percent": psutil.virtual_memory().percent,
        }

    # ---------------------------------------------------------------- internals
    def _this_process(self, psutil) -> WorkerSample:
        ps = self._procs.get(os.getpid(), (None, None))[1]
        if ps is None:
            ps = psutil.Process(os.getpid())
            ps.cpu_percent(None)
            self._procs[os.getpid()] = (None, ps)
        threads = len(getattr(self.executor, "_threads", ()) or ())
        idle = getattr(getattr(self.executor, "_idle_semaphore", None), "_value", threads)
        return WorkerSample(f"local-{os.getpid()}", cpu_percent=ps.cpu_percent(None),
                            memory_percent=ps.memory_percent(), active_tasks=max(0, threads - idle),
                            info={"pid": os.getpid(), "threads": threads,
                                  "queued": _qsize(getattr(self.executor, "_work_queue", None))})

    def _sample_process(self, psutil, pid: int, proc: Any, ps: Any) -> WorkerSample:
        worker_id = f"local-{pid}"
        code = getattr(proc, "exitcode", None) if proc is not None else None
        if code is None and ps is not None:
            try:
                if ps.status() == psutil.STATUS_ZOMBIE:
                    code = _reap(proc)
                else:
                    return WorkerSample(worker_id, cpu_percent=ps.cpu_percent(None),
                                        memory_percent=ps.memory_percent(), info={"pid": pid})
            except psutil.NoSuchProcess:
                code = _reap(proc)
        elif code is None:
            return WorkerSample(worker_id, info={"pid": pid})
        if code == 0:
            return WorkerSample(worker_id, alive=False, graceful=True, info={"pid": pid, "exitcode": 0},
                                reason=f"worker process {pid} exited normally")
        return WorkerSample(worker_id, alive=False, info={"pid": pid, "exitcode": code},
                            reason=_death(pid, code))


def _reap(proc: Any) -> int | None:
    """Exit code of a dead multiprocessing process (reading it reaps the zombie)."""
    return getattr(proc, "exitcode", None) if proc is not None else None


def _death(pid: int, code: int | None) -> str:
    if code is None:
        return f"worker process {pid} disappeared"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"worker process {pid} was killed by {name} (exit code {code})"
    return f"worker process {pid} exited with code {code}"


def _qsize(q: Any) -> int:
    try:
        return int(q.qsize()) if q is not None else 0
    except (AttributeError, OSError):
        return 0
