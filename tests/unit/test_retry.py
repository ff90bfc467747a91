"""RetryPolicy.decide and BackoffPolicy.delay_ms."""

from __future__ import annotations

import random

import pytest

from spane_py.definitions.models import (
    DEFAULT_MAX_BACKOFF_MS,
    BackoffPolicy,
    RetryDecision,
    RetryPolicy,
)
from spane_py.errors import NodeExecutionError, NodeTimeoutError, NonRetryableError


@pytest.mark.parametrize(("attempt", "expected"), [(1, 1000), (2, 2000), (3, 4000), (4, 8000)])
def test_exponential_backoff_doubles(attempt: int, expected: int) -> None:
    assert BackoffPolicy(type="exponential", delay=1000).delay_ms(attempt) == expected


def test_exponential_is_the_default() -> None:
    backoff = BackoffPolicy()
    assert [backoff.delay_ms(a) for a in (1, 2, 3)] == [1000, 2000, 4000]


@pytest.mark.parametrize("attempt", [1, 2, 5, 50])
def test_fixed_backoff_is_constant(attempt: int) -> None:
    assert BackoffPolicy(type="fixed", delay=250).delay_ms(attempt) == 250


def test_max_delay_caps_exponential_growth() -> None:
    backoff = BackoffPolicy(delay=1000, max_delay=5000)
    assert [backoff.delay_ms(a) for a in (1, 2, 3, 4, 5)] == [1000, 2000, 4000, 5000, 5000]


def test_max_delay_caps_fixed_delay() -> None:
    assert BackoffPolicy(type="fixed", delay=9000, max_delay=100).delay_ms(1) == 100


def test_huge_attempt_numbers_stay_bounded() -> None:
    assert BackoffPolicy(delay=1000).delay_ms(10_000) == DEFAULT_MAX_BACKOFF_MS


def test_attempt_zero_or_below_counts_as_first() -> None:
    assert BackoffPolicy(delay=300).delay_ms(0) == 300


def test_zero_delay() -> None:
    assert BackoffPolicy(delay=0).delay_ms(7) == 0


def test_jitter_stays_within_bounds() -> None:
    backoff = BackoffPolicy(type="fixed", delay=1000, jitter=0.2)
    rng = random.Random(42)
    samples = [backoff.delay_ms(1, rng) for _ in range(500)]
    assert all(800 <= s <= 1200 for s in samples)
    assert len(set(samples)) > 50  # it does vary
    assert min(samples) < 850
    assert max(samples) > 1150


def test_jitter_is_reproducible_with_a_seeded_rng() -> None:
    backoff = BackoffPolicy(delay=1000, jitter=0.5)
    first = [backoff.delay_ms(a, random.Random(7)) for a in (1, 2, 3)]
    second = [backoff.delay_ms(a, random.Random(7)) for a in (1, 2, 3)]
    assert first == second
    expected_rng = random.Random(7)
    r = expected_rng.uniform(-0.5, 0.5)
    assert first[0] == int(1000 * (1 + r))


def test_jitter_never_exceeds_max_delay() -> None:
    backoff = BackoffPolicy(delay=1000, max_delay=1000, jitter=1.0)
    rng = random.Random(3)
    samples = [backoff.delay_ms(4, rng) for _ in range(300)]
    assert all(0 <= s <= 1000 for s in samples)


def test_no_jitter_ignores_the_rng() -> None:
    class Exploding(random.Random):
        def uniform(self, a: float, b: float) -> float:  # pragma: no cover - must not run
            raise AssertionError("rng used without jitter")

    assert BackoffPolicy(delay=10).delay_ms(2, Exploding()) == 20


def test_decide_retries_with_the_backoff_delay() -> None:
    policy = RetryPolicy(max_attempts=4, backoff=BackoffPolicy(delay=100))
    err = RuntimeError("flaky")
    assert policy.decide(err, 1) == RetryDecision(retry=True, delay_ms=100)
    assert policy.decide(err, 2) == RetryDecision(retry=True, delay_ms=200)
    assert policy.decide(err, 3) == RetryDecision(retry=True, delay_ms=400)


@pytest.mark.parametrize("attempt", [4, 5, 100])
def test_decide_stops_at_max_attempts(attempt: int) -> None:
    policy = RetryPolicy(max_attempts=4)
    decision = policy.decide(RuntimeError("x"), attempt)
    assert decision.retry is False
    assert decision.delay_ms == 0


def test_max_attempts_one_never_retries() -> None:
    assert RetryPolicy(max_attempts=1).decide(RuntimeError("x"), 1).retry is False


def test_non_retryable_error_is_never_retried() -> None:
    policy = RetryPolicy(max_attempts=10)
    assert policy.decide(NonRetryableError("bad input"), 1).retry is False


def test_other_node_errors_are_retried() -> None:
    policy = RetryPolicy(max_attempts=3)
    assert policy.decide(NodeExecutionError("boom"), 1).retry is True
    assert policy.decide(NodeTimeoutError("slow"), 2).retry is True


def test_decide_uses_the_given_rng_for_jitter() -> None:
    policy = RetryPolicy(max_attempts=3, backoff=BackoffPolicy(delay=1000, jitter=0.3))
    one = policy.decide(RuntimeError(), 1, random.Random(5))
    two = policy.decide(RuntimeError(), 1, random.Random(5))
    assert one == two
    assert one.retry
    assert 700 <= one.delay_ms <= 1300
