"""Task bookkeeping: the lifecycle of every partition task, retries and timeouts.

A task moves SUBMITTED -> RUNNING -> COMPLETED, or -> FAILED / TIMED_OUT. A failed task that
may run again goes to RETRYING and, when submitted again, stays the same task with a higher
``retry_count``. Finished tasks are kept in a bounded history.
"""

from __future__ import annotations

import collections
import enum
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

from truthound_sketch.errors import BackendError, TruthoundSketchError

from .config import TaskTrackerConfig

__all__ = ["TaskState", "TaskInfo", "TaskTracker", "UnknownTaskError"]


class UnknownTaskError(TruthoundSketchError, KeyError):
    """A task id that the tracker never issued, or that left its bounded history."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class TaskState(str, enum.Enum):
    SUBMITTED = "submitted"
    RUNNING = "running"
    RETRYING = "retrying"
    COMPLETED = "completed"
    FAILED = "failed"
    TIMED_OUT = "timed_out"

    def __str__(self) -> str:
        return self.name

    @property
    def is_final(self) -> bool:
        return self in (TaskState.COMPLETED, TaskState.FAILED, TaskState.TIMED_OUT)


@dataclass
class TaskInfo:
    """A snapshot of one task. Times are seconds since the epoch."""

    task_id: str
    task_type: str
    partition_id: int | None = None
    state: TaskState = TaskState.SUBMITTED
    worker_id: str | None = None
    submitted_at: float = 0.0
    started_at: float | None = None
    completed_at: float | None = None
    progress: float = 0.0
    rows_processed: int = 0
    total_rows: int | None = None
    retry_count: int = 0
    attempts: int = 0
    error: str | None = None
    result: Any = None
    metadata: dict[str, Any] = field(default_factory=dict)
    duration_seconds: float | None = None
    _t_started: float | None = field(default=None, repr=False)


class TaskTracker:
    """Thread-safe registry of tasks.

    ``clock`` (monotonic seconds) measures durations and timeouts; pass a fake one in tests.
    """

    def __init__(self, config: TaskTrackerConfig | None = None, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config or TaskTrackerConfig()
        self._clock = clock
        self._lock = threading.Lock()
        self._tasks: dict[str, TaskInfo] = {}
        self._finished: collections.deque[str] = collections.deque()
        self._retries: dict[str, int] = {}
        self._token = uuid.uuid4().hex[:8]
        self._counts = collections.Counter()
        self._duration_sum = 0.0

    # ---------------------------------------------------------------- lifecycle
    def partition_task_id(self, partition_id: int, task_type: str = "profile_partition") -> str:
        """The id a partition's task has in this run (stable across retries)."""
        return f"{task_type}-{self._token}-p{partition_id}"

    def submit_task(self, task_type: str = "profile_partition", partition_id: int | None = None,
                    metadata: dict[str, Any] | None = None, *, total_rows: int | None = None,
                    enforce_retry_limit: bool = True) -> str:
        """Register a task and return its id (see :meth:`submit`)."""
        return self.submit(task_type, partition_id, metadata, total_rows=total_rows,
                           enforce_retry_limit=enforce_retry_limit)[0].task_id

    def submit(self, task_type: str = "profile_partition", partition_id: int | None = None,
               metadata: dict[str, Any] | None = None, *, total_rows: int | None = None,
               enforce_retry_limit: bool = True) -> tuple[TaskInfo, bool]:
        """Register a task; return a snapshot of it and whether this submission counted a retry.

        Submitting a partition whose task failed is a retry of that task: the same id comes back
        and ``retry_count`` grows (unless :meth:`fail_task` already counted it with
        ``will_retry=True``). Past ``max_retries`` this raises :class:`BackendError`, unless
        ``enforce_retry_limit`` is false (the monitor passes false and reports instead).
        Submitting a task that is still queued or running returns its id unchanged.
        """
        task_id = (self.partition_task_id(partition_id, task_type) if partition_id is not None
                   else f"{task_type}-{uuid.uuid4().hex[:12]}")
        now = time.time()
        with self._lock:
            task = self._tasks.get(task_id)
            if task is not None and task.state in (TaskState.SUBMITTED, TaskState.RUNNING):
                return _snapshot(task), False
            retries = self._retries.get(task_id)
            counted = False
            if task is not None or retries is not None:
                previous = task.state if task is not None else TaskState.FAILED
                if previous == TaskState.COMPLETED:
                    retries = None  # a finished partition profiled again: a fresh task
                    self._retries.pop(task_id, None)
                elif previous != TaskState.RETRYING:
                    count = (retries or 0) + 1
                    if enforce_retry_limit and count > self.config.max_retries:
                        msg = (f"task {task_id} (partition {partition_id}) failed and has used all "
                               f"{self.config.max_retries} retries allowed by "
                               "TaskTrackerConfig.max_retries; raise the limit or fix the failure"
                               + (f": {task.error}" if task is not None and task.error else ""))
                        raise BackendError(msg)
                    retries = count
                    self._retries[task_id] = count
                    self._counts["retried"] += 1
                    counted = True
                    self._counts["failed"] -= 1  # its failure was not the last word after all
                if task is not None and task.state.is_final:
                    self._forget_finished(task_id)
            fresh = TaskInfo(task_id=task_id, task_type=task_type, partition_id=partition_id,
                             submitted_at=now, total_rows=total_rows,
                             metadata=dict(metadata or {}), retry_count=retries or 0,
                             attempts=task.attempts if task is not None and retries else 0)
            if task is not None and retries:
                fresh.error = task.error
            self._tasks[task_id] = fresh
            self._counts["submitted"] += 1
            return _snapshot(fresh), counted

    def start_task(self, task_id: str, worker_id: str | None = None) -> None:
        with self._lock:
            task = self._require(task_id)
            task.state = TaskState.RUNNING
            task.worker_id = worker_id
            task.started_at = time.time()
            task._t_started = self._clock()
            task.attempts += 1

    def update_progress(self, task_id: str, progress: float | None = None,
                        rows_processed: int | None = None) -> None:
        """Record how far a running task is (``progress`` in [0, 1])."""
        with self._lock:
            task = self._require(task_id)
            if rows_processed is not None:
                task.rows_processed = int(rows_processed)
            if not self.config.enable_progress_tracking:
                return
            if progress is None and rows_processed is not None and task.total_rows:
                progress = rows_processed / task.total_rows
            if progress is not None:
                task.progress = min(1.0, max(0.0, float(progress)))

    def complete_task(self, task_id: str, result: Any = None, *, rows_processed: int | None = None,
                      duration_seconds: float | None = None) -> TaskInfo:
        """Mark a task done; ``duration_seconds`` overrides the measured duration."""
        with self._lock:
            task = self._require(task_id)
            task.state = TaskState.COMPLETED
            task.result = result
            task.progress = 1.0
            if rows_processed is not None:
                task.rows_processed = int(rows_processed)
            task.completed_at = time.time()
            task.duration_seconds = (float(duration_seconds) if duration_seconds is not None
                                     else self._measured(task))
            self._counts["completed"] += 1
            self._duration_sum += task.duration_seconds
            self._finish(task_id)
            return _snapshot(task)

    def fail_task(self, task_id: str, error: BaseException | str, *, will_retry: bool = False) -> TaskInfo:
        """Record a failed attempt. With ``will_retry`` (and retries left) the task goes to
        RETRYING and its retry is counted now; otherwise it ends FAILED."""
        with self._lock:
            task = self._require(task_id)
            task.error = _describe(error)
            task.completed_at = time.time()
            task.duration_seconds = self._measured(task)
            self._counts["failed_attempts"] += 1
            retries = self._retries.get(task_id, task.retry_count)
            if will_retry and retries < self.config.max_retries:
                task.state = TaskState.RETRYING
                task.retry_count = retries + 1
                self._retries[task_id] = task.retry_count
                self._counts["retried"] += 1
            else:
                task.state = TaskState.FAILED
                self._counts["failed"] += 1
                if task.partition_id is not None:
                    self._retries.setdefault(task_id, retries)
                self._finish(task_id)
            return _snapshot(task)

    def can_retry(self, task_id: str) -> bool:
        """True when the task has not completed and has retries left."""
        with self._lock:
            task = self._tasks.get(task_id)
            if task is not None and task.state == TaskState.COMPLETED:
                return False
            if task is None and task_id not in self._retries:
                return False
            retries = self._retries.get(task_id, task.retry_count if task is not None else 0)
            if task is not None and task.state == TaskState.RETRYING:
                return True
            return retries < self.config.max_retries

    def check_timeouts(self) -> list[TaskInfo]:
        """End every RUNNING task older than ``timeout_seconds`` as TIMED_OUT and return them."""
        limit = self.config.timeout_seconds
        if limit is None:
            return []
        now = self._clock()
        expired = []
        with self._lock:
            for task in list(self._tasks.values()):
                if (task.state == TaskState.RUNNING and task._t_started is not None
                        and now - task._t_started > limit):
                    task.state = TaskState.TIMED_OUT
                    task.error = f"timed out after {limit:g}s (TaskTrackerConfig.timeout_seconds)"
                    task.completed_at = time.time()
                    task.duration_seconds = now - task._t_started
                    self._counts["timed_out"] += 1
                    self._counts["failed"] += 1
                    self._finish(task.task_id)
                    expired.append(_snapshot(task))
        return expired

    def reset(self) -> None:
        """Forget every task and count (a new run starts)."""
        with self._lock:
            self._tasks.clear()
            self._finished.clear()
            self._retries.clear()
            self._counts.clear()
            self._duration_sum = 0.0
            self._token = uuid.uuid4().hex[:8]

    # ---------------------------------------------------------------- queries
    def has_task(self, task_id: str) -> bool:
        return task_id in self._tasks

    def get_task(self, task_id: str) -> TaskInfo | None:
        with self._lock:
            task = self._tasks.get(task_id)
            return _snapshot(task) if task is not None else None

    def get_partition_task(self, partition_id: int, task_type: str = "profile_partition") -> TaskInfo | None:
        return self.get_task(self.partition_task_id(partition_id, task_type))

    def get_active_tasks(self) -> list[TaskInfo]:
        with self._lock:
            return [_snapshot(t) for t in self._tasks.values() if not t.state.is_final]

    def get_history(self, limit: int | None = None) -> list[TaskInfo]:
        """Finished tasks, oldest first (at most ``max_history_size``)."""
        with self._lock:
            ids = list(self._finished)[-limit:] if limit else list(self._finished)
            return [_snapshot(self._tasks[i]) for i in ids]

    def statistics(self) -> dict[str, Any]:
        with self._lock:
            completed = self._counts["completed"]
            failed = self._counts["failed"]
            active = sum(1 for t in self._tasks.values() if not t.state.is_final)
            return {
                "tasks_submitted": self._counts["submitted"],
                "tasks_completed": completed,
                "tasks_failed": failed,
                "failed_attempts": self._counts["failed_attempts"],
                "tasks_retried": self._counts["retried"],
                "tasks_timed_out": self._counts["timed_out"],
                "tasks_active": active,
                "avg_task_duration": self._duration_sum / completed if completed else 0.0,
                "success_rate": completed / (completed + failed) if completed + failed else 1.0,
            }

    # ---------------------------------------------------------------- internals
    def _require(self, task_id: str) -> TaskInfo:
        task = self._tasks.get(task_id)
        if task is None:
            msg = (f"unknown task id {task_id!r}: submit it with TaskTracker.submit_task() first "
                   "(or it left the bounded history; raise TaskTrackerConfig.max_history_size)")
            raise UnknownTaskError(msg)
        return task

    def _measured(self, task: TaskInfo) -> float:
        return self._clock() - task._t_started if task._t_started is not None else 0.0

    def _finish(self, task_id: str) -> None:
        self._finished.append(task_id)
        while len(self._finished) > self.config.max_history_size:
            old = self._finished.popleft()
            task = self._tasks.get(old)
            if task is not None and task.state.is_final:
                del self._tasks[old]

    def _forget_finished(self, task_id: str) -> None:
        try:
            self._finished.remove(task_id)
        except ValueError:
            return


def _snapshot(task: TaskInfo) -> TaskInfo:
    """A shallow copy, cheaper than ``dataclasses.replace`` on the bus's hot path."""
    copy = TaskInfo.__new__(TaskInfo)
    copy.__dict__.update(task.__dict__)
    copy.metadata = dict(task.metadata)
    return copy


def _describe(error: BaseException | str) -> str:
    if isinstance(error, BaseException):
        text = str(error)
        return f"{type(error).__name__}: {text}" if text else type(error).__name__
    return str(error)
