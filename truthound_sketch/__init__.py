"""truthound_sketch: mergeable, sketch-based profiles of tabular data."""

from __future__ import annotations

from .api import profile
from .column import ColumnPartial
from .config import DEFAULT_QUANTILES, ProfileConfig
from .errors import (
    BackendError,
    ConfigError,
    InputError,
    MissingDependencyError,
    ProfileFormatError,
    SchemaMismatchError,
    TruthoundSketchError,
    UnsupportedInputError,
)
from .frequent import FrequentItems
from .hll import HllDistinct
from .kll import KllQuantiles
from .moments import Moments
from .result import ColumnProfile, DistinctCount, LengthSummary, TableProfile, TopValue
from .table import TablePartial

__version__ = "0.1.0"

__all__ = [
    "BackendError", "ColumnPartial", "ColumnProfile", "ConfigError", "DEFAULT_QUANTILES", "DistinctCount",
    "FrequentItems", "HllDistinct", "InputError", "KllQuantiles", "LengthSummary", "MissingDependencyError",
    "Moments", "ProfileConfig", "ProfileFormatError", "SchemaMismatchError", "TablePartial", "TableProfile",
    "TopValue", "TruthoundSketchError", "UnsupportedInputError", "profile", "__version__",
]  # fmt: skip
