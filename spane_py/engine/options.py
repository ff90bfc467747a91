"""Checks of ``enqueue_workflow`` options: each bad value gets an error naming the workflow."""

from __future__ import annotations

import math
from datetime import timedelta

from spane_py.errors import InvalidEnqueueOptionsError


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
        or seconds < 0
    ):
        raise InvalidEnqueueOptionsError(
            f"workflow {workflow_id!r}: delay must be a non-negative number of seconds or a "
            f"timedelta, got {delay!r}",
            workflow_id=workflow_id,
        )
    return float(seconds)


MAX_IDEMPOTENCY_KEY = 200


def check_idempotency_key(key: str | None, workflow_id: str) -> None:
    if key is not None and (not isinstance(key, str) or not key or len(key) > MAX_IDEMPOTENCY_KEY):
        raise InvalidEnqueueOptionsError(
            f"workflow {workflow_id!r}: idempotency_key must be a non-empty string of at "
            f"most {MAX_IDEMPOTENCY_KEY} characters, got {key!r:.60}",
            workflow_id=workflow_id,
        )
