"""Retention: how long finished executions are kept (docs/retention.md).

``Retention`` is the engine's default (``WorkflowEngine(retention=...)``); a workflow's
definition may carry its own (``"retention": {"completed": "7d", "failed": "30d"}``,
``spane_py.definitions.models.RetentionSettings``), which wins over the engine's for that
workflow, status by status. None keeps forever, the default. Durations are a
``timedelta``, a number of seconds, or text such as ``"7d"``, ``"12h"``, ``"30m"``,
``"45s"`` or ``"90"`` (seconds).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import timedelta

from spane_py.state import ExecutionStatus

__all__ = ["PRUNABLE", "Retention", "parse_duration"]

# The statuses retention applies to, in the order they are pruned.
PRUNABLE = (ExecutionStatus.COMPLETED, ExecutionStatus.FAILED, ExecutionStatus.CANCELLED)

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
# Ten years: beyond it a cutoff's date arithmetic could overflow.
_MAX_SECONDS = 10 * 366 * 86400


def parse_duration(value: str | float | timedelta) -> timedelta:
    """A duration from a ``timedelta``, seconds, or text (``"7d"``, ``"12h"``, ``"30m"``,
    ``"45s"``, ``"2w"``, ``"90"``): positive, at most ten years; else ``ValueError``."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, bool):
        raise ValueError(f"a duration is a number of seconds or text like '7d', not {value!r}")
    elif isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        match = _DURATION.match(value.lower())
        if match is None:
            raise ValueError(
                f"a duration is text like '7d', '12h', '30m', '45s' or seconds, not {value!r}"
            )
        seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    else:
        raise ValueError(f"a duration is a number of seconds or text like '7d', not {value!r}")
    if not math.isfinite(seconds) or not 0 < seconds <= _MAX_SECONDS:
        raise ValueError(f"a duration must be positive and at most ten years, not {value!r}")
    return timedelta(seconds=seconds)


def _optional(value: str | float | timedelta | None) -> timedelta | None:
    return None if value is None else parse_duration(value)


@dataclass(frozen=True, slots=True, init=False)
class Retention:
    """How long finished executions are kept after they finished (``completed_at``), by
    status; None keeps them forever."""

    completed: timedelta | None
    failed: timedelta | None
    cancelled: timedelta | None

    def __init__(
        self,
        *,
        completed: str | float | timedelta | None = None,
        failed: str | float | timedelta | None = None,
        cancelled: str | float | timedelta | None = None,
    ) -> None:
        object.__setattr__(self, "completed", _optional(completed))
        object.__setattr__(self, "failed", _optional(failed))
        object.__setattr__(self, "cancelled", _optional(cancelled))

    def for_status(self, status: ExecutionStatus) -> timedelta | None:
        """How long executions that ended in ``status`` are kept (None: forever)."""
        if status == ExecutionStatus.COMPLETED:
            return self.completed
        if status == ExecutionStatus.FAILED:
            return self.failed
        if status == ExecutionStatus.CANCELLED:
            return self.cancelled
        return None

    @property
    def keeps_forever(self) -> bool:
        return self.completed is None and self.failed is None and self.cancelled is None
