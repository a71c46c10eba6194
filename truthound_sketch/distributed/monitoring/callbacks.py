"""The callback contract, and the two callbacks that combine others.

A callback is anything with ``on_event(event)``; plain functions taking one event work too.
Callbacks run on the thread that published the event, in the order they were added, so a slow
one slows the run: wrap it in :class:`AsyncMonitorCallback` to move it to its own thread.

Callbacks that can lose events or fail quietly count it: ``dropped_count`` (events never
delivered) and ``error_count`` (deliveries that raised or failed). The monitor adds these up in
``get_statistics()``.
"""

from __future__ import annotations

import abc
import logging
import queue
import threading
import time
from typing import Callable, Iterable, Union

from truthound_sketch.errors import ConfigError

from .events import MonitorEvent

__all__ = [
    "MonitorCallbackAdapter",
    "CallbackChain",
    "AsyncMonitorCallback",
    "CallbackLike",
    "callback_counts",
    "close_callback",
    "deliver",
    "flush_callback",
]

_log = logging.getLogger(__name__)


class MonitorCallbackAdapter(abc.ABC):
    """Base class of monitor callbacks. Subclasses implement :meth:`on_event`.

    >>> class Collect(MonitorCallbackAdapter):
    ...     def __init__(self):
    ...         self.seen = []
    ...     def on_event(self, event):
    ...         self.seen.append(event.event_type)
    """

    @abc.abstractmethod
    def on_event(self, event: MonitorEvent) -> None:
        """Handle one event. Exceptions are caught, logged and counted by the caller."""

    def flush(self, timeout: float | None = None) -> bool:
        """Deliver anything buffered, waiting at most ``timeout`` seconds; True if all went."""
        return True

    def close(self) -> None:
        """Flush and release resources (files, threads). The default only flushes."""
        self.flush()

    @property
    def dropped_count(self) -> int:
        """Events this callback accepted but never delivered."""
        return 0

    @property
    def error_count(self) -> int:
        """Deliveries that failed."""
        return 0

    def __call__(self, event: MonitorEvent) -> None:
        self.on_event(event)


CallbackLike = Union[MonitorCallbackAdapter, Callable[[MonitorEvent], None]]


def deliver(callback: CallbackLike, event: MonitorEvent) -> bool:
    """Call one callback; log and swallow its exception. Returns False if it raised."""
    try:
        if isinstance(callback, MonitorCallbackAdapter):
            callback.on_event(event)
        else:
            callback(event)
        return True
    except Exception:
        _log.exception("monitor callback %r failed on %s", callback, event.event_type.name)
        return False


def callback_counts(callback: CallbackLike) -> tuple[int, int]:
    """``(dropped_count, error_count)`` of a callback, 0 for plain functions."""
    return int(getattr(callback, "dropped_count", 0) or 0), int(getattr(callback, "error_count", 0) or 0)


def flush_callback(callback: CallbackLike, timeout: float | None) -> bool:
    fn = getattr(callback, "flush", None)
    if fn is None:
        return True
    try:
        if isinstance(callback, MonitorCallbackAdapter):
            return fn(timeout) is not False
        return fn() is not False
    except Exception:
        _log.exception("flushing monitor callback %r failed", callback)
        return False


def close_callback(callback: CallbackLike) -> None:
    fn = getattr(callback, "close", None)
    if fn is None:
        return
    try:
        fn()
    except Exception:
        _log.exception("closing monitor callback %r failed", callback)


