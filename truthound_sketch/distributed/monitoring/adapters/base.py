"""What every engine adapter does: poll its engine on a daemon thread and report workers.

An adapter turns its engine's view of workers into :class:`WorkerSample` objects
(:meth:`MonitorAdapter.sample`); the base class publishes them on the monitor's bus as
heartbeats, and reports workers that died or vanished with ``worker_lost``.
"""

from __future__ import annotations

import abc
import dataclasses
import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from truthound_sketch.errors import ConfigError

from ..events import EventSeverity, MonitorEvent, MonitorEventType

__all__ = ["MonitorAdapter", "WorkerSample"]

_log = logging.getLogger(__name__)


@dataclass
class WorkerSample:
    """One worker as an engine sees it at one poll.

    ``alive=False`` with ``graceful=False`` means the worker was lost (``reason`` says how);
    with ``graceful=True`` it left in an orderly way.
    """

    worker_id: str
    alive: bool = True
    cpu_percent: float | None = None
    memory_percent: float | None = None
    active_tasks: int = 0
    reason: str | None = None
    graceful: bool = False
    info: dict[str, Any] = field(default_factory=dict)


class MonitorAdapter(abc.ABC):
    """Base of the engine adapters. Subclasses implement :meth:`connect`, :meth:`sample` and
    :meth:`get_metrics`, and import their engine inside those methods only."""

    engine = "engine"

    def __init__(self, poll_interval_seconds: float = 5.0) -> None:
        if isinstance(poll_interval_seconds, bool) or not isinstance(poll_interval_seconds, (int, float)) \
                or not poll_interval_seconds > 0:
            msg = (f"{type(self).__name__}.poll_interval_seconds = {poll_interval_seconds!r} is not "
                   "valid: use a number of seconds greater than 0")
            raise ConfigError(msg)
        self.poll_interval_seconds = float(poll_interval_seconds)
        self.monitor: Any = None
        self.unavailable_reason: str | None = None
        self.poll_errors = 0
        self.last_error: str | None = None
        self.polls = 0
        self._known: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._announced = False

    # ---------------------------------------------------------------- engine side
    @abc.abstractmethod
    def connect(self) -> bool:
        """Reach the engine. Returns False (and sets :attr:`unavailable_reason`) when the
        engine cannot be observed; never raises for that."""

    @abc.abstractmethod
    def sample(self) -> list[WorkerSample]:
        """The engine's workers now."""

    @abc.abstractmethod
    def get_metrics(self) -> dict[str, Any]:
        """Engine-wide numbers (scheduler, cluster or pool)."""

    def get_workers(self) -> list[dict[str, Any]]:
        """The engine's workers now, as dicts (``worker_id``, ``alive``, ``cpu_percent``...)."""
        return [dataclasses.asdict(s) for s in self.sample()]

    # ---------------------------------------------------------------- bus side
    def attach(self, monitor: Any, *, start: bool = True) -> MonitorAdapter:
        """Report to ``monitor`` and (by default) start polling."""
        self.monitor = monitor
        monitor.attach_adapter(self)
        if start:
            self.start()
        return self

    def start(self) -> None:
        """Poll every ``poll_interval_seconds`` on a daemon thread (first poll at once)."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._loop, args=(self._stop,), daemon=True,
                                            name=f"monitor-{self.engine}-adapter")
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._stop.is_set()

    def poll_once(self) -> list[WorkerSample]:
        """Sample the engine once and publish the result on the attached monitor."""
        samples = self.sample()
        self.polls += 1
        monitor = self.monitor
        if monitor is None:
            self._reported(samples)
            return samples
        seen = set()
        for s in samples:
            if s.alive:
                seen.add(s.worker_id)
                monitor.worker_heartbeat(s.worker_id, cpu_percent=s.cpu_percent,
                                         memory_percent=s.memory_percent, active_tasks=s.active_tasks)
            elif s.graceful:
                monitor.worker_unregistered(s.worker_id, reason=s.reason or "left")
            else:
                monitor.worker_lost(s.worker_id, reason=s.reason or f"reported dead by {self.engine}")
        with self._lock:
            vanished = self._known - seen - {s.worker_id for s in samples}
            self._known = seen
        for worker_id in sorted(vanished):
            monitor.worker_lost(worker_id, reason=f"no longer reported by {self.engine}")
        self._reported(samples)
        return samples

    def _reported(self, samples: list[WorkerSample]) -> None:
        """Hook: ``samples`` were published (subclasses forget workers reported dead)."""

    def __enter__(self) -> MonitorAdapter:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # ---------------------------------------------------------------- helpers
    def _unavailable(self, reason: str) -> bool:
        """Record that the engine cannot be observed; warn once (log and bus). Returns False."""
        self.unavailable_reason = reason
        if not self._announced:
            self._announced = True
            _log.warning("%s: %s", type(self).__name__, reason)
            if self.monitor is not None:
                self.monitor.publish(MonitorEvent(
                    MonitorEventType.ADAPTER_UNAVAILABLE, f"{type(self).__name__}: {reason}",
                    EventSeverity.WARNING, data={"adapter": type(self).__name__, "engine": self.engine,
                                                 "reason": reason}))
        return False

    def _loop(self, stop: threading.Event) -> None:
        while True:
            try:
                self.poll_once()
            except Exception as exc:  # the engine may be restarting; keep polling
                self.poll_errors += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                if self.poll_errors == 1:
                    _log.warning("%s poll failed (further failures are counted in poll_errors): %s",
                                 type(self).__name__, self.last_error, exc_info=True)
            if stop.wait(self.poll_interval_seconds):
                return
