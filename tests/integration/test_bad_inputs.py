"""Every bad input fails early with a specific ``SpaneError`` naming the workflow or node,
before anything is saved or enqueued; a bad node output fails only that node."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from spane_py import (
    ConfigurationError,
    ExecutionContext,
    ExecutionStatus,
    InvalidEnqueueOptionsError,
    NodeNotRegisteredError,
    NodeRegistry,
    NodeStatus,
    SerializationError,
    SpaneError,
    WorkflowEngine,
    WorkflowNotFoundError,
    WorkflowValidationError,
)
from spane_py.limits import MAX_DELAY_MS, MAX_DELAY_SECONDS
from tests.integration._support import (
    Recorder,
    assert_nothing_created,
    node,
    wait_queue_empty,
    workflow,
)
from tests.integration.conftest import EngineFactory


async def _tag(ctx: ExecutionContext) -> Any:
    return {"node": ctx.node_id, "input": ctx.input_data}


def _deeply_nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


@pytest.fixture
async def ready(engine: WorkflowEngine, registry: NodeRegistry, rec: Recorder) -> WorkflowEngine:
    """An engine with workflow ``ok`` (a -> b) registered and workers running."""
    rec.register(registry, "tag", _tag)
    await engine.register_workflow(workflow("ok", node("a", "tag"), node("b", "tag", "a")))
    await engine.start_workers(2)
    return engine


INVALID_DEFINITIONS = [
    pytest.param(
        workflow("cyclic", node("a", "tag", "c"), node("b", "tag", "a"), node("c", "tag", "b")),
        ["cyclic", "cycle", "a -> b -> c -> a"],
        id="cycle",
    ),
    pytest.param(
        workflow("dangling", node("a", "tag"), node("b", "tag", "ghost")),
        ["dangling", "'b'", "'ghost'"],
        id="missing-reference",
    ),
    pytest.param(
        workflow("twice", node("a", "tag"), node("a", "tag")),
        ["twice", "duplicate", "'a'"],
        id="duplicate-node-id",
    ),
    pytest.param(
        workflow("bad-entry", node("a", "tag"), entry_node_id="nowhere"),
        ["bad-entry", "'nowhere'"],
        id="unknown-entry-node",
    ),
    pytest.param(
        workflow("Not A Valid Id!", node("a", "tag")),
        ["Not A Valid Id!"],
        id="bad-workflow-id",
    ),
    pytest.param(workflow("empty"), ["empty", "no nodes"], id="no-nodes"),
    pytest.param(
        workflow("bad-policy", node("a", "tag", retry_policy={"max_attempts": 0})),
        ["bad-policy", "'a'", "max_attempts"],
        id="retry-policy-out-of-range",
    ),
    pytest.param(
        workflow("bad-timeout", node("a", "tag", timeout_ms=-5)),
        ["bad-timeout", "'a'", "timeout_ms"],
        id="negative-timeout",
    ),
    pytest.param(
        workflow("self-loop", node("a", "tag", "a")),
        ["self-loop", "'a'", "itself"],
        id="self-reference",
    ),
    pytest.param(
        workflow("nan-config", node("a", "tag", config={"threshold": float("nan")})),
        ["nan-config", "'a'", "config"],
        id="config-not-json",
    ),
    pytest.param(
        workflow("typo", {"id": "a", "type": "tag", "retryPolicyy": {}}),
        ["typo", "'a'", "retryPolicyy"],
        id="unknown-field",
    ),
    # Durations are bounded (MAX_DELAY_SECONDS, 10 years): larger ones used to overflow the
    # date arithmetic of a due time at enqueue or run time (OverflowError, a node that
    # failed with it, or a retry that never came).
    pytest.param(
        workflow("far", node("a", "tag"), delay=10**15),
        ["far", "delay", "315360000000"],
        id="start-delay-over-10-years",
    ),
    pytest.param(
        workflow("far", node("a", "tag"), timeout=10**20),
        ["far", "timeout"],
        id="execution-timeout-over-10-years",
    ),
    pytest.param(
        workflow("far", node("a", "tag", timeout_ms=10**20)),
        ["far", "'a'", "timeout"],
        id="node-timeout-over-10-years",
    ),
    pytest.param(
        workflow(
            "far",
            node("a", "tag", retry_policy={"backoff": {"delay": 10**20, "maxDelay": 10**20}}),
        ),
        ["far", "'a'", "delay"],
        id="backoff-over-10-years",
    ),
    pytest.param(
        workflow("far", node("a", "wait", config={"timeoutSeconds": 1e300})),
        ["far", "'a'", "timeout"],
        id="wait-timeout-over-10-years",
    ),
    pytest.param(
        workflow("far", node("a", "wait", config={"tokenTtlSeconds": 1e12})),
        ["far", "'a'", "token"],
        id="token-ttl-over-10-years",
    ),
    pytest.param(
        workflow("far", node("a", "delay", config={"durationSeconds": 1e300})),
        ["far", "'a'", "duration_seconds", "10 years"],
        id="delay-node-over-10-years",
    ),
    pytest.param(
        workflow("far", node("a", "delay", config={"duration": 1e20})),
        ["far", "'a'", "duration"],
        id="delay-node-ms-over-10-years",
    ),
]


@pytest.mark.parametrize(("definition", "mentions"), INVALID_DEFINITIONS)
async def test_invalid_definition_is_refused_and_nothing_is_saved(
    engine: WorkflowEngine, registry: NodeRegistry, definition: Any, mentions: list[str]
) -> None:
    registry.register("tag", _tag)
    with pytest.raises(WorkflowValidationError) as caught:
        await engine.register_workflow(definition)
    message = str(caught.value)
    for text in mentions:
        assert text in message, (text, message)
    assert caught.value.issues, "the individual problems are listed"
    assert await engine.store.get_workflow_count(active_only=False) == 0
    await assert_nothing_created(engine)


@pytest.mark.parametrize(
    "text", ["{not json", b"[1, 2]", "null"], ids=["broken-json", "json-array", "json-null"]
)
async def test_definition_text_that_is_not_a_json_object_is_refused(
    engine: WorkflowEngine, text: str | bytes
) -> None:
    with pytest.raises(WorkflowValidationError):
        await engine.register_workflow(text)
    assert await engine.store.get_workflow_count(active_only=False) == 0


async def test_unknown_node_type_is_refused_at_registration_not_at_run_time(
    engine: WorkflowEngine, registry: NodeRegistry, rec: Recorder
) -> None:
    rec.register(registry, "tag", _tag)
    await engine.start_workers(2)
    definition = workflow("needs-plugin", node("a", "tag"), node("send", "email", "a"))

    with pytest.raises(NodeNotRegisteredError) as caught:
        await engine.register_workflow(definition)

    assert isinstance(caught.value, WorkflowValidationError)  # and so a SpaneError
    message = str(caught.value)
    assert "needs-plugin" in message
    assert "'send'" in message
    assert "'email'" in message
    assert caught.value.workflow_id == "needs-plugin"
    assert await engine.store.get_workflow_count(active_only=False) == 0
    # Not saved, so it cannot be started either: nothing ever reaches a worker.
    with pytest.raises(WorkflowNotFoundError):
        await engine.enqueue_workflow("needs-plugin")
    await assert_nothing_created(engine)
    assert rec.calls == []


@pytest.mark.parametrize("workflow_id", ["missing", "Not Valid!", "", "x" * 300])
async def test_unknown_workflow_id_is_refused(ready: WorkflowEngine, workflow_id: str) -> None:
    with pytest.raises(WorkflowNotFoundError) as caught:
        await ready.enqueue_workflow(workflow_id, {"a": 1})
    assert repr(workflow_id)[:40].rstrip("'") in str(caught.value)
    await assert_nothing_created(ready)


async def test_workflow_id_of_the_wrong_type_is_refused(ready: WorkflowEngine) -> None:
    with pytest.raises(WorkflowNotFoundError):
        await ready.enqueue_workflow(42)  # type: ignore[arg-type]
    await assert_nothing_created(ready)


@pytest.mark.parametrize(
    "initial_data",
    [
        {"when": datetime(2024, 1, 1, tzinfo=UTC)},
        {"obj": object()},
        {"nested": [1, {"deep": {1, 2}}]},
        b"raw bytes",
        Decimal("1.5"),
        float("nan"),
        {"x": math.inf},
        [-math.inf],
        _deeply_nested(100_000),
    ],
    ids=[
        "datetime",
        "object",
        "set",
        "bytes",
        "decimal",
        "nan",
        "inf",
        "-inf",
        "too-deep",
    ],
)
async def test_initial_data_that_is_not_json_is_refused_before_anything_is_written(
    ready: WorkflowEngine, rec: Recorder, initial_data: Any
) -> None:
    with pytest.raises(SerializationError) as caught:
        await ready.enqueue_workflow("ok", initial_data)
    assert "'ok'" in str(caught.value)
    assert "initial data" in str(caught.value)
    await assert_nothing_created(ready)
    assert rec.calls == []


async def test_metadata_that_is_not_json_is_refused(ready: WorkflowEngine) -> None:
    with pytest.raises(SerializationError) as caught:
        await ready.enqueue_workflow("ok", 1, metadata={"at": datetime.now(UTC)})
    assert "'ok'" in str(caught.value)
    await assert_nothing_created(ready)


@pytest.mark.parametrize(
    "output",
    [
        {"when": datetime(2024, 1, 1, tzinfo=UTC)},
        {"obj": object()},
        float("nan"),
        {"x": [math.inf]},
    ],
    ids=["datetime", "object", "nan", "inf"],
)
async def test_node_output_that_is_not_json_fails_that_node_and_the_worker_survives(
    engine: WorkflowEngine, registry: NodeRegistry, rec: Recorder, output: Any
) -> None:
    async def emit(ctx: ExecutionContext) -> Any:
        return output

    rec.register(registry, "emit", emit)
    rec.register(registry, "tag", _tag)
    policy = {"max_attempts": 3, "backoff": {"type": "fixed", "delay": 10}}
    await engine.register_workflow(
        workflow(
            "bad-output",
            node("producer", "emit", retry_policy=policy),
            node("consumer", "tag", "producer"),
        )
    )
    await engine.register_workflow(workflow("fine", node("a", "tag")))
    await engine.start_workers(2)

    state = await engine.run_workflow("bad-output", timeout=10)

    assert state.status is ExecutionStatus.FAILED
    result = state.node_results["producer"]
    assert result.status is NodeStatus.FAILED
    assert "'producer'" in (result.error or "")
    assert "JSON" in (result.error or "")
    assert result.attempts == 1  # the same value would fail again: no retry
    assert rec.of("consumer") == []
    # The worker is still alive and keeps processing.
    for i in range(3):
        again = await engine.run_workflow("fine", i, timeout=10)
        assert again.status is ExecutionStatus.COMPLETED
        assert again.node_results["a"].data == {"node": "a", "input": i}
    await wait_queue_empty(engine)


@pytest.mark.parametrize(
    "options",
    [
        {"priority": 0},
        {"priority": 11},
        {"priority": -1},
        {"priority": 5.5},
        {"priority": "5"},
        {"priority": True},
        {"delay": -1},
        {"delay": -0.001},
        {"delay": timedelta(seconds=-1)},
        {"delay": float("nan")},
        {"delay": float("inf")},
        {"delay": "10"},
        {"delay": 1e12},
        {"delay": MAX_DELAY_SECONDS + 1},
        {"delay": timedelta(days=3651)},
        {"idempotency_key": ""},
        {"idempotency_key": "k" * 201},
        {"idempotency_key": 123},
    ],
    ids=[
        "priority-0",
        "priority-11",
        "priority-negative",
        "priority-float",
        "priority-str",
        "priority-bool",
        "delay-negative",
        "delay-slightly-negative",
        "delay-negative-timedelta",
        "delay-nan",
        "delay-inf",
        "delay-str",
        "delay-1e12",
        "delay-over-10-years",
        "delay-timedelta-over-10-years",
        "idempotency-key-empty",
        "idempotency-key-too-long",
        "idempotency-key-int",
    ],
)
async def test_out_of_range_enqueue_options_are_refused(
    ready: WorkflowEngine, rec: Recorder, options: dict[str, Any]
) -> None:
    with pytest.raises(InvalidEnqueueOptionsError) as caught:
        await ready.enqueue_workflow("ok", {"a": 1}, **options)
    error = caught.value
    option = next(iter(options))
    assert option in str(error)
    assert error.workflow_id == "ok"
    assert "'ok'" in str(error), f"the message should name the workflow: {error}"
    await assert_nothing_created(ready)
    assert rec.calls == []


async def test_the_longest_delay_is_accepted(ready: WorkflowEngine) -> None:
    execution_id = await ready.enqueue_workflow("ok", 1, delay=MAX_DELAY_SECONDS)
    state = await ready.get_execution(execution_id)
    assert state.status is ExecutionStatus.RUNNING  # started, its entry node due in 10 years
    assert (await ready.get_queue_stats()).scheduled >= 1
    await ready.cancel_execution(execution_id)


async def test_a_schedule_further_than_10_years_is_refused(ready: WorkflowEngine) -> None:
    with pytest.raises(InvalidEnqueueOptionsError) as caught:
        await ready.schedule_workflow("ok", 1, at=datetime(9000, 1, 1, tzinfo=UTC))
    assert "delay" in str(caught.value)
    await assert_nothing_created(ready)


@pytest.mark.parametrize(
    "option",
    [
        "lease_seconds",
        "poll_delay",
        "sweep_interval_seconds",
        "stale_after_seconds",
        "idempotency_ttl_seconds",
        "schedule_grace_seconds",
        "schedule_refresh_seconds",
        "cache_ttl_seconds",
        "cancel_grace_seconds",
        "shutdown_grace",
    ],
)
@pytest.mark.parametrize("value", [1e300, math.inf, math.nan], ids=["1e300", "inf", "nan"])
def test_engine_time_settings_are_bounded(option: str, value: float) -> None:
    with pytest.raises(ConfigurationError) as caught:
        WorkflowEngine(NodeRegistry(), **{option: value})
    assert option in str(caught.value)
    assert "10 years" in str(caught.value)


@pytest.mark.parametrize(
    ("ms", "expected"),
    [(1e300, MAX_DELAY_MS), (math.inf, MAX_DELAY_MS), (math.nan, 1), (-5.0, 1)],
    ids=["1e300", "inf", "nan", "negative"],
)
async def test_a_hold_from_a_hand_raised_rate_limit_error_is_bounded(
    engine: WorkflowEngine, ms: float, expected: int
) -> None:
    """``raise RateLimitError(retry_after_ms=...)`` skips ``ctx.rate_limit``'s checks: the
    hold is clamped to 1 ms .. 10 years instead of failing in Redis (a QueueError that
    left the node queued for good)."""
    assert await engine.traffic.block("api", ms) == expected


async def test_every_bad_input_error_is_a_spane_error_with_a_code(ready: WorkflowEngine) -> None:
    attempts: list[Any] = [
        ready.enqueue_workflow("missing"),
        ready.enqueue_workflow("ok", {"x": object()}),
        ready.enqueue_workflow("ok", priority=99),
        ready.register_workflow(workflow("bad", node("a", "tag", "a"))),
        ready.register_workflow(workflow("bad", node("a", "unregistered"))),
    ]
    codes = set()
    for attempt in attempts:
        with pytest.raises(SpaneError) as caught:
            await attempt
        codes.add(caught.value.code)
        assert caught.value.to_dict()["message"] == str(caught.value)
    assert len(codes) == len(attempts)  # each kind of mistake has its own code


async def test_node_output_over_the_size_limit_fails_that_node(
    registry: NodeRegistry, rec: Recorder, make_engine: EngineFactory
) -> None:
    async def big(ctx: ExecutionContext) -> Any:
        return "x" * ctx.input_data

    rec.register(registry, "big", big)
    rec.register(registry, "tag", _tag)
    engine = await make_engine(registry, max_output_bytes=1000)
    await engine.register_workflow(
        workflow("big-output", node("producer", "big"), node("consumer", "tag", "producer"))
    )
    await engine.start_workers(2)

    small = await engine.run_workflow("big-output", 100, timeout=10)
    assert small.status is ExecutionStatus.COMPLETED

    state = await engine.run_workflow("big-output", 5000, timeout=10)
    assert state.status is ExecutionStatus.FAILED
    error = state.node_results["producer"].error or ""
    assert "'producer'" in error
    assert "1000" in error
    assert len(rec.of("consumer")) == 1  # only the small run's


async def test_get_workflow_of_an_unknown_id_or_version_raises(ready: WorkflowEngine) -> None:
    with pytest.raises(WorkflowNotFoundError) as caught:
        await ready.get_workflow("nope")
    assert "'nope'" in str(caught.value)
    with pytest.raises(WorkflowNotFoundError) as caught:
        await ready.get_workflow("ok", version=7)
    assert "'ok'" in str(caught.value)
    assert "7" in str(caught.value)
