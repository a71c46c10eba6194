"""Posting events to an HTTP endpoint (Slack, PagerDuty, an alert relay) without slowing the run."""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
from typing import Any, Callable
from urllib.parse import urlparse

from truthound_sketch.errors import ConfigError

from .callbacks import MonitorCallbackAdapter
from .events import EventSeverity, MonitorEvent

__all__ = ["WebhookMonitorCallback"]

_log = logging.getLogger(__name__)
_STOP = object()
_RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}


class WebhookMonitorCallback(MonitorCallbackAdapter):
    """POSTs each selected event as JSON to ``url`` from a background thread.

    ``event_filter`` selects events: a predicate (``lambda e: e.severity >= EventSeverity.WARNING``),
    or an :class:`EventSeverity` (or its name) meaning "this severity or worse". The body is the
    event's :meth:`~MonitorEvent.to_dict` plus a human ``text`` line (what chat webhooks show);
    pass ``payload`` to build your own body.

    ``on_event`` only enqueues: a slow, hanging or refusing server never blocks the caller. Each
    post waits at most ``timeout_seconds`` and is retried ``max_retries`` times (connection
    errors, timeouts, HTTP 408/425/429/5xx) with exponential backoff from
    ``retry_backoff_seconds``. Outcomes are counted: ``sent_count``, ``failed_count`` (also
    ``error_count``), and ``dropped_count`` for events that did not fit the ``queue_size`` queue.
    ``flush()`` waits at most ``flush_timeout_seconds``.
    """

    def __init__(self, url: str, headers: dict[str, str] | None = None,
                 event_filter: Callable[[MonitorEvent], bool] | EventSeverity | str | None = None, *,
                 timeout_seconds: float = 5.0, max_retries: int = 2, retry_backoff_seconds: float = 0.5,
                 queue_size: int = 1000, flush_timeout_seconds: float = 5.0,
                 payload: Callable[[MonitorEvent], Any] | None = None) -> None:
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            msg = f"WebhookMonitorCallback.url = {url!r} is not valid: use an http:// or https:// URL"
            raise ConfigError(msg)
        if not timeout_seconds > 0:
            msg = f"WebhookMonitorCallback.timeout_seconds = {timeout_seconds!r} is not valid: use seconds > 0"
            raise ConfigError(msg)
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            msg = f"WebhookMonitorCallback.max_retries = {max_retries!r} is not valid: use a whole number >= 0"
            raise ConfigError(msg)
        self.url = url
        self.headers = dict(headers or {})
        self.event_filter = _as_filter(event_filter)
        self.timeout_seconds = float(timeout_seconds)
        self.max_retries = max_retries
        self.retry_backoff_seconds = float(retry_backoff_seconds)
        self.flush_timeout_seconds = float(flush_timeout_seconds)
        self.payload = payload or _default_payload
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, int(queue_size)))
        self._cond = threading.Condition()
        self._pending = 0
        self._sent = 0
        self._failed = 0
        self._dropped = 0
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ---------------------------------------------------------------- callback API
    def on_event(self, event: MonitorEvent) -> None:
        try:
            if not self.event_filter(event):
                return
        except Exception:
            _log.exception("webhook event_filter failed on %s; event not sent", event.event_type.name)
            with self._cond:
                self._failed += 1
            return
        if self._stop.is_set():
            self._count_drop(event, "the webhook callback is closed")
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
            self._count_drop(event, f"its queue of {self._queue.maxsize} posts is full")

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued post was sent or gave up, at most ``timeout`` seconds."""
        timeout = self.flush_timeout_seconds if timeout is None else timeout
        with self._cond:
            done = self._cond.wait_for(lambda: self._pending == 0, timeout)
        if not done:
            _log.warning("webhook %s: %d posts still pending after %.1fs; they continue in the background",
                         self.url, self._pending, timeout)
        return done

    def close(self) -> None:
        self.flush()
        self._stop.set()
        try:
            self._queue.put_nowait(_STOP)
        except queue.Full:
            _log.debug("webhook queue full at close; its thread exits after the current post")
        if self._thread is not None:
            self._thread.join(0.2)

    # ---------------------------------------------------------------- counts
    @property
    def sent_count(self) -> int:
        return self._sent

    @property
    def failed_count(self) -> int:
        return self._failed

    @property
    def error_count(self) -> int:
        return self._failed

    @property
    def dropped_count(self) -> int:
        return self._dropped

    @property
    def pending(self) -> int:
        return self._pending

    def __repr__(self) -> str:
        return f"WebhookMonitorCallback({self.url!r})"

    # ---------------------------------------------------------------- internals
    def _ensure_thread(self) -> None:
        if self._thread is not None:
            return
        with self._cond:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, daemon=True, name="monitor-webhook")
                self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            ok = self._post(item)
            with self._cond:
                if ok:
                    self._sent += 1
                else:
                    self._failed += 1
                self._pending -= 1
                self._cond.notify_all()

    def _post(self, event: MonitorEvent) -> bool:
        try:
            body = json.dumps(self.payload(event)).encode("utf-8")
        except Exception as exc:
            self.last_error = f"payload for {event.event_type.name} could not be built: {exc}"
            _log.warning("webhook %s: %s", self.url, self.last_error)
            return False
        headers = {"Content-Type": "application/json", "User-Agent": "truthound-sketch-monitor",
                   **self.headers}
        for attempt in range(self.max_retries + 1):
            retry = False
            try:
                request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
                with urllib.request.urlopen(request, timeout=self.timeout_seconds) as response:
                    response.read()
                return True
            except urllib.error.HTTPError as exc:
                self.last_error = f"HTTP {exc.code} {exc.reason}"
                retry = exc.code in _RETRY_STATUS
            except (urllib.error.URLError, OSError, TimeoutError) as exc:
                reason = getattr(exc, "reason", exc)
                self.last_error = f"{type(reason).__name__}: {reason}"
                retry = True
            if not retry or attempt == self.max_retries:
                break
            if self._stop.wait(self.retry_backoff_seconds * (2 ** attempt)):
                break
        _log.warning("webhook %s: %s not delivered after %d attempt(s): %s", self.url,
                     event.event_type.name, attempt + 1, self.last_error)
        return False

    def _count_drop(self, event: MonitorEvent, why: str) -> None:
        with self._cond:
            self._dropped += 1
            first = self._dropped == 1
        if first:
            _log.warning("webhook %s dropped %s because %s; further drops are counted in dropped_count",
                         self.url, event.event_type.name, why)


def _as_filter(spec) -> Callable[[MonitorEvent], bool]:
    if spec is None:
        return lambda event: True
    if isinstance(spec, (EventSeverity, str)) or (isinstance(spec, int) and not isinstance(spec, bool)):
        floor = EventSeverity.parse(spec)
        return lambda event: event.severity >= floor
    if callable(spec):
        return spec
    msg = (f"WebhookMonitorCallback.event_filter = {spec!r} is not valid: pass a function of the "
           "event, or an EventSeverity meaning 'this severity or worse'")
    raise ConfigError(msg)


def _default_payload(event: MonitorEvent) -> dict[str, Any]:
    body = event.to_dict()
    body["text"] = f"[{event.severity.name}] {event.message or event.event_type.name}"
    return body
