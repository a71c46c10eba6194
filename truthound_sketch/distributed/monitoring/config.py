"""Settings of the monitor and of each of its parts, with presets.

Every option is validated when the object is built: a bad value raises
:class:`~truthound_sketch.errors.ConfigError` naming the field and the accepted range.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from truthound_sketch.errors import ConfigError

from .events import EventSeverity

__all__ = [
    "TaskTrackerConfig",
    "HealthCheckConfig",
    "MetricsConfig",
    "CallbackConfig",
    "MonitorConfig",
]

_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _fail(owner: str, name: str, value: Any, need: str) -> None:
    msg = f"{owner}.{name} = {value!r} is not valid: {need}"
    raise ConfigError(msg)


def _positive(owner: str, name: str, value: Any, *, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        _fail(owner, name, value, "use a number greater than 0" + (" or None" if allow_none else ""))


def _non_negative_int(owner: str, name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        _fail(owner, name, value, "use a whole number >= 0")


def _percent(owner: str, name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 100:
        _fail(owner, name, value, "use a percentage between 0 and 100")


def _fraction(owner: str, name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        _fail(owner, name, value, "use a fraction between 0 and 1")


@dataclass
class TaskTrackerConfig:
    """How tasks are tracked: history kept, timeout of a running task, retries allowed."""

    max_history_size: int = 1000
    timeout_seconds: float | None = 3600.0
    max_retries: int = 3
    enable_progress_tracking: bool = True

    def __post_init__(self) -> None:
        owner = "TaskTrackerConfig"
        _non_negative_int(owner, "max_history_size", self.max_history_size)
        _positive(owner, "timeout_seconds", self.timeout_seconds, allow_none=True)
        _non_negative_int(owner, "max_retries", self.max_retries)


@dataclass
class HealthCheckConfig:
    """When a worker counts as degraded, unhealthy or critical.

    A worker is UNHEALTHY when no heartbeat arrived for ``heartbeat_timeout_seconds`` or when it
    holds running tasks without any task activity for ``stall_threshold_seconds`` (stalled);
    CRITICAL when its memory reaches ``memory_critical_percent`` or its error rate
    ``error_rate_critical``; DEGRADED at the warning thresholds. Error rates count only once a
    worker has finished ``min_tasks_for_error_rate`` tasks. ``check_interval_seconds`` is how often
    a running monitor looks for silent and stalled workers.
    """

    heartbeat_timeout_seconds: float = 30.0
    stall_threshold_seconds: float = 60.0
    memory_warning_percent: float = 80.0
    memory_critical_percent: float = 95.0
    cpu_warning_percent: float = 90.0
    error_rate_warning: float = 0.1
    error_rate_critical: float = 0.25
    min_tasks_for_error_rate: int = 10
    check_interval_seconds: float = 5.0

    def __post_init__(self) -> None:
        owner = "HealthCheckConfig"
        _positive(owner, "heartbeat_timeout_seconds", self.heartbeat_timeout_seconds)
        _positive(owner, "stall_threshold_seconds", self.stall_threshold_seconds)
        _positive(owner, "check_interval_seconds", self.check_interval_seconds)
        for name in ("memory_warning_percent", "memory_critical_percent", "cpu_warning_percent"):
            _percent(owner, name, getattr(self, name))
        _fraction(owner, "error_rate_warning", self.error_rate_warning)
        _fraction(owner, "error_rate_critical", self.error_rate_critical)
        _non_negative_int(owner, "min_tasks_for_error_rate", self.min_tasks_for_error_rate)
        if self.memory_warning_percent > self.memory_critical_percent:
            _fail(owner, "memory_warning_percent", self.memory_warning_percent,
                  f"it must not exceed memory_critical_percent ({self.memory_critical_percent})")
        if self.error_rate_warning > self.error_rate_critical:
            _fail(owner, "error_rate_warning", self.error_rate_warning,
                  f"it must not exceed error_rate_critical ({self.error_rate_critical})")


@dataclass
class MetricsConfig:
    """What the metrics collector keeps and whether it serves Prometheus over HTTP.

    The HTTP endpoint binds ``prometheus_host`` (127.0.0.1 unless you say otherwise) on
    ``prometheus_port``; port 0 picks a free port, readable afterwards from
    ``DistributedMonitor.prometheus_port``. A monitor starts the endpoint when a run starts and
    stops it when the run finishes, unless ``keep_prometheus_server`` is set.
    """

    enable_metrics: bool = True
    collection_interval_seconds: float = 5.0
    enable_percentiles: bool = True
    percentiles: list[float] = field(default_factory=lambda: [0.5, 0.75, 0.9, 0.95, 0.99])
    enable_prometheus: bool = False
    prometheus_port: int = 9090
    prometheus_host: str = "127.0.0.1"
    prometheus_namespace: str = "truthound"
    keep_prometheus_server: bool = False
    max_duration_samples: int = 10_000

    def __post_init__(self) -> None:
        owner = "MetricsConfig"
        _positive(owner, "collection_interval_seconds", self.collection_interval_seconds)
        self.percentiles = list(self.percentiles)
        for q in self.percentiles:
            if isinstance(q, bool) or not isinstance(q, (int, float)) or not 0 < q < 1:
                _fail(owner, "percentiles", self.percentiles,
                      "each percentile is a fraction strictly between 0 and 1, e.g. 0.99")
        port = self.prometheus_port
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            _fail(owner, "prometheus_port", port, "use a TCP port 1-65535, or 0 for any free port")
        if not self.prometheus_namespace.replace("_", "").isalnum():
            _fail(owner, "prometheus_namespace", self.prometheus_namespace,
                  "use letters, digits and underscores only")
        _positive(owner, "max_duration_samples", self.max_duration_samples)


@dataclass
class CallbackConfig:
    """Callbacks a monitor builds for itself from its configuration.

    Callbacks passed to ``DistributedMonitor(callbacks=[...])`` come on top of these. With
    ``async_dispatch`` each configured callback runs on its own thread behind a bounded buffer
    of ``async_buffer_size`` events (events that do not fit are counted as dropped).
    """

    console: bool = False
    console_show_progress: bool = True
    console_use_colors: bool = True
    logging: bool = False
    logger_name: str = "truthound_sketch.monitor"
    file_path: str | None = None
    file_format: str = "jsonl"
    webhook_url: str | None = None
    webhook_headers: dict[str, str] = field(default_factory=dict)
    webhook_min_severity: EventSeverity = EventSeverity.WARNING
    async_dispatch: bool = False
    async_buffer_size: int = 1000
    flush_timeout_seconds: float = 5.0

    def __post_init__(self) -> None:
        owner = "CallbackConfig"
        if self.file_format not in ("jsonl", "json"):
            _fail(owner, "file_format", self.file_format, "use 'jsonl' or 'json'")
        self.webhook_min_severity = EventSeverity.parse(self.webhook_min_severity)
        _positive(owner, "async_buffer_size", self.async_buffer_size)
        _positive(owner, "flush_timeout_seconds", self.flush_timeout_seconds)


@dataclass
class MonitorConfig:
    """Everything a :class:`DistributedMonitor` does, switched on or off.

    ``log_level`` is the lowest severity the configured logging callback writes.
    ``event_history_size`` bounds ``DistributedMonitor.events`` (0 keeps none).
    """

    enable_monitoring: bool = True
    enable_task_tracking: bool = True
    enable_progress_aggregation: bool = True
    enable_health_monitoring: bool = True
    enable_metrics_collection: bool = True
    task_tracker: TaskTrackerConfig = field(default_factory=TaskTrackerConfig)
    health_check: HealthCheckConfig = field(default_factory=HealthCheckConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    callbacks: CallbackConfig = field(default_factory=CallbackConfig)
    log_level: str = "INFO"
    event_history_size: int = 1000

    def __post_init__(self) -> None:
        level = str(self.log_level).upper()
        if level not in _LOG_LEVELS:
            _fail("MonitorConfig", "log_level", self.log_level, f"use one of {', '.join(_LOG_LEVELS)}")
        self.log_level = level
        _non_negative_int("MonitorConfig", "event_history_size", self.event_history_size)
        for name, kind in (("task_tracker", TaskTrackerConfig), ("health_check", HealthCheckConfig),
                           ("metrics", MetricsConfig), ("callbacks", CallbackConfig)):
            if not isinstance(getattr(self, name), kind):
                _fail("MonitorConfig", name, getattr(self, name), f"pass a {kind.__name__}")

    @property
    def log_level_number(self) -> int:
        """``log_level`` as a :mod:`logging` level number."""
        return logging.getLevelName(self.log_level)

    @classmethod
    def minimal(cls) -> MonitorConfig:
        """Task bookkeeping only: no progress, health or metrics; the cheapest setting."""
        return cls(
            enable_progress_aggregation=False,
            enable_health_monitoring=False,
            enable_metrics_collection=False,
            task_tracker=TaskTrackerConfig(max_history_size=100, enable_progress_tracking=False),
            metrics=MetricsConfig(enable_metrics=False, enable_percentiles=False),
            event_history_size=100,
        )

    @classmethod
    def standard(cls) -> MonitorConfig:
        """Tasks, progress, worker health and in-process metrics (the default)."""
        return cls()

    @classmethod
    def full(cls) -> MonitorConfig:
        """Everything on, including a Prometheus endpoint on a free port of 127.0.0.1."""
        return cls(
            task_tracker=TaskTrackerConfig(max_history_size=10_000),
            health_check=HealthCheckConfig(check_interval_seconds=1.0),
            metrics=MetricsConfig(enable_prometheus=True, prometheus_port=0,
                                  collection_interval_seconds=1.0),
            event_history_size=10_000,
        )

    @classmethod
    def production(cls, *, prometheus_port: int = 9090, prometheus_host: str = "127.0.0.1",
                   log_path: str | None = None) -> MonitorConfig:
        """Long-running services: Prometheus on ``prometheus_port``, structured logging of
        warnings and worse, optionally a JSONL event log, callbacks off the engine's thread."""
        return cls(
            task_tracker=TaskTrackerConfig(max_history_size=5000, timeout_seconds=3600.0),
            health_check=HealthCheckConfig(),
            metrics=MetricsConfig(enable_prometheus=True, prometheus_port=prometheus_port,
                                  prometheus_host=prometheus_host),
            callbacks=CallbackConfig(logging=True, file_path=log_path, async_dispatch=True),
            log_level="WARNING",
            event_history_size=1000,
        )
