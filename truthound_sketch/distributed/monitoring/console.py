"""Callbacks for people watching a terminal: coloured event lines and a tqdm progress bar."""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import TextIO

from .callbacks import MonitorCallbackAdapter
from .events import EventSeverity, MonitorEvent, MonitorEventType

__all__ = ["ConsoleMonitorCallback", "ProgressBarCallback"]

_RESET = "\033[0m"
_COLOURS = {
    EventSeverity.DEBUG: "\033[2m",
    EventSeverity.INFO: "\033[36m",
    EventSeverity.WARNING: "\033[33m",
    EventSeverity.ERROR: "\033[31m",
    EventSeverity.CRITICAL: "\033[1;31m",
}
_GREEN = "\033[32m"
_GOOD = {MonitorEventType.TASK_COMPLETED, MonitorEventType.PARTITION_COMPLETE,
         MonitorEventType.WORKER_RECOVERED, MonitorEventType.WORKER_HEALTHY,
         MonitorEventType.AGGREGATION_COMPLETE}
_PROGRESS = {MonitorEventType.PROGRESS_UPDATE, MonitorEventType.PROGRESS_MILESTONE}


class ConsoleMonitorCallback(MonitorCallbackAdapter):
    """One line per event on ``stream`` (stderr by default), coloured by severity.

    ``show_events`` prints events of at least ``min_severity``; ``show_progress`` prints
    progress lines (at most one per ``progress_interval_seconds``, milestones always).
    Colours are off when ``use_colors`` is false or the ``NO_COLOR`` variable is set.
    """

    def __init__(self, show_progress: bool = True, show_events: bool = True, use_colors: bool = True,
                 *, stream: TextIO | None = None, min_severity: EventSeverity = EventSeverity.INFO,
                 progress_interval_seconds: float = 0.5) -> None:
        self.show_progress = show_progress
        self.show_events = show_events
        self.use_colors = use_colors and "NO_COLOR" not in os.environ
        self.min_severity = EventSeverity.parse(min_severity)
        self.progress_interval_seconds = progress_interval_seconds
        self._stream = stream
        self._lock = threading.Lock()
        self._last_progress = 0.0

    def on_event(self, event: MonitorEvent) -> None:
        if event.event_type in _PROGRESS:
            if not self.show_progress:
                return
            now = time.monotonic()
            if (event.event_type == MonitorEventType.PROGRESS_UPDATE
                    and now - self._last_progress < self.progress_interval_seconds):
                return
            self._last_progress = now
            line = self._progress_line(event)
        else:
            if not self.show_events or event.severity < self.min_severity:
                return
            line = event.message or event.event_type.name.lower()
        self._write(event, line)

    def _progress_line(self, event: MonitorEvent) -> str:
        d = event.data
        if event.event_type == MonitorEventType.PROGRESS_MILESTONE:
            return f"milestone {d.get('milestone', '?')}%"
        parts = [f"progress {d.get('percent', 0.0):5.1f}%"]
        if d.get("total_partitions"):
            parts.append(f"{d.get('completed_partitions', 0)}/{d['total_partitions']} partitions")
        if d.get("rows_per_second"):
            parts.append(f"{d['rows_per_second']:,.0f} rows/s")
        eta = d.get("eta_seconds")
        if isinstance(eta, (int, float)) and eta != float("inf"):
            parts.append(f"ETA {eta:.0f}s")
        return ", ".join(parts)

    def _write(self, event: MonitorEvent, line: str) -> None:
        stamp = time.strftime("%H:%M:%S", time.localtime(event.timestamp))
        label = f"{event.severity.name:<8}"
        if self.use_colors:
            colour = _GREEN if event.event_type in _GOOD else _COLOURS[event.severity]
            text = f"{stamp} {colour}{label}{_RESET} {line}\n"
        else:
            text = f"{stamp} {label} {line}\n"
        stream = self._stream or sys.stderr
        with self._lock:
            stream.write(text)

    def flush(self, timeout: float | None = None) -> bool:
        (self._stream or sys.stderr).flush()
        return True


class ProgressBarCallback(MonitorCallbackAdapter):
    """A tqdm bar over partitions (``unit="partitions"``) or rows (``unit="rows"``).

    The bar opens at MONITOR_START with the run's partition count (or total rows) and closes at
    MONITOR_STOP; failed partitions show as a ``failed=`` postfix.
    """

    def __init__(self, desc: str = "Profiling", unit: str = "partitions", *, file: TextIO | None = None,
                 leave: bool = True, disable: bool | None = False, **tqdm_kwargs) -> None:
        self.desc = desc
        self.unit = unit
        self.file = file
        self.leave = leave
        self.disable = disable
        self.tqdm_kwargs = tqdm_kwargs
        self._bar = None
        self._failed = 0
        self._lock = threading.Lock()

    @property
    def bar(self):
        """The underlying ``tqdm`` object (None outside a run)."""
        return self._bar

    def on_event(self, event: MonitorEvent) -> None:
        kind = event.event_type
        with self._lock:
            if kind == MonitorEventType.MONITOR_START:
                self._open(event)
            elif kind == MonitorEventType.PARTITION_COMPLETE:
                bar = self._bar or self._open(None)
                bar.update(int(event.data.get("rows", 0)) if self.unit == "rows" else 1)
            elif kind == MonitorEventType.PARTITION_ERROR:
                self._failed += 1
                bar = self._bar or self._open(None)
                bar.set_postfix(failed=self._failed, refresh=True)
            elif kind == MonitorEventType.MONITOR_STOP and self._bar is not None:
                self._bar.close()
                self._bar = None

    def _open(self, start: MonitorEvent | None):
        from tqdm.auto import tqdm

        if self._bar is not None:
            self._bar.close()
        total = None
        if start is not None:
            key = "total_rows" if self.unit == "rows" else "num_partitions"
            total = start.data.get(key)
        self._failed = 0
        self._bar = tqdm(total=total, desc=self.desc, unit=self.unit, file=self.file, leave=self.leave, disable=self.disable, **self.tqdm_kwargs)
        return self._bar

    def close(self) -> None:
        with self._lock:
            if self._bar is not None:
                self._bar.close()
                self._bar = None
