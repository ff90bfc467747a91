"""Hostile input, generated: every bad definition, payload or id gets a ``SpaneError`` with a
message — never another exception, a hang, or a half-written execution.

The definition loader is pure and fuzzed hard; the enqueue path runs against a real engine
(in-memory store, the test Redis), with fewer examples, and every execution it accepts must
then complete.
"""

from __future__ import annotations

import asyncio
import json
import math
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spane_py import Limits, NodeRegistry, SpaneError, WorkflowEngine
from spane_py.definitions.graph import compile_workflow
from spane_py.definitions.loading import parse_definition
from spane_py.errors import SerializationError, WorkflowValidationError
from spane_py.limits import encode_payload, json_depth

# JSON-ish values, including what JSON cannot carry.
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),  # includes lone surrogates: not valid UTF-8
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.text(max_size=8), st.integers()), inner, max_size=4),
    ),
    max_leaves=20,
)
weird_ids = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["a:b", "a/b", "a b", "ünï", "", "-x", "A", "x" * 300, "a\x00b", "é:/ "]),
)
node_types = st.sampled_from(["noop", "delay", "sub-workflow", "wait", "map", "missing", ""])


@st.composite
def definitions(draw: st.DrawFn) -> Any:
    """Mostly well-shaped definitions with broken parts, sometimes anything at all."""
    if draw(st.integers(0, 9)) == 0:
        return draw(values)
    ids = draw(st.lists(st.one_of(st.sampled_from(["a", "b", "c", "d"]), weird_ids), max_size=6))
    nodes = []
    for node_id in ids:
        node: dict[str, Any] = {"id": node_id, "type": draw(node_types)}
        if draw(st.booleans()):
            node["inputs"] = draw(st.lists(st.one_of(st.sampled_from(ids or ["a"]), weird_ids)))
        if draw(st.booleans()):
            node["config"] = draw(values)
        if draw(st.integers(0, 4)) == 0:
            node["retryPolicy"] = draw(values)
        nodes.append(node)
    definition: dict[str, Any] = {"id": draw(st.one_of(st.just("wf"), weird_ids)), "nodes": nodes}
    if draw(st.booleans()):
        definition["entryNodeId"] = draw(st.one_of(st.sampled_from(ids or ["a"]), weird_ids))
    if draw(st.integers(0, 5)) == 0:
        definition["triggers"] = draw(values)
    return definition


def _registry() -> NodeRegistry:
    registry = NodeRegistry()

    async def noop(ctx: Any) -> Any:
        return ctx.input_data

    registry.register("noop", noop)
    return registry


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(definitions())
def test_the_loader_answers_any_definition_with_a_spane_error(raw: Any) -> None:
    registry = _registry()
    for form in (raw, _as_text(raw)):
        if form is None:
            continue
        error = spane_error_of(
            lambda form=form: registry.check_workflow(compile_workflow(parse_definition(form)))
        )
        if error is not None:
            assert error.message  # a message that says something
            assert isinstance(error, WorkflowValidationError)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_bytes_that_are_not_utf8_json_are_refused(raw: bytes) -> None:
    error = spane_error_of(lambda: parse_definition(raw))
    assert error is None or (isinstance(error, WorkflowValidationError) and error.message)


def spane_error_of(call: Callable[[], object]) -> SpaneError | None:
    """Run ``call``; the SpaneError it raised, or None. Any other exception propagates."""
    try:
        call()
    except SpaneError as exc:
        return exc
    return None


def _as_text(raw: Any) -> str | None:
    try:
        return json.dumps(raw)
    except (TypeError, ValueError):
        return None


def test_deep_and_huge_definitions_are_refused_before_parsing() -> None:
    deep: Any = 0
    for _ in range(10_000):
        deep = [deep]
    with pytest.raises(WorkflowValidationError, match="nests deeper"):
        parse_definition(
            {"id": "wf", "nodes": [{"id": "a", "type": "noop", "config": {"x": deep}}]}
        )
    text = '{"id": "wf", "nodes": [' + "[" * 100_000 + "]" * 100_000 + "]}"
    with pytest.raises(WorkflowValidationError):
        parse_definition(text)
    big = json.dumps(
        {"id": "wf", "nodes": [{"id": "a", "type": "noop", "config": {"s": "x" * 2_000_000}}]}
    )
    with pytest.raises(WorkflowValidationError, match="over the limit of 1048576 bytes"):
        parse_definition(big)
    many = {"id": "wf", "nodes": [{"id": f"n{i}", "type": "noop"} for i in range(1001)]}
    with pytest.raises(WorkflowValidationError, match="1001 nodes, over the limit of 1000"):
        parse_definition(many)
    small = Limits(max_nodes=2, max_definition_bytes=200, max_depth=3)
    with pytest.raises(WorkflowValidationError, match="over the limit of 2"):
        parse_definition(
            {"id": "wf", "nodes": [{"id": f"n{i}", "type": "noop"} for i in range(3)]}, small
        )


