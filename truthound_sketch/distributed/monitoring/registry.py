"""Named callbacks and monitor presets, so configuration files and the CLI can refer to them."""

from __future__ import annotations

import threading
from typing import Any, Callable, TypeVar

from truthound_sketch.errors import ConfigError

from .callbacks import MonitorCallbackAdapter
from .monitor import DistributedMonitor

__all__ = ["MonitorRegistry"]

T = TypeVar("T")


class MonitorRegistry:
    """Process-wide registry of callback classes (or factories) and monitor presets.

    Built in: callbacks ``console``, ``progress_bar``, ``logging``, ``file``, ``webhook``;
    presets ``minimal``, ``standard``, ``full``, ``production``, ``console``, ``logging``.
    """

    _lock = threading.Lock()
    _callbacks: dict[str, Callable[..., MonitorCallbackAdapter]] = {}
    _presets: dict[str, Callable[..., DistributedMonitor]] = {}

    @classmethod
    def register_callback(cls, name: str, *, replace: bool = False) -> Callable[[T], T]:
        """Decorator registering a callback class (or a function returning a callback)."""
        def decorate(target: T) -> T:
            cls._put(cls._callbacks, "callback", name, target, replace)
            return target
        return decorate

    @classmethod
    def register_preset(cls, name: str, *, replace: bool = False) -> Callable[[T], T]:
        """Decorator registering a function ``(**kwargs) -> DistributedMonitor``."""
        def decorate(target: T) -> T:
            cls._put(cls._presets, "preset", name, target, replace)
            return target
        return decorate

    @classmethod
    def create_callback(cls, name: str, **kwargs: Any) -> MonitorCallbackAdapter:
        return cls._get(cls._callbacks, "callback", name)(**kwargs)

    @classmethod
    def create_monitor(cls, name: str, **kwargs: Any) -> DistributedMonitor:
        monitor = cls._get(cls._presets, "preset", name)(**kwargs)
        if not isinstance(monitor, DistributedMonitor):
            msg = f"monitor preset {name!r} returned {type(monitor).__name__}, not a DistributedMonitor"
            raise ConfigError(msg)
        return monitor

    @classmethod
    def list_callbacks(cls) -> list[str]:
        with cls._lock:
            return sorted(cls._callbacks)

    @classmethod
    def list_presets(cls) -> list[str]:
        with cls._lock:
            return sorted(cls._presets)

    @classmethod
    def unregister_callback(cls, name: str) -> None:
        with cls._lock:
            cls._callbacks.pop(name, None)

    @classmethod
    def unregister_preset(cls, name: str) -> None:
        with cls._lock:
            cls._presets.pop(name, None)

    @classmethod
    def _put(cls, table: dict, kind: str, name: str, target: Any, replace: bool) -> None:
        if not isinstance(name, str) or not name:
            msg = f"a monitor {kind} needs a non-empty string name, got {name!r}"
            raise ConfigError(msg)
        if not callable(target):
            msg = f"monitor {kind} {name!r} must be a class or function, got {type(target).__name__}"
            raise ConfigError(msg)
        with cls._lock:
            if name in table and table[name] is not target and not replace:
                msg = (f"a monitor {kind} named {name!r} is already registered; "
                       f"pick another name or pass replace=True")
                raise ConfigError(msg)
            table[name] = target

    @classmethod
    def _get(cls, table: dict, kind: str, name: str) -> Callable[..., Any]:
        with cls._lock:
            found = table.get(name)
            known = ", ".join(sorted(table)) or "none"
        if found is None:
            msg = f"no monitor {kind} named {name!r}; registered: {known}"
            raise ConfigError(msg)
        return found


def _register_builtins() -> None:
    from .config import MonitorConfig
    from .console import ConsoleMonitorCallback, ProgressBarCallback
    from .factory import MonitorFactory
    from .outputs import FileMonitorCallback, LoggingMonitorCallback
    from .webhook import WebhookMonitorCallback

    for name, target in (("console", ConsoleMonitorCallback), ("progress_bar", ProgressBarCallback),
                         ("logging", LoggingMonitorCallback), ("file", FileMonitorCallback),
                         ("webhook", WebhookMonitorCallback)):
        MonitorRegistry.register_callback(name, replace=True)(target)
    presets = {
        "minimal": lambda **kw: DistributedMonitor(MonitorConfig.minimal(), **kw),
        "standard": lambda **kw: DistributedMonitor(MonitorConfig.standard(), **kw),
        "full": lambda **kw: DistributedMonitor(MonitorConfig.full(), **kw),
        "production": MonitorFactory.production,
        "console": MonitorFactory.with_console,
        "logging": MonitorFactory.with_logging,
    }
    for name, target in presets.items():
        MonitorRegistry.register_preset(name, replace=True)(target)


_register_builtins()
