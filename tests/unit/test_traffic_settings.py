"""Traffic settings are checked where they are given: ``RateLimit``,
``CircuitBreakerPolicy``, ``registry.register(..., rate_limit=, circuit_breaker=)``,
``WorkflowEngine(global_rate_limit=)`` and ``ctx.rate_limit(ms)`` (no I/O)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from spane_py import (
    CircuitBreakerOpenError,
    CircuitBreakerPolicy,
    ConfigurationError,
    ExecutionContext,
    NodeDefinition,
    NodeExecutionError,
    NodeRegistry,
    NonRetryableError,
    RateLimit,
    RateLimitError,
    WorkflowEngine,
)


async def _run(ctx: ExecutionContext) -> Any:
    return None


def test_rate_limit_from_a_pair_or_a_value() -> None:
    reg = NodeRegistry()
    reg.register("a", _run, rate_limit=(10, 1))
    reg.register("b", _run, rate_limit=RateLimit(3, 0.5))
    reg.register("c", _run)
    assert reg.get("a").rate_limit == RateLimit(10, 1.0)
    assert reg.get("b").rate_limit == RateLimit(3, 0.5)
    assert reg.get("b").rate_limit is not None
    assert reg.get("b").rate_limit.per_ms == 500
    assert reg.get("c").rate_limit is None
    assert reg.get("c").circuit_breaker is None


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ((0, 1), "max_calls must be a positive integer, got 0"),
        ((-3, 1), "max_calls must be a positive integer, got -3"),
        ((2.5, 1), "max_calls must be a positive integer, got 2.5"),
        ((True, 1), "max_calls must be a positive integer, got True"),
        ((10, 0), "per_seconds must be a finite number of seconds >= 0.001, got 0"),
        ((10, -1), "per_seconds must be a finite number of seconds >= 0.001, got -1"),
        ((10, math.inf), "per_seconds must be a finite number of seconds >= 0.001, got inf"),
        ((10, "1"), "per_seconds must be a finite number of seconds >= 0.001, got '1'"),
        ((10,), "must be (max_calls, per_seconds) or a RateLimit, got (10,)"),
        (10, "must be (max_calls, per_seconds) or a RateLimit, got 10"),
        ({"max": 10}, "must be (max_calls, per_seconds) or a RateLimit"),
    ],
)
def test_a_bad_rate_limit_is_refused_at_registration(value: Any, message: str) -> None:
    with pytest.raises(ConfigurationError) as err:
        NodeRegistry().register("api", _run, rate_limit=value)
    assert "rate_limit for node type 'api'" in err.value.message
    assert message in err.value.message
    assert NodeRegistry().has("api") is False


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("failure_threshold", 0, "failure_threshold must be a positive integer, got 0"),
        ("failure_threshold", 1.5, "failure_threshold must be a positive integer, got 1.5"),
        ("window_seconds", 0, "window_seconds must be a finite number of seconds >= 0.001"),
        ("window_seconds", math.nan, "window_seconds must be a finite number"),
        ("open_seconds", -2, "open_seconds must be a finite number of seconds >= 0.001, got -2"),
        ("half_open_probes", 0, "half_open_probes must be a positive integer, got 0"),
        ("on_open", "retry", "on_open must be 'wait' or 'fail', got 'retry'"),
    ],
)
def test_a_bad_circuit_breaker_policy_is_refused(field: str, value: Any, message: str) -> None:
    with pytest.raises(ConfigurationError) as err:
        CircuitBreakerPolicy(**{field: value})
    assert message in err.value.message


def test_circuit_breaker_must_be_a_policy() -> None:
    reg = NodeRegistry()
    reg.register("svc", _run, circuit_breaker=CircuitBreakerPolicy(3, 10, 5, 2, "fail"))
    breaker = reg.get("svc").circuit_breaker
    assert breaker is not None
    assert (breaker.open_ms, breaker.window_ms) == (5000, 10000)
    with pytest.raises(ConfigurationError, match="must be a CircuitBreakerPolicy, got dict"):
        reg.register("other", _run, circuit_breaker={"failure_threshold": 3})  # type: ignore[arg-type]


def test_global_rate_limit_is_checked_by_the_engine() -> None:
    engine = WorkflowEngine(NodeRegistry(), global_rate_limit=(100, 1))
    assert engine.global_rate_limit == RateLimit(100, 1)
    assert WorkflowEngine(NodeRegistry()).global_rate_limit is None
    with pytest.raises(ConfigurationError, match=r"global_rate_limit: rate limit max_calls must"):
        WorkflowEngine(NodeRegistry(), global_rate_limit=(0, 1))
    with pytest.raises(ConfigurationError, match=r"global_rate_limit must be \(max_calls"):
        WorkflowEngine(NodeRegistry(), global_rate_limit=5)  # type: ignore[arg-type]


def _ctx() -> ExecutionContext:
    return ExecutionContext(
        workflow_id="wf",
        execution_id="e1",
        node=NodeDefinition(id="call", type="api"),
        input_data=None,
        records={},
    )


def test_ctx_rate_limit_raises_rate_limit_error() -> None:
    with pytest.raises(RateLimitError) as err:
        _ctx().rate_limit(250)
    assert err.value.retry_after_ms == 250
    assert err.value.code == "RATE_LIMIT_EXCEEDED"
    assert (err.value.node_id, err.value.execution_id) == ("call", "e1")
    assert err.value.message == "node 'call' is rate limited: retry in 250 ms"


@pytest.mark.parametrize("ms", [0, -5, math.inf, math.nan, "100", None, True, 1e300])
def test_ctx_rate_limit_needs_positive_milliseconds(ms: Any) -> None:
    with pytest.raises(NonRetryableError, match=r"ctx\.rate_limit\(ms\) needs a positive"):
        _ctx().rate_limit(ms)


def test_traffic_errors_are_node_execution_errors_with_spane_codes() -> None:
    assert issubclass(RateLimitError, NodeExecutionError)
    assert issubclass(CircuitBreakerOpenError, NodeExecutionError)
    assert CircuitBreakerOpenError().code == "CIRCUIT_BREAKER_OPEN"
    assert "circuit breaker" in CircuitBreakerOpenError().message
