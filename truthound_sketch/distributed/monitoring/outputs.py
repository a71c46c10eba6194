"""Callbacks that keep a record: Python logging and event files (JSON Lines or JSON)."""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

from truthound_sketch.errors import ConfigError

from .callbacks import MonitorCallbackAdapter
from .events import EventSeverity, MonitorEvent, MonitorEventType

__all__ = ["LoggingMonitorCallback", "FileMonitorCallback"]

_LEVELS = {
    EventSeverity.DEBUG: logging.DEBUG,
    EventSeverity.INFO: logging.INFO,
    EventSeverity.WARNING: logging.WARNING,
    EventSeverity.ERROR: logging.ERROR,
    EventSeverity.CRITICAL: logging.CRITICAL,
}


class LoggingMonitorCallback(MonitorCallbackAdapter):
    """Logs each event on ``logger_name`` at the level matching its severity.

    Events below ``log_level`` are skipped. Every record carries the event as
    ``record.monitor_event`` (its :meth:`~MonitorEvent.to_dict`), for structured handlers.
    """

    def __init__(self, logger_name: str = "truthound_sketch.monitor", log_level: int | str = logging.INFO) -> None:
        self.logger = logging.getLogger(logger_name)
        if isinstance(log_level, str):
            level = logging.getLevelName(log_level.upper())
            if not isinstance(level, int):
                msg = (f"LoggingMonitorCallback.log_level = {log_level!r} is not valid: "
                       "use a logging level such as logging.INFO or 'WARNING'")
                raise ConfigError(msg)
            log_level = level
        self.log_level = int(log_level)

    def on_event(self, event: MonitorEvent) -> None:
        level = _LEVELS[event.severity]
        if level < self.log_level or not self.logger.isEnabledFor(level):
            return
        self.logger.log(level, "%s: %s", event.event_type.name, event.message,
                        extra={"monitor_event": event.to_dict()})


class FileMonitorCallback(MonitorCallbackAdapter):
    """Writes events to ``output_path``.

    ``format="jsonl"``: one JSON object per line, written (and flushed to the OS) as each event
    arrives, so the file is complete even if the process dies. ``format="json"``: one JSON array
    of the events, rewritten atomically at each flush and at MONITOR_STOP. Parent directories are
    created. ``append=True`` keeps earlier lines of a JSONL file.
    """

    def __init__(self, output_path: str | os.PathLike, format: str = "jsonl", *, append: bool = False) -> None:
        if format not in ("jsonl", "json"):
            msg = f"FileMonitorCallback.format = {format!r} is not valid: use 'jsonl' or 'json'"
            raise ConfigError(msg)
        self.output_path = Path(output_path)
        self.format = format
        self._lock = threading.Lock()
        self._events: list[dict[str, Any]] = []
        self._file = None
        try:
            self.output_path.parent.mkdir(parents=True, exist_ok=True)
            if format == "jsonl":
                self._file = open(self.output_path, "a" if append else "w", encoding="utf-8", buffering=1)
            else:
                self._write_json([])
        except OSError as exc:
            msg = (f"FileMonitorCallback cannot write to {str(self.output_path)!r} "
                   f"({exc.strerror or exc}); choose a writable output_path")
            raise ConfigError(msg) from exc

    def on_event(self, event: MonitorEvent) -> None:
        record = event.to_dict()
        with self._lock:
            if self.format == "jsonl":
                if self._file is None:
                    return
                self._file.write(json.dumps(record) + "\n")
            else:
                self._events.append(record)
                if event.event_type == MonitorEventType.MONITOR_STOP:
                    self._write_json(self._events)

    def flush(self, timeout: float | None = None) -> bool:
        with self._lock:
            if self._file is not None:
                self._file.flush()
            elif self.format == "json":
                self._write_json(self._events)
        return True

    def close(self) -> None:
        self.flush()
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def _write_json(self, events: list[dict[str, Any]]) -> None:
        tmp = self.output_path.with_name(self.output_path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(events, fh, indent=1)
        os.replace(tmp, self.output_path)
