"""Overall progress of a run, aggregated from its partitions.

:class:`DistributedProgressAggregator` turns per-partition progress into one percentage, a
throughput and an ETA, and fires a milestone every ``milestone_interval`` percent.
:class:`StreamingProgressAggregator` adds a ticker that reports a smoothly interpolated
progress at a fixed interval, for progress bars and dashboards.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import Callable

from truthound_sketch.errors import ConfigError

from .events import EventSeverity, MonitorEvent, MonitorEventType

__all__ = [
    "PartitionProgress",
    "AggregatedProgress",
    "DistributedProgressAggregator",
    "StreamingProgressAggregator",
]

_log = logging.getLogger(__name__)


@dataclass
class PartitionProgress:
    partition_id: int
    fraction: float = 0.0
    rows_processed: int = 0
    total_rows: int | None = None
    state: str = "pending"  # pending, running, completed, failed


@dataclass(frozen=True)
class AggregatedProgress:
    """Progress of the whole run at one instant. ``estimated_remaining_seconds`` is ``inf``
    while nothing has progressed yet and 0 once everything is done."""

    percent: float
    completed_partitions: int
    failed_partitions: int
    running_partitions: int
    total_partitions: int
    rows_processed: int
    total_rows: int | None
    elapsed_seconds: float
    rows_per_second: float
    estimated_remaining_seconds: float
    interpolated: bool = False

    @property
    def progress(self) -> float:
        """``percent`` as a fraction in [0, 1]."""
        return self.percent / 100.0

    @property
    def is_complete(self) -> bool:
        return self.total_partitions > 0 and self.completed_partitions >= self.total_partitions


class DistributedProgressAggregator:
    """Thread-safe aggregate of partition progress.

    Progress is weighted by rows when every partition's row count is known, else each partition
    weighs the same. Each update costs O(1). ``on_progress`` receives an
    :class:`AggregatedProgress` after every change; ``on_milestone`` receives each milestone
    percentage crossed (10, 20, ... with ``milestone_interval=10``), and ``on_event`` a
    PROGRESS_MILESTONE :class:`MonitorEvent` for it.
    """

    def __init__(self, on_progress: Callable[[AggregatedProgress], None] | None = None, *,
                 milestone_interval: float | None = 10, on_milestone: Callable[[int], None] | None = None,
                 on_event: Callable[[MonitorEvent], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if milestone_interval is not None and not 0 < milestone_interval <= 100:
            msg = (f"milestone_interval = {milestone_interval!r} is not valid: use a percentage "
                   "between 0 (exclusive) and 100, or None for no milestones")
            raise ConfigError(msg)
        self.on_progress = on_progress
        self.on_milestone = on_milestone
        self.on_event = on_event
        self.milestone_interval = milestone_interval
        self._clock = clock
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._parts: dict[int, PartitionProgress] = {}
            self._total_partitions = 0
            self._fraction_sum = 0.0
            self._rows_sum = 0
            self._known_totals = 0
            self._total_rows_sum = 0
            self._completed = 0
            self._failed = 0
            self._running = 0
            self._t0: float | None = None
            self._last_milestone = 0.0
            self.last_progress: AggregatedProgress | None = None

    # ---------------------------------------------------------------- updates
    def set_total_partitions(self, total: int) -> None:
        with self._lock:
            self._total_partitions = max(0, int(total))

    def register_partition(self, partition_id: int, total_rows: int | None = None) -> None:
        """Announce a partition (and its size) before it starts."""
        with self._lock:
            self._part(partition_id, total_rows)

    def start_partition(self, partition_id: int, total_rows: int | None = None) -> list[int]:
        with self._lock:
            if self._t0 is None:
                self._t0 = self._clock()
            part = self._part(partition_id, total_rows)
            self._leave_state(part)
            self._set(part, 0.0, 0)
            part.state = "running"
            self._running += 1
        return self._after_change()

    def update_partition(self, partition_id: int, progress: float | None = None,
                         rows_processed: int | None = None) -> list[int]:
        """Report a running partition's progress (fraction in [0, 1]) and/or rows done."""
        with self._lock:
            part = self._part(partition_id, None)
            if part.state != "running":
                if part.state == "completed":
                    return []
                self._leave_state(part)
                part.state = "running"
                self._running += 1
                if self._t0 is None:
                    self._t0 = self._clock()
            rows = part.rows_processed if rows_processed is None else int(rows_processed)
            if progress is None:
                progress = rows / part.total_rows if part.total_rows else part.fraction
            self._set(part, min(0.999999, max(0.0, float(progress))), rows)
        return self._after_change()

    def complete_partition(self, partition_id: int, rows_processed: int | None = None) -> list[int]:
        with self._lock:
            if self._t0 is None:
                self._t0 = self._clock()
            part = self._part(partition_id, None)
            self._leave_state(part)
            rows = part.rows_processed if rows_processed is None else int(rows_processed)
            if part.total_rows is None and rows_processed is not None:
                part.total_rows = rows
                self._known_totals += 1
                self._total_rows_sum += rows
            self._set(part, 1.0, rows)
            part.state = "completed"
            self._completed += 1
        return self._after_change()

    def fail_partition(self, partition_id: int) -> list[int]:
        """A partition failed: its progress no longer counts (a retry starts it again)."""
        with self._lock:
            part = self._part(partition_id, None)
            self._leave_state(part)
            self._set(part, 0.0, 0)
            part.state = "failed"
            self._failed += 1
        return self._after_change()

    # ---------------------------------------------------------------- reading
    def get_progress(self) -> AggregatedProgress:
        """The progress now (``last_progress`` is the one computed at the latest update)."""
        with self._lock:
            return self._snapshot()

    # ---------------------------------------------------------------- internals
    def _part(self, partition_id: int, total_rows: int | None) -> PartitionProgress:
        part = self._parts.get(partition_id)
        if part is None:
            part = self._parts[partition_id] = PartitionProgress(partition_id)
        if total_rows is not None and part.total_rows is None:
            part.total_rows = int(total_rows)
            self._known_totals += 1
            self._total_rows_sum += part.total_rows
        return part

    def _leave_state(self, part: PartitionProgress) -> None:
        if part.state == "running":
            self._running -= 1
        elif part.state == "completed":
            self._completed -= 1
        elif part.state == "failed":
            self._failed -= 1
        part.state = "pending"

    def _set(self, part: PartitionProgress, fraction: float, rows: int) -> None:
        self._fraction_sum += fraction - part.fraction
        self._rows_sum += rows - part.rows_processed
        part.fraction = fraction
        part.rows_processed = rows

    def _fraction(self) -> float:
        total = max(self._total_partitions, len(self._parts))
        if total == 0:
            return 0.0
        if self._completed >= total:
            return 1.0
        if self._known_totals == total and self._total_rows_sum > 0:
            fraction = self._rows_sum / self._total_rows_sum
        else:
            fraction = self._fraction_sum / total
        return min(0.999999, fraction)

    def _snapshot(self, *, interpolated: bool = False) -> AggregatedProgress:
        fraction = self._fraction()
        elapsed = self._clock() - self._t0 if self._t0 is not None else 0.0
        total = max(self._total_partitions, len(self._parts))
        return _progress(fraction, self._completed, self._failed, self._running, total,
                         self._rows_sum, self._total_rows_sum if self._known_totals == total else None,
                         elapsed, interpolated)

    def _after_change(self) -> list[int]:
        with self._lock:
            snap = self.last_progress = self._snapshot()
            crossed: list[int] = []
            step = self.milestone_interval
            if step:
                reached = math.floor(snap.percent / step + 1e-9) * step
                while self._last_milestone + step <= reached + 1e-9:
                    self._last_milestone += step
                    crossed.append(int(round(self._last_milestone)))
        self._publish(snap, crossed)
        return crossed

    def _publish(self, snap: AggregatedProgress, crossed: list[int]) -> None:
        _call(self.on_progress, snap)
        for m in crossed:
            _call(self.on_milestone, m)
            if self.on_event is not None:
                _call(self.on_event, milestone_event(m, snap))


