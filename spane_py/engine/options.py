"""Checks of ``enqueue_workflow`` options (each bad value gets an error naming the workflow)
and of the engine's time settings."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import timedelta

from spane_py._text import text_problem
from spane_py.errors import ConfigurationError, InvalidEnqueueOptionsError
from spane_py.limits import MAX_DELAY_SECONDS


def check_priority(priority: int | None, workflow_id: str) -> int | None:
    if priority is None:
        return None
    if isinstance(priority, bool) or not isinstance(priority, int) or not 1 <= priority <= 10:
        raise InvalidEnqueueOptionsError(
            f"workflow {workflow_id!r}: priority must be an integer from 1 to 10, got {priority!r}",
            workflow_id=workflow_id,
        )
    return priority


def check_delay(
    delay: float | timedelta | None, workflow_id: str, *, default_ms: int | None
) -> float:
    if delay is None:
        return (default_ms or 0) / 1000
    seconds = delay.total_seconds() if isinstance(delay, timedelta) else delay
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, int | float)
        or not math.isfinite(seconds)
        or not 0 <= seconds <= MAX_DELAY_SECONDS
    ):
        raise InvalidEnqueueOptionsError(
            f"workflow {workflow_id!r}: delay must be a number of seconds from 0 to "
            f"{MAX_DELAY_SECONDS} (10 years) or a timedelta, got {delay!r}",
            workflow_id=workflow_id,
            details={"field": "delay"},
        )
    return float(seconds)


MAX_IDEMPOTENCY_KEY = 200


def check_idempotency_key(key: str | None, workflow_id: str) -> None:
    if key is None:
        return
    if not isinstance(key, str) or not key or len(key) > MAX_IDEMPOTENCY_KEY:
        raise InvalidEnqueueOptionsError(
            f"workflow {workflow_id!r}: idempotency_key must be a non-empty string of at "
            f"most {MAX_IDEMPOTENCY_KEY} characters, got {key!r:.60}",
            workflow_id=workflow_id,
            details={"field": "idempotency_key"},
        )
    problem = text_problem(key)
    if problem is not None:
        raise InvalidEnqueueOptionsError(
            f"workflow {workflow_id!r}: idempotency_key {problem}",
            workflow_id=workflow_id,
            details={"field": "idempotency_key"},
        )


def check_durations(seconds: Mapping[str, float | None]) -> None:
    """The engine's time settings (``name: seconds``, None: unset) are numbers from 0 to
    ``MAX_DELAY_SECONDS`` (10 years): a larger one would overflow the date arithmetic of a
    sweep or an idempotency window long after the engine started."""
    for name, value in seconds.items():
        if value is None:
            continue
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not 0 <= value <= MAX_DELAY_SECONDS  # NaN too
        ):
            raise ConfigurationError(
                f"{name} must be a number of seconds from 0 to {MAX_DELAY_SECONDS} (10 years), "
                f"got {value!r}"
            )
