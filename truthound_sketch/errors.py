"""One exception hierarchy for the whole project.

Every error a user can cause derives from :class:`TruthoundSketchError`, and its message names
the file, column or field at fault and says what to do about it.
"""

from __future__ import annotations

__all__ = [
    "TruthoundSketchError",
    "InputError",
    "UnsupportedInputError",
    "SchemaMismatchError",
    "ProfileFormatError",
    "ConfigError",
    "MissingDependencyError",
    "BackendError",
]


class TruthoundSketchError(Exception):
    """Base class of every error raised by truthound_sketch."""


class InputError(TruthoundSketchError, ValueError):
    """The data to profile could not be found or read."""


class UnsupportedInputError(InputError, TypeError):
    """The object or file format given to ``profile()`` is not one we can read."""


class SchemaMismatchError(TruthoundSketchError, ValueError):
    """Two partial profiles disagree about a column's type and cannot be merged."""


class ProfileFormatError(TruthoundSketchError, ValueError):
    """Serialized profile bytes are corrupt, truncated or of an unknown version."""


class ConfigError(TruthoundSketchError, ValueError):
    """An option or setting has a value we cannot use."""


class MissingDependencyError(TruthoundSketchError, ImportError):
    """An optional engine is needed but not installed; the message names the extra."""

    def __init__(self, package: str, extra: str, purpose: str) -> None:
        msg = (
            f"{purpose} needs the '{package}' package, which is not installed. "
            f"Install it with: pip install 'truthound_sketch[{extra}]'"
        )
        super().__init__(msg)
        self.package = package
        self.extra = extra


class BackendError(TruthoundSketchError, RuntimeError):
    """An execution engine failed while profiling (after any retries)."""
