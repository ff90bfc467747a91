"""The traffic settings of a node type: ``RateLimit`` and ``CircuitBreakerPolicy``.

Plain frozen values checked when they are made, so a wrong number fails at
``registry.register(...)`` with a ``ConfigurationError`` that names it, not in a worker.
Every worker process must register the same settings for a type: the state they guard
(calls in the window, the breaker's state) is shared through Redis, the settings are not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from spane_py.errors import ConfigurationError

OnOpen = Literal["wait", "fail"]
ON_OPEN_CHOICES = ("wait", "fail")
# A breaker's or a limit's window below a millisecond cannot be measured by the scripts
# (they count in milliseconds of the Redis clock).
MIN_SECONDS = 0.001


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most ``max_calls`` starts in any window of ``per_seconds`` (a sliding window,
    shared by every worker process)."""

    max_calls: int
    per_seconds: float

    def __post_init__(self) -> None:
        _positive_int("rate limit max_calls", self.max_calls)
        _seconds("rate limit per_seconds", self.per_seconds)

    @property
    def per_ms(self) -> int:
        return max(round(self.per_seconds * 1000), 1)

    @classmethod
    def parse(cls, value: object, *, what: str) -> RateLimit:
        """A ``RateLimit``, or a ``(max_calls, per_seconds)`` pair, as a ``RateLimit``."""
        if isinstance(value, RateLimit):
            return value
        if isinstance(value, tuple | list) and len(value) == 2:
            try:
                return cls(value[0], value[1])
            except ConfigurationError as exc:
                raise ConfigurationError(f"{what}: {exc.message}") from None
        raise ConfigurationError(
            f"{what} must be (max_calls, per_seconds) or a RateLimit, got {value!r}"
        )


@dataclass(frozen=True, slots=True)
class CircuitBreakerPolicy:
    """Stop calling a failing service for a while.

    ``failure_threshold`` failures within ``window_seconds`` open the breaker; it stays open
    ``open_seconds``; then it is half-open: up to ``half_open_probes`` calls go through at
    once, and that many successes close it, while one failure opens it again. While it is
    open (or its probes are all out), a node of the type waits (``on_open="wait"``: it is
    deferred, without counting an attempt, until the breaker may let it through) or fails
    at once with ``CircuitBreakerOpenError`` (``on_open="fail"``: the failure goes through the
    node's retry policy like any other, so a later attempt may pass).
    """

    failure_threshold: int = 5
    window_seconds: float = 60.0
    open_seconds: float = 30.0
    half_open_probes: int = 1
    on_open: OnOpen = "wait"

    def __post_init__(self) -> None:
        _positive_int("circuit breaker failure_threshold", self.failure_threshold)
        _seconds("circuit breaker window_seconds", self.window_seconds)
        _seconds("circuit breaker open_seconds", self.open_seconds)
        _positive_int("circuit breaker half_open_probes", self.half_open_probes)
        if self.on_open not in ON_OPEN_CHOICES:
            raise ConfigurationError(
                f"circuit breaker on_open must be 'wait' or 'fail', got {self.on_open!r}"
            )

    @property
    def window_ms(self) -> int:
        return max(round(self.window_seconds * 1000), 1)

    @property
    def open_ms(self) -> int:
        return max(round(self.open_seconds * 1000), 1)


def _positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"{name} must be a positive integer, got {value!r}")


def _seconds(name: str, value: object) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < MIN_SECONDS
    ):
        raise ConfigurationError(
            f"{name} must be a finite number of seconds >= {MIN_SECONDS}, got {value!r}"
        )
