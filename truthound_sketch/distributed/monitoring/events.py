"""The events that travel on the monitoring bus.

Every observation a run produces (a partition started, a worker stopped answering, the run
ended) is one :class:`MonitorEvent`: a type, an ordered severity, a wall-clock timestamp, a
one-line message and a small dict of data. Callbacks receive them in the order they happened.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field
from typing import Any

from truthound_sketch.errors import ConfigError

__all__ = ["MonitorEventType", "EventSeverity", "MonitorEvent"]


class MonitorEventType(str, enum.Enum):
    """What happened. The value is the stable name written to files and webhooks."""

    # Task lifecycle
    TASK_SUBMITTED = "task_submitted"
    TASK_STARTED = "task_started"
    TASK_PROGRESS = "task_progress"
    TASK_COMPLETED = "task_completed"
    TASK_FAILED = "task_failed"
    TASK_RETRYING = "task_retrying"
    # Partitions
    PARTITION_START = "partition_start"
    PARTITION_COMPLETE = "partition_complete"
    PARTITION_ERROR = "partition_error"
    # Progress
    PROGRESS_UPDATE = "progress_update"
    PROGRESS_MILESTONE = "progress_milestone"
    AGGREGATION_COMPLETE = "aggregation_complete"
    # Workers
    WORKER_REGISTERED = "worker_registered"
    WORKER_UNREGISTERED = "worker_unregistered"
    WORKER_HEALTHY = "worker_healthy"
    WORKER_UNHEALTHY = "worker_unhealthy"
    WORKER_STALLED = "worker_stalled"
    WORKER_RECOVERED = "worker_recovered"
    # Monitor lifecycle
    MONITOR_START = "monitor_start"
    MONITOR_STOP = "monitor_stop"
    # An engine adapter cannot observe its engine (for example Spark Connect has no SparkContext)
    ADAPTER_UNAVAILABLE = "adapter_unavailable"

    def __str__(self) -> str:
        return self.name


class EventSeverity(enum.IntEnum):
    """How much an event matters; ordered, so ``event.severity >= EventSeverity.WARNING`` works."""

    DEBUG = 10
    INFO = 20
    WARNING = 30
    ERROR = 40
    CRITICAL = 50

    def __str__(self) -> str:
        return self.name

    @classmethod
    def parse(cls, value: EventSeverity | str | int) -> EventSeverity:
        """Accept a member, its name (any case) or its number."""
        if isinstance(value, cls):
            return value
        if isinstance(value, str):
            try:
                return cls[value.strip().upper()]
            except KeyError:
                names = ", ".join(m.name for m in cls)
                msg = f"unknown event severity {value!r}; use one of {names}"
                raise ConfigError(msg) from None
        try:
            return cls(int(value))
        except (TypeError, ValueError):
            names = ", ".join(m.name for m in cls)
            msg = f"unknown event severity {value!r}; use one of {names}"
            raise ConfigError(msg) from None


@dataclass(slots=True)
class MonitorEvent:
    """One observation on the bus.

    ``sequence`` numbers the events of one monitor from 1 in the order they were dispatched
    (the monitor sets it; treat events as read-only);
    ``timestamp`` is seconds since the epoch. Ids that the event is about are both attributes
    and keys of :meth:`to_dict`.
    """

    event_type: MonitorEventType
    message: str = ""
    severity: EventSeverity = EventSeverity.INFO
    timestamp: float = field(default_factory=time.time)
    data: dict[str, Any] = field(default_factory=dict)
    task_id: str | None = None
    partition_id: int | None = None
    worker_id: str | None = None
    sequence: int = 0

    @property
    def type(self) -> MonitorEventType:
        """Alias of :attr:`event_type`."""
        return self.event_type

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: enum members become their names, data is copied."""
        return {
            "sequence": self.sequence,
            "event_type": self.event_type.value,
            "severity": self.severity.name,
            "timestamp": self.timestamp,
            "message": self.message,
            "task_id": self.task_id,
            "partition_id": self.partition_id,
            "worker_id": self.worker_id,
            "data": _jsonable(self.data),
        }


def _jsonable(value: Any) -> Any:
    """Make ``value`` safe for ``json.dumps`` (enums by name, unknown objects by ``str``)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    if isinstance(value, enum.Enum):
        return value.name
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)
