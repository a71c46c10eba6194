"""Ready-made monitors for common set-ups."""

from __future__ import annotations

import dataclasses
import logging
from typing import TextIO

from .config import CallbackConfig, MonitorConfig
from .console import ConsoleMonitorCallback, ProgressBarCallback
from .events import EventSeverity
from .monitor import DistributedMonitor
from .outputs import FileMonitorCallback, LoggingMonitorCallback

__all__ = ["MonitorFactory"]


class MonitorFactory:
    """Static constructors of :class:`DistributedMonitor`. Each accepts ``config=`` to start from
    another :class:`MonitorConfig` (the standard one by default)."""

    @staticmethod
    def minimal() -> DistributedMonitor:
        """Task and retry bookkeeping only; no callbacks."""
        return DistributedMonitor(MonitorConfig.minimal())

    @staticmethod
    def standard(config: MonitorConfig | None = None) -> DistributedMonitor:
        return DistributedMonitor(config or MonitorConfig.standard())

    @staticmethod
    def with_console(show_progress: bool = True, use_colors: bool = True, show_events: bool = True, *,
                     stream: TextIO | None = None, config: MonitorConfig | None = None) -> DistributedMonitor:
        """Coloured event and progress lines on stderr (or ``stream``)."""
        console = ConsoleMonitorCallback(show_progress=show_progress, show_events=show_events,
                                         use_colors=use_colors, stream=stream)
        return DistributedMonitor(config or MonitorConfig.standard(), callbacks=[console])

    @staticmethod
    def with_progress_bar(desc: str = "Profiling", unit: str = "partitions", *,
                          config: MonitorConfig | None = None, **tqdm_kwargs) -> DistributedMonitor:
        """A tqdm progress bar."""
        bar = ProgressBarCallback(desc=desc, unit=unit, **tqdm_kwargs)
        return DistributedMonitor(config or MonitorConfig.standard(), callbacks=[bar])

    @staticmethod
    def with_logging(logger_name: str = "truthound_sketch.monitor", log_level: int | str = logging.INFO, *,
                     config: MonitorConfig | None = None) -> DistributedMonitor:
        """Every event of ``log_level`` or worse on the logger ``logger_name``."""
        cb = LoggingMonitorCallback(logger_name=logger_name, log_level=log_level)
        return DistributedMonitor(config or MonitorConfig.standard(), callbacks=[cb])

    @staticmethod
    def with_file(output_path: str, format: str = "jsonl", *,
                  config: MonitorConfig | None = None) -> DistributedMonitor:
        """Every event written to ``output_path`` (JSON Lines, or one JSON array)."""
        cb = FileMonitorCallback(output_path, format=format)
        return DistributedMonitor(config or MonitorConfig.standard(), callbacks=[cb])

    @staticmethod
    def production(log_path: str | None = None, webhook_url: str | None = None, *,
                   webhook_headers: dict[str, str] | None = None,
                   webhook_min_severity: EventSeverity | str = EventSeverity.WARNING,
                   prometheus_port: int = 9090, prometheus_host: str = "127.0.0.1",
                   logger_name: str = "truthound_sketch.monitor") -> DistributedMonitor:
        """:meth:`MonitorConfig.production` plus, when given, a JSONL event log at ``log_path``
        and alerts (warnings and worse by default) posted to ``webhook_url``."""
        config = MonitorConfig.production(prometheus_port=prometheus_port, prometheus_host=prometheus_host,
                                          log_path=log_path)
        config.callbacks = dataclasses.replace(
            config.callbacks, logger_name=logger_name, webhook_url=webhook_url,
            webhook_headers=dict(webhook_headers or {}),
            webhook_min_severity=EventSeverity.parse(webhook_min_severity))
        return DistributedMonitor(config)

    @staticmethod
    def from_callback_config(callbacks: CallbackConfig, config: MonitorConfig | None = None) -> DistributedMonitor:
        """A monitor whose callbacks are built from ``callbacks``."""
        base = config or MonitorConfig.standard()
        return DistributedMonitor(dataclasses.replace(base, callbacks=callbacks))