def milestone_event(milestone: int, snap: AggregatedProgress) -> MonitorEvent:
    return MonitorEvent(
        MonitorEventType.PROGRESS_MILESTONE, f"{milestone}% of partitions profiled",
        EventSeverity.INFO,
        data={"milestone": milestone, "percent": snap.percent,
              "completed_partitions": snap.completed_partitions,
              "total_partitions": snap.total_partitions, "rows_processed": snap.rows_processed},
    )


def _progress(fraction: float, completed: int, failed: int, running: int, total: int, rows: int,
              total_rows: int | None, elapsed: float, interpolated: bool) -> AggregatedProgress:
    if fraction >= 1.0:
        eta = 0.0
    elif fraction > 0 and elapsed > 0:
        eta = elapsed * (1.0 - fraction) / fraction
    else:
        eta = math.inf
    return AggregatedProgress(
        percent=100.0 * fraction, completed_partitions=completed, failed_partitions=failed,
        running_partitions=running, total_partitions=total, rows_processed=int(rows),
        total_rows=total_rows, elapsed_seconds=elapsed,
        rows_per_second=rows / elapsed if elapsed > 0 else 0.0,
        estimated_remaining_seconds=eta, interpolated=interpolated,
    )


def _call(fn: Callable | None, arg: object) -> None:
    if fn is None:
        return
    try:
        fn(arg)
    except Exception:  # a display callback must never break the run
        _log.exception("progress callback %r failed", fn)


