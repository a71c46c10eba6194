"""Lazy package attributes (PEP 562): a package names what it exports and imports it on first use,
so that importing a light submodule (the CLI, a worker, the event bus) does not import them all."""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(package: str, exports: dict[str, str], namespace: dict[str, Any]):
    """A module ``__getattr__`` that imports ``exports[name]`` (a submodule, relative to
    ``package``) on first access to ``name`` and caches the attribute in ``namespace``."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        namespace[name] = value
        return value

    return __getattr__
