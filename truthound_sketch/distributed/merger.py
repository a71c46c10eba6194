"""``ProfileMerger``: combine profiles or partials of disjoint parts into the profile of the whole.

Counts add, means and variances combine by Chan's formula, min/max are global, exact value counts
add, and quantile, distinct and frequent-value sketches merge as sketches.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..config import ProfileConfig
from ..errors import TruthoundSketchError
from ..result import TableProfile
from ..table import TablePartial
from .base import tree_reduce

__all__ = ["ProfileMerger"]


def as_partial(item: Any) -> TablePartial:
    if isinstance(item, TablePartial):
        return item
    if isinstance(item, TableProfile):
        if item.partial is None:
            raise TruthoundSketchError("this profile was read from JSON and has no partial to merge; merge partial files instead (th profile --save-partial)")
        return item.partial
    if isinstance(item, (bytes, bytearray, memoryview)):
        return TablePartial.from_bytes(bytes(item))
    raise TruthoundSketchError(f"cannot merge a {type(item).__name__}; pass TableProfile, TablePartial or partial bytes")


class ProfileMerger:
    def __init__(self, config: ProfileConfig | None = None) -> None:
        self.config = config or ProfileConfig()

    def merge_partials(self, items: Iterable[Any]) -> TablePartial:
        return tree_reduce([as_partial(i) for i in items])

    def merge(self, items: Iterable[Any]) -> TableProfile:
        items = list(items)
        part = self.merge_partials(items)
        duration = sum(i.profile_duration_ms for i in items if isinstance(i, TableProfile))
        return part.finalize(self.config, duration_ms=duration, engine="merge", partitions=len(items))
