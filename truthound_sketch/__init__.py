"""truthound_sketch: mergeable, sketch-based profiles of tabular data.

Every name below is imported on first use (``import truthound_sketch`` alone stays light).
"""

from __future__ import annotations

from ._lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "profile": "api",
    "ColumnPartial": "column",
    "DEFAULT_QUANTILES": "config", "ProfileConfig": "config",
    "BackendError": "errors", "ConfigError": "errors", "InputError": "errors",
    "MissingDependencyError": "errors", "ProfileFormatError": "errors", "SchemaMismatchError": "errors",
    "TruthoundSketchError": "errors", "UnsupportedInputError": "errors",
    "FrequentItems": "frequent",
    "HllDistinct": "hll",
    "KllQuantiles": "kll",
    "Moments": "moments",
    "ColumnProfile": "result", "DistinctCount": "result", "LengthSummary": "result", "TableProfile": "result",
    "TopValue": "result",
    "TablePartial": "table",
}  # fmt: skip

__all__ = sorted(_EXPORTS) + ["__version__"]

__getattr__ = lazy_exports(__name__, _EXPORTS, globals())


def __dir__() -> list[str]:
    return __all__