class CallbackChain(MonitorCallbackAdapter):
    """Several callbacks called in order; one that raises is logged and counted, and the rest
    still run."""

    def __init__(self, callbacks: Iterable[CallbackLike] = ()) -> None:
        self._callbacks: list[CallbackLike] = list(callbacks)
        self._errors = 0
        self._lock = threading.Lock()

    @property
    def callbacks(self) -> list[CallbackLike]:
        return list(self._callbacks)

    def add(self, callback: CallbackLike) -> CallbackChain:
        with self._lock:
            self._callbacks = [*self._callbacks, callback]
        return self

    def remove(self, callback: CallbackLike) -> None:
        with self._lock:
            self._callbacks = [c for c in self._callbacks if c is not callback]

    def on_event(self, event: MonitorEvent) -> None:
        for callback in self._callbacks:
            if not deliver(callback, event):
                with self._lock:
                    self._errors += 1

    def flush(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        ok = True
        for callback in self._callbacks:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            ok = flush_callback(callback, left) and ok
        return ok

    def close(self) -> None:
        for callback in self._callbacks:
            close_callback(callback)

    @property
    def dropped_count(self) -> int:
        return sum(callback_counts(c)[0] for c in self._callbacks)

    @property
    def error_count(self) -> int:
        return self._errors + sum(callback_counts(c)[1] for c in self._callbacks)

    def __len__(self) -> int:
        return len(self._callbacks)


_STOP = object()


class AsyncMonitorCallback(MonitorCallbackAdapter):
    """Runs ``callback`` on a daemon thread behind a buffer of ``buffer_size`` events.

    Publishing never waits: when the buffer is full the event is dropped, counted in
    :attr:`dropped_count` and reported (a warning on the first drop and a summary when the
    callback is flushed or closed).
    """

    def __init__(self, callback: CallbackLike, buffer_size: int = 100, *,
                 flush_timeout_seconds: float = 5.0) -> None:
        if isinstance(buffer_size, bool) or not isinstance(buffer_size, int) or buffer_size < 1:
            msg = f"AsyncMonitorCallback.buffer_size = {buffer_size!r} is not valid: use a whole number >= 1"
            raise ConfigError(msg)
        self.callback = callback
        self.buffer_size = buffer_size
        self.flush_timeout_seconds = flush_timeout_seconds
        self._queue: queue.Queue = queue.Queue(maxsize=buffer_size)
        self._cond = threading.Condition()
        self._pending = 0
        self._dropped = 0
        self._reported_dropped = 0
        self._errors = 0
        self._thread: threading.Thread | None = None
        self._closed = False

    def on_event(self, event: MonitorEvent) -> None:
        if self._closed:
            self._drop(event, "the callback is closed")
            return
        self._ensure_thread()
        with self._cond:
            self._pending += 1
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            with self._cond:
                self._pending -= 1
                self._cond.notify_all()
            self._drop(event, f"its buffer of {self.buffer_size} events is full")

    def flush(self, timeout: float | None = None) -> bool:
        timeout = self.flush_timeout_seconds if timeout is None else timeout
        deadline = time.monotonic() + timeout
        with self._cond:
            drained = self._cond.wait_for(lambda: self._pending == 0,
                                          max(0.0, deadline - time.monotonic()))
        inner = flush_callback(self.callback, max(0.0, deadline - time.monotonic()))
        self._report_drops()
        if not drained:
            _log.warning("%r: %d events still queued after waiting %.1fs", self, self._pending, timeout)
        return drained and inner

    def close(self) -> None:
        if self._closed:
            return
        self.flush()
        self._closed = True
        thread = self._thread
        if thread is not None:
            try:
                self._queue.put_nowait(_STOP)
            except queue.Full:
                _log.warning("%r: closing with a full buffer; its thread ends with the process", self)
            thread.join(1.0)
        close_callback(self.callback)

    @property
    def dropped_count(self) -> int:
        return self._dropped + callback_counts(self.callback)[0]

    @property
    def error_count(self) -> int:
        return self._errors + callback_counts(self.callback)[1]

    @property
    def pending(self) -> int:
        return self._pending

    def __repr__(self) -> str:
        return f"AsyncMonitorCallback({self.callback!r}, buffer_size={self.buffer_size})"

    def _ensure_thread(self) -> None:
        if self._thread is not None:
            return
        with self._cond:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, daemon=True,
                                                name=f"monitor-callback-{id(self):x}")
                self._thread.start()

    def _run(self) -> None:
        while True:
            event = self._queue.get()
            if event is _STOP:
                return
            ok = deliver(self.callback, event)
            with self._cond:
                if not ok:
                    self._errors += 1
                self._pending -= 1
                self._cond.notify_all()

    def _drop(self, event: MonitorEvent, why: str) -> None:
        with self._cond:
            self._dropped += 1
            first = self._dropped == 1
        if first:
            _log.warning("%r dropped event %s because %s; further drops are counted "
                         "(see dropped_count) and summarised on flush", self, event.event_type.name, why)

    def _report_drops(self) -> None:
        with self._cond:
            new = self._dropped - self._reported_dropped
            self._reported_dropped = self._dropped
            total = self._dropped
        if new:
            _log.warning("%r dropped %d events (%d in total): the callback is slower than the run; "
                         "raise buffer_size or make the callback faster", self, new, total)
