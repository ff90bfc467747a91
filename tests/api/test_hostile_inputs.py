"""What a hostile or careless sender gets back (issue 12, item 7), on both stores: a NUL
character or a lone surrogate anywhere a request carries text, and durations too long to
compute with, are 422s naming the field; a failing store or queue answers 503 without the
driver's text.

They used to be 503 STATE_PERSISTENCE_FAILED echoing asyncpg's message (PostgreSQL), a
500 (OverflowError, PydanticSerializationError), or accepted (the in-memory store).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from spane_py import NodeRegistry, QueueError, StatePersistenceError, WorkflowEngine
from spane_py.api import ApiSettings, create_app
from tests.api._support import GREET, error_of, make_client
from tests.conftest import fresh_pg_schema


@pytest.fixture(params=["memory", "postgres"])
async def engine_on(
    request: pytest.FixtureRequest, registry: NodeRegistry, redis_url: str, key_prefix: str
) -> AsyncIterator[WorkflowEngine]:
    """An engine (no worker: nothing here runs) on each store, with ``greet`` registered."""
    if request.param == "memory":
        engine = WorkflowEngine(registry, redis_url=redis_url, key_prefix=key_prefix)
        async with engine:
            await engine.register_workflow(GREET)
            yield engine
            await engine.purge()
        return
    from spane_py.stores.postgres.store import PostgresExecutionStore

    url = request.getfixturevalue("database_url")
    async with fresh_pg_schema(url, request.getfixturevalue("_pg_schema_sql")) as schema:
        store = PostgresExecutionStore(url, schema=schema, min_pool_size=1, max_pool_size=4)
        engine = WorkflowEngine(registry, store, redis_url=redis_url, key_prefix=key_prefix)
        async with engine:
            await engine.register_workflow(GREET)
            yield engine
            await engine.purge()


@pytest.fixture
async def api(engine_on: WorkflowEngine) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(engine_on, ApiSettings(token=None, cors_origins=""), close_engine=False)
    async with make_client(app) as client:
        yield client


def _json(body: Any) -> dict[str, Any]:
    """A raw JSON request (``json.dumps`` writes a lone surrogate as its \\u escape)."""
    return {"content": json.dumps(body), "headers": {"content-type": "application/json"}}


async def _nothing_started(engine: WorkflowEngine) -> None:
    assert await engine.store.get_execution_count() == 0


# (method, url, request kwargs, the parameter named in the message)
NUL_IN_THE_URL = [
    ("GET", "/api/executions?workflow_id=a%00b", {}, "query parameter 'workflow_id'"),
    ("GET", "/api/stats?workflow_id=%00", {}, "query parameter 'workflow_id'"),
    ("GET", "/api/resume-tokens?execution_id=x%00", {}, "query parameter 'execution_id'"),
    ("GET", "/api/workflows/greet%00", {}, "path parameter 'workflow_id'"),
    ("GET", "/api/workflows/a%00b/versions", {}, "path parameter 'workflow_id'"),
    ("GET", "/api/workflows/a%00b/versions/1", {}, "path parameter 'workflow_id'"),
    ("POST", "/api/workflows/a%00b/executions", {"json": {}}, "path parameter 'workflow_id'"),
    ("GET", "/api/executions/a%00b", {}, "path parameter 'execution_id'"),
    ("GET", "/api/executions/a%00b/trace", {}, "path parameter 'execution_id'"),
    ("POST", "/api/executions/a%00b/pause", {}, "path parameter 'execution_id'"),
    ("POST", "/api/executions/a%00b/replay", {}, "path parameter 'execution_id'"),
    (
        "POST",
        "/api/workflows?change_notes=v2%00",
        {"json": {"id": "n", "nodes": [{"id": "a", "type": "echo"}]}},
        "query parameter 'change_notes'",
    ),
]


@pytest.mark.parametrize(("method", "url", "kwargs", "named"), NUL_IN_THE_URL)
async def test_a_nul_in_a_path_or_query_parameter_is_a_422_naming_it(
    api: httpx.AsyncClient,
    engine_on: WorkflowEngine,
    method: str,
    url: str,
    kwargs: dict[str, Any],
    named: str,
) -> None:
    res = await api.request(method, url, **kwargs)
    assert res.status_code == 422, res.text
    error = error_of(res)
    assert error["code"] == "INVALID_REQUEST"
    assert error["message"].startswith(f"{named}: contains the NUL character"), error
    assert "UTF8" not in res.text
    assert "Error" not in error["message"]
    await _nothing_started(engine_on)
    assert await engine_on.store.get_workflow_count() == 1


BAD_BODY_FIELDS = [
    ("/api/workflows/greet/executions", {"idempotency_key": "k\x00"}, "idempotency_key"),
    ("/api/workflows/greet/executions", {"idempotency_key": "k\ud800"}, "idempotency_key"),
    ("/api/executions/bulk/cancel", {"execution_ids": ["x", "y\x00"]}, "execution_ids.1"),
    ("/api/executions/bulk/pause", {"execution_ids": ["x"], "reason": "\x00"}, "reason"),
    ("/api/executions/01a20000-0000-7000-8000-000000000000/cancel", {"reason": "\x00"}, "reason"),
    ("/api/resume", {"token": "t\x00"}, "token"),
    ("/api/resume-tokens/validate", {"token": "\ud800"}, "token"),
    ("/api/resume-tokens/revoke", {"token": "t\x00"}, "token"),
]


@pytest.mark.parametrize(("url", "body", "field"), BAD_BODY_FIELDS)
async def test_unstorable_text_in_a_body_field_is_a_422_naming_it(
    api: httpx.AsyncClient, engine_on: WorkflowEngine, url: str, body: Any, field: str
) -> None:
    res = await api.post(url, **_json(body))
    assert res.status_code == 422, res.text
    error = error_of(res)
    assert error["code"] == "INVALID_REQUEST"
    assert error["message"].startswith(f"body field {field!r}: contains "), error
    await _nothing_started(engine_on)


@pytest.mark.parametrize("bad", ["x\x00", "x\ud800"], ids=["nul", "surrogate"])
async def test_unstorable_text_in_a_payload_is_a_422_naming_where(
    api: httpx.AsyncClient, engine_on: WorkflowEngine, bad: str
) -> None:
    res = await api.post(
        "/api/workflows/greet/executions", **_json({"input": {"items": ["ok", bad]}})
    )
    assert res.status_code == 422, res.text
    error = error_of(res)
    assert error["code"] == "SERIALIZATION_FAILED"
    assert "initial data" in error["message"]
    assert "$.items[1]" in error["message"]
    meta = await api.post("/api/workflows/greet/executions", **_json({"metadata": {bad: 1}}))
    assert meta.status_code == 422, meta.text
    assert "metadata" in error_of(meta)["message"]
    bulk = await api.post("/api/workflows/greet/executions/bulk", **_json({"inputs": [1, bad]}))
    assert bulk.status_code == 422, bulk.text
    assert "initial data #1" in error_of(bulk)["message"]
    await _nothing_started(engine_on)


@pytest.mark.parametrize(
    ("definition", "named"),
    [
        ({"id": "t", "name": "x\x00", "nodes": [{"id": "a", "type": "echo"}]}, "name"),
        (
            {"id": "t", "nodes": [{"id": "a", "type": "echo", "config": {"k": "\ud800"}}]},
            "node 'a': config: at k",
        ),
        (
            {"id": "t", "description": "\ud800", "nodes": [{"id": "a", "type": "echo"}]},
            "description",
        ),
        (
            {"id": "t", "nodes": [{"id": "a", "type": "echo", "config": {"\x00": 1}}]},
            "node 'a': config",
        ),
    ],
    ids=["nul-name", "surrogate-config", "surrogate-description", "nul-config-key"],
)
async def test_unstorable_text_in_a_definition_is_a_422_naming_the_field(
    api: httpx.AsyncClient, engine_on: WorkflowEngine, definition: Any, named: str
) -> None:
    res = await api.post("/api/workflows", **_json(definition))
    assert res.status_code == 422, res.text
    error = error_of(res)
    assert error["code"] == "WORKFLOW_VALIDATION_FAILED"
    assert named in error["message"], error
    assert await engine_on.store.get_workflow_count() == 1  # greet only


@pytest.mark.parametrize(
    "delay",
    ["1e12", "315360001", "-1", "NaN", "Infinity", "1e400"],
)
async def test_a_delay_out_of_range_is_a_422_naming_it(
    api: httpx.AsyncClient, engine_on: WorkflowEngine, delay: str
) -> None:
    res = await api.post(
        "/api/workflows/greet/executions",
        content=f'{{"delay_seconds": {delay}}}',
        headers={"content-type": "application/json"},
    )
    assert res.status_code == 422, res.text
    error = error_of(res)
    assert error["code"] == "INVALID_REQUEST"
    assert error["message"].startswith("body field 'delay_seconds'"), error
    bulk = await api.post(
        "/api/workflows/greet/executions/bulk",
        content=f'{{"inputs": [1], "delay_seconds": {delay}}}',
        headers={"content-type": "application/json"},
    )
    assert bulk.status_code == 422, bulk.text
    await _nothing_started(engine_on)


async def test_the_longest_delay_is_accepted(api: httpx.AsyncClient) -> None:
    res = await api.post("/api/workflows/greet/executions", json={"delay_seconds": 315360000})
    assert res.status_code == 201, res.text


@pytest.mark.parametrize(
    ("error", "withheld"),
    [
        (
            StatePersistenceError(
                "listing executions failed: CharacterNotInRepertoireError: invalid byte "
                'sequence for encoding "UTF8": 0x00 (host db-7.internal:5432)',
                details={"sql": "SELECT secret"},
            ),
            "the state store (the database) failed",
        ),
        (
            QueueError("could not enqueue: Error 111 connecting to redis-3.internal:6379"),
            "the job queue (Redis) failed",
        ),
    ],
    ids=["store", "queue"],
)
async def test_a_failing_store_or_queue_does_not_tell_the_client_the_drivers_text(
    api: httpx.AsyncClient,
    engine_on: WorkflowEngine,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    error: Exception,
    withheld: str,
) -> None:
    async def fail(**kwargs: Any) -> Any:
        raise error

    monkeypatch.setattr(engine_on.store, "list_executions", fail)
    res = await api.get("/api/executions")
    assert res.status_code == 503
    body = error_of(res)
    assert body["code"] == error.code  # type: ignore[attr-defined]
    assert body["message"] == f"{withheld}; the server's log has the details"
    assert body["details"] == {}
    for secret in ("internal", "UTF8", "SELECT"):
        assert secret not in res.text
    # The operator still has it all.
    assert any("internal" in r.getMessage() for r in caplog.records)
