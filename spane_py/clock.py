"""The engine's clock: where every time the engine writes or decides on comes from.

``WorkflowEngine(clock=...)`` takes any object with ``now() -> datetime`` (timezone-aware,
UTC). The default reads the system's clock. A node's ``queued_at``/``started_at``/
``completed_at``, a ``delay`` node's due time, a ``wait`` node's timeout, a retry's backoff, a
token's expiry, an execution's deadline and the sweeper's idea of "stale" all read it.

``SkippingClock`` is the system's clock plus whatever a test skipped: it never runs slower
than real time and never goes back, so what Redis makes due by real time is due by this
clock too. ``spane_py.testing.run_until_idle(engine, skip_time=True)`` skips it to the next
scheduled job whenever nothing else is left to run (the way Temporal's test server skips
time), so a test of a one-hour ``delay`` runs in milliseconds.

Redis keeps its own clock for what must agree across processes (job leases, rate-limit
windows, the presence of workers): skipping this clock does not move those.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware (UTC)."""
        ...


class SystemClock:
    """The system's clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def __repr__(self) -> str:
        return "SystemClock()"


SYSTEM_CLOCK = SystemClock()


class SkippingClock:
    """Real time plus what was skipped (``skipped``). Only moves forward."""

    def __init__(self) -> None:
        self._offset = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self._offset

    @property
    def skipped(self) -> timedelta:
        """How far ahead of the system's clock this clock is."""
        return self._offset

    def skip(self, seconds: float | timedelta) -> None:
        """Move forward by ``seconds`` (a non-negative, finite number or timedelta)."""
        delta = seconds if isinstance(seconds, timedelta) else None
        if delta is None:
            if isinstance(seconds, bool) or not isinstance(seconds, int | float):
                raise TypeError(f"skip() takes seconds or a timedelta, not {seconds!r}")
            if not math.isfinite(seconds):
                raise ValueError(f"cannot skip {seconds!r} seconds")
            delta = timedelta(seconds=seconds)
        if delta < timedelta(0):
            raise ValueError(f"a clock cannot skip backwards ({delta})")
        self._offset += delta

    def skip_to(self, when: datetime) -> timedelta:
        """Move forward to ``when`` (timezone-aware); nothing when it has passed. Returns how
        far this moved the clock."""
        if when.tzinfo is None:
            raise ValueError(f"skip_to() needs a timezone-aware time, not {when!r}")
        ahead = when - self.now()
        if ahead <= timedelta(0):
            return timedelta(0)
        self._offset += ahead
        return ahead

    def __repr__(self) -> str:
        return f"SkippingClock(skipped={self._offset})"
