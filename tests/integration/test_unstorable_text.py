"""Text the stores cannot hold, on both stores (issue 12, item 7).

PostgreSQL refuses the NUL character in text and jsonb, and a lone surrogate ("\\ud800",
which a JSON escape can produce) is not Unicode at all. Where a caller hands such text in,
both stores refuse it the same way, with a specific ``SpaneError`` naming the field,
before anything is written (on PostgreSQL it used to be a ``StatePersistenceError``
echoing the driver, or a ``PydanticSerializationError``; the in-memory store took it).
Where a node's own code produces it (an error message, a log line), it is stored with
U+FFFD in its place: the execution settles instead of being stuck on a failing write.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from spane_py import (
    ExecutionContext,
    ExecutionStatus,
    InvalidEnqueueOptionsError,
    InvalidInputError,
    NodeRegistry,
    NodeStatus,
    SerializationError,
    WorkflowEngine,
    WorkflowValidationError,
)
from tests.integration._support import assert_nothing_created, node, workflow
from tests.integration.conftest import EngineFactory, StoreFactory

NUL = "a\x00b"
SURROGATE = "a\ud800b"


async def _echo(ctx: ExecutionContext) -> Any:
    return ctx.input_data


@pytest.fixture
async def engine(new_store: StoreFactory, make_engine: EngineFactory) -> WorkflowEngine:
    registry = NodeRegistry()
    registry.register("echo", _echo)
    eng = await make_engine(registry, new_store())
    await eng.register_workflow(
        workflow(
            "ok",
            node("a", "echo"),
            node("w", "wait", "a", config={"timeoutSeconds": 600}),
            triggers=[{"type": "schedule", "cron": "0 0 1 1 *"}],
        )
    )
    return eng


BAD_DEFINITIONS = [
    pytest.param(
        workflow("t", node("a", "echo"), description=NUL), ["description"], id="nul-description"
    ),
    pytest.param(workflow("t", node("a", "echo", name=NUL)), ["'a'", "name"], id="nul-node-name"),
    pytest.param(
        workflow("t", node("a", "echo", config={"url": ["ok", NUL]})),
        ["'a'", "config", "url[1]"],
        id="nul-config-value",
    ),
    pytest.param(
        workflow("t", node("a", "echo", config={NUL: 1})),
        ["'a'", "config", "key"],
        id="nul-config-key",
    ),
    pytest.param(
        workflow("t", node("a", "echo"), metadata={"team": SURROGATE}),
        ["metadata", "team"],
        id="surrogate-metadata",
    ),
    pytest.param(
        workflow("t", node("a", "echo", config={"x": {"y": SURROGATE}})),
        ["'a'", "config", "x.y"],
        id="surrogate-config",
    ),
    pytest.param(workflow("t", node("a", "echo"), name=SURROGATE), ["name"], id="surrogate-name"),
    pytest.param(
        workflow("t", node("a", "wait", config={"defaultOutput": NUL})),
        ["'a'", "default"],
        id="nul-builtin-config",
    ),
]


@pytest.mark.parametrize(("definition", "mentions"), BAD_DEFINITIONS)
async def test_definition_text_that_cannot_be_stored_is_a_validation_error(
    engine: WorkflowEngine, definition: dict[str, Any], mentions: list[str]
) -> None:
    before = await engine.store.get_workflow_count(active_only=False)
    with pytest.raises(WorkflowValidationError) as caught:
        await engine.register_workflow(definition)
    message = str(caught.value)
    assert "'t'" in message
    assert "NUL character" in message or "lone surrogate" in message, message
    for text in mentions:
        assert text in message, (text, message)
    assert await engine.store.get_workflow_count(active_only=False) == before
    assert await engine.list_workflow_versions("t") == []


@pytest.mark.parametrize("bad", [NUL, SURROGATE], ids=["nul", "surrogate"])
@pytest.mark.parametrize("where", ["input", "metadata-value", "metadata-key"])
async def test_payload_text_that_cannot_be_stored_names_where_it_is(
    engine: WorkflowEngine, bad: str, where: str
) -> None:
    data: Any = 1
    metadata: dict[str, Any] | None = None
    if where == "input":
        data = {"rows": [{"name": bad}]}
    elif where == "metadata-value":
        metadata = {"who": bad}
    else:
        metadata = {bad: 1}
    with pytest.raises(SerializationError) as caught:
        await engine.enqueue_workflow("ok", data, metadata=metadata)
    message = str(caught.value)
    assert "'ok'" in message
    assert ("NUL character" if bad == NUL else "lone surrogate") in message
    if where == "input":
        assert "initial data" in message
        assert "$.rows[0].name" in message
    else:
        assert "metadata" in message
    await assert_nothing_created(engine)


async def test_arguments_that_cannot_be_stored_are_refused_naming_them(
    engine: WorkflowEngine,
) -> None:
    calls: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
        ("change_notes", lambda: engine.register_workflow(workflow("n", node("a", "echo")), NUL)),
        ("workflow_id", lambda: engine.get_workflow(NUL)),
        ("workflow_id", lambda: engine.list_workflow_versions(SURROGATE)),
        ("workflow_id", lambda: engine.list_schedules(NUL)),
        ("workflow_id", lambda: engine.list_webhooks(NUL)),
        ("schedule_id", lambda: engine.pause_schedule(NUL)),
        ("schedule_id", lambda: engine.resume_schedule(NUL)),
        ("schedule_id", lambda: engine.remove_schedule(NUL)),
        ("token", lambda: engine.resume(NUL, {"ok": True})),
        ("token", lambda: engine.validate_resume_token(NUL)),
        ("token", lambda: engine.revoke_resume_token(SURROGATE)),
        ("execution_id", lambda: engine.list_resume_tokens(NUL)),
    ]
    for field, call in calls:
        with pytest.raises(InvalidInputError) as caught:
            await call()
        assert caught.value.code == "INVALID_INPUT"
        assert caught.value.details == {"field": field}
        assert str(caught.value).startswith(field), str(caught.value)
    with pytest.raises(InvalidEnqueueOptionsError) as refused:
        await engine.enqueue_workflow("ok", 1, idempotency_key=NUL)
    assert "idempotency_key" in str(refused.value)
    assert refused.value.details == {"field": "idempotency_key"}
    assert await engine.store.get_workflow_count(active_only=False) == 1  # "n" was not saved
    await assert_nothing_created(engine)


async def test_a_cancel_reason_that_cannot_be_stored_is_refused(engine: WorkflowEngine) -> None:
    await engine.start_workers(2)
    execution_id = await engine.enqueue_workflow("ok", 1)  # waits at "w"
    with pytest.raises(InvalidInputError) as caught:
        await engine.cancel_execution(execution_id, reason=NUL)
    assert caught.value.details == {"field": "reason"}
    assert caught.value.execution_id == execution_id
    assert await engine.cancel_execution(execution_id, reason="a reason") is True
    state = await engine.wait_for_execution(execution_id, timeout=30)
    assert state.status is ExecutionStatus.CANCELLED


async def test_node_text_that_cannot_be_stored_does_not_keep_the_execution_from_settling(
    new_store: StoreFactory, make_engine: EngineFactory
) -> None:
    """A node whose error message, log line or log fields hold a NUL or a lone surrogate
    (or a log field JSON cannot carry) completes or fails like any other: on PostgreSQL
    the write of its result used to fail on every delivery, and the execution stayed
    running for good."""

    async def raises(ctx: ExecutionContext) -> Any:
        raise RuntimeError(f"upstream said {NUL} and {SURROGATE}")

    async def logs(ctx: ExecutionContext) -> Any:
        ctx.log("info", f"got {NUL}", body=SURROGATE, **{NUL: 1})
        ctx.log("info", "an object", thing=object())
        ctx.log("info", "a big number", n=2**70)  # past JSON's 64-bit integers
        return "done"

    registry = NodeRegistry()
    registry.register("raises", raises)
    registry.register("logs", logs)
    engine = await make_engine(registry, new_store())
    no_retry = {"max_attempts": 1}
    await engine.register_workflow(workflow("fails", node("a", "raises", retry_policy=no_retry)))
    await engine.register_workflow(workflow("logs", node("a", "logs")))
    await engine.start_workers(2)

    failed = await engine.run_workflow("fails", timeout=30)
    assert failed.status is ExecutionStatus.FAILED
    error = failed.node_results["a"].error or ""
    assert error == "RuntimeError: upstream said a\ufffdb and a\ufffdb"
    (item,) = await engine.get_dlq_items()
    assert item.error == error
    assert "\x00" not in (item.traceback or "")

    done = await engine.run_workflow("logs", timeout=30)
    assert done.status is ExecutionStatus.COMPLETED
    assert done.node_results["a"].status is NodeStatus.SUCCEEDED
    trace = await engine.get_trace(done.execution_id)
    first, second, third = trace.logs
    assert third.fields["n"] == str(2**70)
    assert first.message == "got a\ufffdb"
    assert first.fields["body"] == "a\ufffdb"
    assert first.fields["a\ufffdb"] == 1
    assert str(second.fields["thing"]).startswith("<object object at")


@pytest.mark.parametrize(
    ("bad", "problem"),
    [(NUL, "NUL character"), (SURROGATE, "lone surrogate")],
    ids=["nul", "surrogate"],
)
async def test_the_postgres_store_called_directly_says_what_is_wrong_not_the_driver(
    database_url: str, pg_schema: str, bad: str, problem: str
) -> None:
    """Code that calls the store itself, past the engine's checks, still gets a specific
    error (``InvalidInputError``, a 422 over HTTP), never asyncpg's text in a
    ``StatePersistenceError`` (a 503)."""
    from spane_py.stores.postgres.store import PostgresExecutionStore

    store = PostgresExecutionStore(
        database_url, schema=pg_schema, apply_migrations=False, min_pool_size=1, max_pool_size=2
    )
    async with store:
        for call in (
            lambda: store.get_workflow(bad),
            lambda: store.list_executions(workflow_id=bad),
            lambda: store.get_token(bad),
        ):
            with pytest.raises(InvalidInputError) as caught:
                await call()
            message = str(caught.value)
            assert problem in message, message
            for driver_text in ("UTF8", "CharacterNotInRepertoire", "codec", "0x00"):
                assert driver_text not in message