class StreamingProgressAggregator(DistributedProgressAggregator):
    """An aggregator whose ``on_progress`` is called every ``interpolation_interval_ms`` from a
    daemon thread, with progress interpolated between real updates at the run's average rate.

    Reported progress never goes backwards and never reaches 100% before the run does. The
    ticker starts with the first partition (or :meth:`start`) and stops when every partition
    is complete (after a final 100% report) or on :meth:`stop`.
    """

    def __init__(self, on_progress: Callable[[AggregatedProgress], None] | None = None, *,
                 interpolation_interval_ms: float = 100, **kwargs) -> None:
        if not interpolation_interval_ms > 0:
            msg = (f"interpolation_interval_ms = {interpolation_interval_ms!r} is not valid: "
                   "use a number of milliseconds greater than 0")
            raise ConfigError(msg)
        self.interpolation_interval_ms = interpolation_interval_ms
        self._stream_to = on_progress
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._reported = 0.0
        self._real = (0.0, 0.0, 0)  # (time, fraction, rows) of the last real update
        super().__init__(None, **kwargs)

    def start(self) -> None:
        thread = self._thread
        if thread is not None and thread.is_alive():
            if not self._stop.is_set():
                return
            thread.join(1.0)  # the previous run's ticker is finishing
        with self._lock:
            if self._thread is not None and self._thread.is_alive() and not self._stop.is_set():
                return
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="progress-stream", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def reset(self) -> None:
        super().reset()
        self._reported = 0.0
        self._real = (0.0, 0.0, 0)

    def start_partition(self, partition_id: int, total_rows: int | None = None) -> list[int]:
        crossed = super().start_partition(partition_id, total_rows)
        self.start()
        return crossed

    def get_interpolated_progress(self) -> AggregatedProgress:
        """The progress the ticker would report now."""
        with self._lock:
            real = self._snapshot()
            if real.is_complete or real.elapsed_seconds <= 0:
                self._reported = max(self._reported, real.progress)
                return real
            t_real, f_real, rows_real = self._real
            now_elapsed = real.elapsed_seconds
            rate = f_real / t_real if t_real > 0 else 0.0
            rows_rate = rows_real / t_real if t_real > 0 else 0.0
            total = real.total_partitions or 1
            cap = min(0.99, (real.completed_partitions + real.running_partitions) / total)
            guess = min(cap, real.progress + rate * max(0.0, now_elapsed - t_real))
            fraction = max(self._reported, real.progress, guess)
            self._reported = fraction
            rows = max(real.rows_processed,
                       int(rows_real + rows_rate * max(0.0, now_elapsed - t_real)))
            if real.total_rows:
                rows = min(rows, real.total_rows)
            return _progress(fraction, real.completed_partitions, real.failed_partitions,
                             real.running_partitions, real.total_partitions, rows, real.total_rows,
                             now_elapsed, True)

    def _publish(self, snap: AggregatedProgress, crossed: list[int]) -> None:
        with self._lock:
            self._real = (snap.elapsed_seconds, snap.progress, snap.rows_processed)
        super()._publish(snap, crossed)  # on_progress is None here: milestones/events only
        if snap.is_complete:
            self._stop.set()

    def _run(self) -> None:
        interval = self.interpolation_interval_ms / 1000.0
        while not self._stop.wait(interval):
            _call(self._stream_to, self.get_interpolated_progress())
        _call(self._stream_to, self.get_interpolated_progress())
