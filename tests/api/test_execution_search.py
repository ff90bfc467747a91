"""GET /api/executions: searching (id prefix, waiting, metadata and input fields, parents
and roots) with the cursor; bulk cancel with a reason; POST /api/dlq/retry."""

from __future__ import annotations

import typing
from typing import Any

import httpx

from spane_py import WorkflowEngine
from spane_py.api.routes.executions import StatusFilter
from spane_py.state import ExecutionStatus
from tests.api._support import Gate, error_of, eventually, wait_status
from tests.api.test_postgres import pg_client

__all__ = ["pg_client"]  # a fixture of this module too

PARENT = {
    "id": "parent",
    "nodes": [
        {"id": "call", "type": "sub-workflow", "config": {"workflowId": "greet"}, "outputs": []}
    ],
}


async def _start(
    client: httpx.AsyncClient, workflow_id: str, data: Any = None, **metadata: Any
) -> str:
    res = await client.post(
        f"/api/workflows/{workflow_id}/executions", json={"input": data, "metadata": metadata}
    )
    assert res.status_code == 201, res.text
    execution_id: str = res.json()["execution_id"]
    return execution_id


async def _ids(client: httpx.AsyncClient, *params: tuple[str, Any]) -> list[str]:
    """Every execution listed, read two at a time through the cursor."""
    seen: list[str] = []
    cursor = None
    while True:
        query = [*params, ("limit", 2)] + ([("cursor", cursor)] if cursor else [])
        res = await client.get("/api/executions", params=query)
        assert res.status_code == 200, res.text
        page = res.json()
        seen += [i["execution_id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return seen


def test_the_status_filter_is_a_status_or_waiting() -> None:
    assert typing.get_args(StatusFilter) == (*(s.value for s in ExecutionStatus), "waiting")


async def test_metadata_and_input_fields(client: httpx.AsyncClient) -> None:
    a = await _start(client, "greet", {"customer_id": 7}, tenant="acme")
    b = await _start(client, "greet", {"customer_id": "7"}, tenant="acme", plan={"tier": 2})
    c = await _start(client, "greet", {"customer_id": 8}, tenant="zeta", plan={"tier": 2})
    for execution_id in (a, b, c):
        await wait_status(client, execution_id, "completed")
    assert await _ids(client, ("where", "metadata.tenant=acme")) == [b, a]
    assert await _ids(client, ("where", "metadata.plan.tier=2")) == [c, b]
    assert await _ids(client, ("where", "input.customer_id=7")) == [a]
    assert await _ids(client, ("where", 'input.customer_id="7"')) == [b]
    assert await _ids(
        client, ("where", "metadata.tenant=acme"), ("where", "metadata.plan.tier=2")
    ) == [b]
    assert await _ids(client, ("where", 'metadata.plan={"tier":2}'), ("workflow_id", "greet")) == [
        c,
        b,
    ]
    assert await _ids(client, ("where", "metadata.tenant=nobody")) == []
    for bad in ("tenant=acme", "metadata.=x", "output.x=1", "metadata.tenant"):
        res = await client.get("/api/executions", params={"where": bad})
        assert res.status_code == 422, bad
        error = error_of(res)
        assert error["code"] == "INVALID_REQUEST"
        assert "query parameter 'where'" in error["message"]
    too_many = await client.get("/api/executions", params=[("where", "metadata.a=1")] * 11)
    assert too_many.status_code == 422


async def test_id_prefix_and_time(client: httpx.AsyncClient) -> None:
    ids = [await _start(client, "greet", i) for i in range(3)]
    for execution_id in ids:
        await wait_status(client, execution_id, "completed")
    assert await _ids(client, ("id_prefix", ids[1])) == [ids[1]]
    assert await _ids(client, ("id_prefix", ids[1][:30].upper())) == [ids[1]]
    shared = ids[0][:8]
    assert set(await _ids(client, ("id_prefix", shared))) >= {
        i for i in ids if i.startswith(shared)
    }
    assert await _ids(client, ("id_prefix", "zz")) == []
    long = await client.get("/api/executions", params={"id_prefix": "a" * 37})
    assert long.status_code == 422
    items = (await client.get("/api/executions")).json()["items"]
    created = {i["execution_id"]: i["created_at"] for i in items}
    assert await _ids(client, ("since", created[ids[1]])) == [ids[2], ids[1]]
    assert await _ids(client, ("until", created[ids[1]])) == [ids[0]]
    assert await _ids(
        client, ("since", created[ids[0]]), ("until", created[ids[2]]), ("id_prefix", ids[1])
    ) == [ids[1]]


async def test_waiting(client: httpx.AsyncClient, gate: Gate) -> None:
    waits = await _start(client, "approval", {"order": 1})
    holds = await _start(client, "gated", 1)
    await eventually(lambda: _contains(client, ("status", "waiting"), waits))
    await eventually(lambda: _async_true(holds in gate.entered))
    assert await _ids(client, ("status", "waiting")) == [waits]
    assert set(await _ids(client, ("status", "running"))) == {waits, holds}
    assert await _ids(client, ("status", "waiting"), ("workflow_id", "gated")) == []
    bad = await client.get("/api/executions", params={"status": "sleeping"})
    assert bad.status_code == 422
    gate.open()


async def _contains(client: httpx.AsyncClient, param: tuple[str, Any], execution_id: str) -> bool:
    return execution_id in await _ids(client, param)


async def _async_true(value: bool) -> bool:
    return value


async def test_parents_and_roots(client: httpx.AsyncClient, running: WorkflowEngine) -> None:
    await running.register_workflow(PARENT)
    parents = [await _start(client, "parent", {"n": i}) for i in range(2)]
    for execution_id in parents:
        await wait_status(client, execution_id, "completed")
    alone = await _start(client, "greet", "x")
    await wait_status(client, alone, "completed")
    children = {}
    for parent in parents:
        trace = (await client.get(f"/api/executions/{parent}/trace")).json()
        (child,) = trace["children"]
        children[parent] = child["execution_id"]
    assert await _ids(client, ("parent_id", parents[0])) == [children[parents[0]]]
    assert await _ids(client, ("parent_id", parents[0]), ("parent_id", parents[1])) == [
        children[parents[1]],
        children[parents[0]],
    ]
    roots = await _ids(client, ("roots_only", "true"))
    assert roots == [alone, parents[1], parents[0]]
    child = (await client.get("/api/executions", params={"parent_id": parents[1]})).json()
    assert child["items"][0]["parent_execution_id"] == parents[1]
    assert child["items"][0]["depth"] == 1


async def test_a_bad_cursor_and_range_are_still_refused(client: httpx.AsyncClient) -> None:
    res = await client.get("/api/executions", params={"cursor": "nope", "where": "metadata.a=1"})
    assert error_of(res)["code"] == "INVALID_CURSOR"
    res = await client.get(
        "/api/executions",
        params={"since": "2030-01-02T00:00:00Z", "until": "2030-01-01T00:00:00Z"},
    )
    assert error_of(res)["code"] == "INVALID_RANGE"


async def test_bulk_cancel_keeps_the_reason(client: httpx.AsyncClient, gate: Gate) -> None:
    ids = [await _start(client, "gated", i, batch="b1") for i in range(3)]
    await eventually(lambda: _async_true(set(ids) <= gate.entered))
    matching = await _ids(client, ("where", "metadata.batch=b1"), ("status", "running"))
    assert set(matching) == set(ids)
    res = await client.post(
        "/api/executions/bulk/cancel", json={"execution_ids": matching, "reason": "bulk test"}
    )
    assert res.status_code == 200, res.text
    assert set(res.json()["changed"]) == set(ids)
    for execution_id in ids:
        state = await wait_status(client, execution_id, "cancelled")
        assert "bulk test" in (state["error"] or "")
    gate.open()


async def test_dlq_bulk_retry(client: httpx.AsyncClient, gate: Gate) -> None:
    ids = [await _start(client, "broken", i) for i in range(2)]
    for execution_id in ids:
        await wait_status(client, execution_id, "failed")
    items = (await client.get("/api/dlq")).json()["items"]
    dlq_ids = [i["dlq_id"] for i in items if i["execution_id"] in ids]
    assert len(dlq_ids) == 2
    gate.fail = False
    res = await client.post("/api/dlq/retry", json={"dlq_ids": [*dlq_ids, dlq_ids[0], 999999]})
    assert res.status_code == 200, res.text
    body = res.json()
    assert body["retried"] == dlq_ids
    assert list(body["errors"]) == ["999999"]
    for execution_id in ids:
        await wait_status(client, execution_id, "completed")
    again = (await client.post("/api/dlq/retry", json={"dlq_ids": dlq_ids})).json()
    assert again["retried"] == []
    assert set(again["errors"]) == {str(i) for i in dlq_ids}
    assert (await client.post("/api/dlq/retry", json={"dlq_ids": []})).status_code == 422


async def test_searching_on_postgres(pg_client: httpx.AsyncClient) -> None:
    client = pg_client
    a = await _start(client, "greet", {"customer_id": 7}, tenant="acme")
    b = await _start(client, "greet", {"customer_id": 8}, tenant="zeta")
    c = await _start(client, "broken", {"customer_id": 7}, tenant="acme")
    await wait_status(client, a, "completed")
    await wait_status(client, b, "completed")
    await wait_status(client, c, "failed")
    assert await _ids(client, ("where", "metadata.tenant=acme")) == [c, a]
    assert await _ids(client, ("where", "input.customer_id=7"), ("status", "completed")) == [a]
    assert await _ids(client, ("id_prefix", b[:20])) == [b]
    assert await _ids(client, ("roots_only", "true"), ("workflow_id", "greet")) == [b, a]
    assert await _ids(client, ("status", "waiting")) == []