@settings(max_examples=300, deadline=None)
@given(values)
def test_payloads_encode_or_raise_a_serialization_error(value: Any) -> None:
    text: list[str] = []
    error = spane_error_of(
        lambda: text.append(
            encode_payload(value, what="the initial data", limits=Limits(max_depth=5))
        )
    )
    if error is not None:
        assert isinstance(error, SerializationError)
        assert "the initial data" in error.message
    else:
        assert json_depth(json.loads(text[0]), 5) <= 5
        assert not _has_non_finite(json.loads(text[0]))


def _has_non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, list):
        return any(_has_non_finite(v) for v in value)
    if isinstance(value, dict):
        return any(_has_non_finite(v) for v in value.values())
    return False


def test_limits_are_checked() -> None:
    with pytest.raises(SpaneError, match="max_depth must be a positive integer"):
        Limits(max_depth=0)
    with pytest.raises(SerializationError, match="over the limit of 10 bytes"):
        encode_payload("x" * 20, what="payload", limits=Limits(max_payload_bytes=10))


# The enqueue path, on a real engine ------------------------------------------------------


@pytest.fixture
async def fuzz_engine(redis_url: str) -> AsyncIterator[WorkflowEngine]:
    engine = WorkflowEngine(
        _registry(),
        redis_url=redis_url,
        key_prefix=f"fz{uuid.uuid4().hex[:10]}",
        poll_delay=0.2,
        limits=Limits(max_depth=8, max_payload_bytes=4096),
    )
    async with engine:
        await engine.register_workflow(
            {
                "id": "wf",
                "nodes": [
                    {"id": "a", "type": "noop"},
                    {"id": "b", "type": "noop", "inputs": ["a"]},
                ],
            }
        )
        await engine.start_workers(10)
        try:
            yield engine
        finally:
            await engine.stop_workers(grace_seconds=1)
            await engine.purge()


# Hypothesis drives the loop here by hand (``.example()``): @given cannot share the engine.
@pytest.mark.filterwarnings("ignore::hypothesis.errors.NonInteractiveExampleWarning")
async def test_enqueue_answers_any_input_and_every_accepted_execution_completes(
    fuzz_engine: WorkflowEngine,
) -> None:
    cases = st.tuples(
        st.one_of(st.just("wf"), weird_ids),
        values,
        st.one_of(st.none(), st.integers(-5, 15), st.floats(), st.text(max_size=3)),
        st.one_of(st.none(), weird_ids),
        st.one_of(st.none(), values),
    )
    accepted: list[str] = []
    refused = 0
    for _ in range(150):
        workflow_id, data, priority, key, metadata = cases.example()
        error: SpaneError | None = None
        try:
            eid = await asyncio.wait_for(
                fuzz_engine.enqueue_workflow(
                    workflow_id,
                    data,
                    priority=priority,  # type: ignore[arg-type]
                    idempotency_key=key,
                    metadata=metadata,  # type: ignore[arg-type]
                ),
                timeout=10,
            )
        except SpaneError as exc:
            error = exc
        else:
            accepted.append(eid)
        if error is not None:
            assert error.message
            refused += 1
    assert refused > 0
    for eid in dict.fromkeys(accepted):
        state = await fuzz_engine.wait_for_execution(eid, timeout=20)
        assert state.status == "completed"
    # Nothing half-written: every execution in the store is one that was accepted.
    assert await fuzz_engine.store.get_execution_count() == len(set(accepted))


async def test_ids_with_separators_are_refused_or_not_found(fuzz_engine: WorkflowEngine) -> None:
    for bad in ["a:b", "wf/x", "wf ", "ünï", "", "wf:*"]:
        with pytest.raises(SpaneError):
            await fuzz_engine.enqueue_workflow(bad, 1)
        with pytest.raises(SpaneError):
            await fuzz_engine.get_execution(bad)
        with pytest.raises(SpaneError):
            await fuzz_engine.pause_execution(bad)
    assert await fuzz_engine.store.get_execution_count() == 0
