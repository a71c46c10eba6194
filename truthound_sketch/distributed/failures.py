"""An engine's failures turned into the project's errors, whatever the engine.

A run's failure is raised again as the project error it was (or wrapped), else as BackendError, after
the failed partition is published; for engines that hand the driver only an error's message, a
partition's failure travels as text.  Nothing here imports an engine.
"""

from __future__ import annotations

import re
from typing import Any

from ..errors import BackendError, TruthoundSketchError

__all__ = ["raise_failure", "first_line", "failure_text", "text_failure"]


#: the project errors a record's failure is raised again as (others become BackendError)
RERAISED = ("InputError", "UnsupportedInputError", "SchemaMismatchError", "ConfigError", "ProfileFormatError")


def raise_failure(exc: BaseException, bus: Any, what: str, partition: int | None = None) -> None:
    """Raises a run's failure again: a project error (or one an engine wrapped as ``.cause``) as it is,
    others as BackendError after publishing the failure of the partition (``partition_partial``'s tag)."""
    i = getattr(exc, "truthound_partition", None)
    if i is not None:  # a task's failure, published whatever it is
        bus.partition_failed(i, error=exc, worker_id=getattr(exc, "truthound_worker", None))
    if isinstance(exc, TruthoundSketchError):
        raise exc
    if isinstance(getattr(exc, "cause", None), TruthoundSketchError):
        raise exc.cause from None
    if i is None and partition is not None:  # the partition the driver was waiting for
        bus.partition_failed(i := partition, error=exc)
    raise BackendError(f"{what}{f' partition {i}' * (i is not None)}: {type(exc).__name__}: {str(exc).strip()[:500]}") from exc


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:500]


_FAILED = re.compile(r"truthound_sketch partition (\d+) on (\S+): ([^\n]*)")


def failure_text(exc: BaseException, i: int, worker: str) -> str:
    """A partition's failure as text, for engines that hand the driver only an error's message."""
    return f"truthound_sketch partition {i} on {worker}: {type(exc).__name__}: {exc}"


def text_failure(exc: BaseException, bus: Any, engine: str, label: str) -> BackendError | None:
    """The BackendError of a ``failure_text`` found in ``exc``'s message (its failure published), else None."""
    found = _FAILED.search(str(exc))
    if found is None:
        return None
    bus.partition_failed(int(found[1]), error=found[3], worker_id=found[2])
    return BackendError(f"{engine} failed on partition {found[1]} of {label}: {found[3]}")
