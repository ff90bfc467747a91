"""/api/workflows: list, register, versions, starting executions — and their 4xx."""

from __future__ import annotations

import httpx
import pytest

from spane_py import WorkflowEngine
from tests.api._support import GREET, error_of, start, wait_status


async def test_list_workflows(client: httpx.AsyncClient) -> None:
    res = await client.get("/api/workflows")
    assert res.status_code == 200
    by_id = {w["workflow_id"]: w for w in res.json()}
    assert set(by_id) == {"approval", "broken", "gated", "greet"}
    assert by_id["greet"]["version"] == 1
    assert by_id["greet"]["node_count"] == 2
    assert [w["workflow_id"] for w in res.json()] == sorted(by_id)  # ordered by id
    page = await client.get("/api/workflows", params={"limit": 2, "offset": 1})
    assert [w["workflow_id"] for w in page.json()] == ["broken", "gated"]


async def test_register_new_version_then_the_same_again(client: httpx.AsyncClient) -> None:
    changed = {**GREET, "description": "now described"}
    res = await client.post(
        "/api/workflows", json=changed, params={"change_notes": "add a description"}
    )
    assert res.status_code == 201, res.text
    body = res.json()
    assert body["workflow_id"] == "greet"
    assert body["version"] == 2
    assert body["created"] is True
    again = await client.post("/api/workflows", json=changed)
    assert again.status_code == 200
    assert again.json()["version"] == 2
    assert again.json()["created"] is False
    versions = (await client.get("/api/workflows/greet/versions")).json()
    assert [v["version"] for v in versions] == [1, 2]
    assert versions[1]["change_notes"] == "add a description"


async def test_register_accepts_spane_camel_case(client: httpx.AsyncClient) -> None:
    spane = {
        "id": "camel",
        "entryNodeId": "a",
        "nodes": [
            {"id": "a", "type": "echo", "inputs": [], "outputs": ["b"],
             "config": {"retryPolicy": {"maxAttempts": 2}}},
            {"id": "b", "type": "echo", "inputs": ["a"], "outputs": []},
        ],
    }  # fmt: skip
    res = await client.post("/api/workflows", json=spane)
    assert res.status_code == 201, res.text
    got = (await client.get("/api/workflows/camel")).json()
    assert got["definition"]["entryNodeId"] == "a"
    assert got["definition"]["nodes"][0]["retryPolicy"]["maxAttempts"] == 2


async def test_register_reports_warnings(client: httpx.AsyncClient) -> None:
    lonely = {
        "id": "lonely",
        "entryNodeId": "a",
        "nodes": [{"id": "a", "type": "echo"}, {"id": "island", "type": "echo"}],
    }
    res = await client.post("/api/workflows", json=lonely)
    assert res.status_code == 201, res.text
    assert any("island" in w for w in res.json()["warnings"])


@pytest.mark.parametrize(
    ("definition", "code", "needle"),
    [
        ({"id": "Bad Id", "nodes": [{"id": "a", "type": "echo"}]}, "WORKFLOW_VALIDATION_FAILED",
         "workflow ids are lowercase"),
        ({"id": "cyc", "nodes": [{"id": "a", "type": "echo", "outputs": ["b"]},
                                 {"id": "b", "type": "echo", "outputs": ["a"]}]},
         "WORKFLOW_VALIDATION_FAILED", "cycle"),
        ({"id": "ghost", "nodes": [{"id": "a", "type": "no-such-type"}]}, "NODE_NOT_REGISTERED",
         "no-such-type"),
        ({"id": "typo", "nodes": [{"id": "a", "tpye": "echo"}]}, "WORKFLOW_VALIDATION_FAILED",
         "node 'a'"),
        ({"id": "empty", "nodes": []}, "WORKFLOW_VALIDATION_FAILED", "no nodes"),
    ],
)  # fmt: skip
async def test_invalid_definitions_are_422_with_the_problem(
    client: httpx.AsyncClient, definition: dict[str, object], code: str, needle: str
) -> None:
    res = await client.post("/api/workflows", json=definition)
    assert res.status_code == 422, res.text
    error = error_of(res)
    assert error["code"] == code
    assert needle in error["message"]


async def test_an_invalid_definition_is_one_422_listing_every_problem(
    client: httpx.AsyncClient,
) -> None:
    definition = {
        "id": "many",
        "nodes": [
            {"id": "a", "type": "echo", "outputs": ["b"]},
            {"id": "b", "type": "echo", "outputs": ["a"]},
            {"id": "c", "type": "echo", "inputs": ["ghost"]},
            {"id": "d", "type": "no-such-type"},
            {"id": "e", "type": "echo", "timeoutMs": -5},
        ],
    }
    res = await client.post("/api/workflows", json=definition)
    assert res.status_code == 422, res.text
    error = error_of(res)
    assert error["code"] == "WORKFLOW_VALIDATION_FAILED"
    problems = error["details"]["problems"]
    assert [(p["kind"], p["node_id"]) for p in problems] == [
        ("invalid_field", "e"),
        ("unknown_reference", "c"),
        ("cycle", "a"),
        ("node_not_registered", "d"),
    ]
    assert problems[0]["path"] == ["timeoutMs"]
    assert problems[1]["edge"] == ["ghost", "c"]
    assert problems[2]["edge"] == ["b", "a"]
    assert error["details"]["issues"] == [p["message"] for p in problems]
    for problem in problems:
        assert problem["message"] in error["message"]


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"content": b"{not json", "headers": {"content-type": "application/json"}},
         "not valid JSON"),
        ({"json": [1, 2]}, "must be a JSON object"),
        ({}, "needs a JSON body"),
    ],
)  # fmt: skip
async def test_register_needs_a_json_object(
    client: httpx.AsyncClient, kwargs: dict[str, object], needle: str
) -> None:
    res = await client.post("/api/workflows", **kwargs)  # type: ignore[arg-type]
    assert res.status_code == 422, res.text
    assert error_of(res)["code"] == "INVALID_REQUEST"
    assert needle in error_of(res)["message"]


async def test_get_workflow_and_versions(client: httpx.AsyncClient) -> None:
    res = await client.get("/api/workflows/greet")
    assert res.status_code == 200
    body = res.json()
    assert body["version"] == 1
    # Edges on both sides, as SPANE writes them.
    nodes = {n["id"]: n for n in body["definition"]["nodes"]}
    assert nodes["hello"]["outputs"] == ["shout"]
    assert nodes["shout"]["inputs"] == ["hello"]
    one = await client.get("/api/workflows/greet/versions/1")
    assert one.json()["content_hash"] == body["content_hash"]


@pytest.mark.parametrize(
    "path",
    ["/api/workflows/nope", "/api/workflows/nope/versions", "/api/workflows/greet/versions/9"],
)
async def test_unknown_workflow_or_version_is_404(client: httpx.AsyncClient, path: str) -> None:
    res = await client.get(path)
    assert res.status_code == 404
    error = error_of(res)
    assert error["code"] == "WORKFLOW_NOT_FOUND"
    assert "is not registered" in error["message"]


async def test_version_must_be_a_positive_number(client: httpx.AsyncClient) -> None:
    res = await client.get("/api/workflows/greet/versions/zero")
    assert res.status_code == 422
    assert "path parameter 'version'" in error_of(res)["message"]
    res = await client.get("/api/workflows/greet/versions/0")
    assert res.status_code == 422


async def test_enqueue_runs_the_workflow(client: httpx.AsyncClient) -> None:
    res = await client.post(
        "/api/workflows/greet/executions",
        json={"input": "ada", "priority": 7, "metadata": {"source": "test"}},
    )
    assert res.status_code == 201, res.text
    assert res.json()["workflow_id"] == "greet"
    state = await wait_status(client, res.json()["execution_id"], "completed")
    assert state["node_results"]["shout"]["data"] == "ADA"
    assert state["priority"] == 7
    assert state["metadata"] == {"source": "test"}


async def test_enqueue_without_a_body(client: httpx.AsyncClient) -> None:
    res = await client.post("/api/workflows/greet/executions")
    assert res.status_code == 201, res.text
    state = await wait_status(client, res.json()["execution_id"], "completed")
    assert state["initial_data"] is None


async def test_enqueue_with_delay_and_idempotency_key(client: httpx.AsyncClient) -> None:
    body = {"input": 1, "idempotency_key": "order-17", "delay_seconds": 0.05}
    first = await client.post("/api/workflows/greet/executions", json=body)
    second = await client.post("/api/workflows/greet/executions", json=body)
    assert first.status_code == second.status_code == 201
    assert first.json()["execution_id"] == second.json()["execution_id"]
    await wait_status(client, first.json()["execution_id"], "completed")


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"priority": 11}, "body field 'priority': Input should be less than or equal to 10"),
        ({"priority": "high"}, "body field 'priority'"),
        ({"delay_seconds": -1}, "body field 'delay_seconds'"),
        ({"priorty": 3}, "body field 'priorty': is not a known field"),
        ({"idempotency_key": ""}, "body field 'idempotency_key'"),
        ({"metadata": [1]}, "body field 'metadata'"),
    ],
)
async def test_bad_enqueue_options_are_422(
    client: httpx.AsyncClient, body: dict[str, object], needle: str
) -> None:
    res = await client.post("/api/workflows/greet/executions", json=body)
    assert res.status_code == 422, res.text
    error = error_of(res)
    assert error["code"] == "INVALID_REQUEST"
    assert needle in error["message"]
    assert error["details"]["errors"]


async def test_enqueue_input_over_the_limit_is_422(client: httpx.AsyncClient) -> None:
    res = await client.post("/api/workflows/greet/executions", json={"input": "x" * (1 << 20 + 1)})
    assert res.status_code == 422, res.text
    assert error_of(res)["code"] == "SERIALIZATION_FAILED"


async def test_enqueue_unknown_workflow_is_404(client: httpx.AsyncClient) -> None:
    res = await client.post("/api/workflows/nope/executions", json={"input": 1})
    assert res.status_code == 404
    assert error_of(res)["code"] == "WORKFLOW_NOT_FOUND"
    assert error_of(res)["workflow_id"] == "nope"


async def test_bulk_enqueue(client: httpx.AsyncClient, running: WorkflowEngine) -> None:
    res = await client.post(
        "/api/workflows/greet/executions/bulk", json={"inputs": ["a", "b", "c"]}
    )
    assert res.status_code == 201, res.text
    ids = res.json()["execution_ids"]
    assert len(ids) == 3
    results = [await running.wait_for_execution(i, timeout=10) for i in ids]
    assert [r.node_results["shout"].data for r in results] == ["A", "B", "C"]


async def test_bulk_enqueue_needs_inputs(client: httpx.AsyncClient) -> None:
    res = await client.post("/api/workflows/greet/executions/bulk", json={"inputs": []})
    assert res.status_code == 422
    assert "body field 'inputs'" in error_of(res)["message"]
    res = await client.post("/api/workflows/greet/executions/bulk", json={})
    assert res.status_code == 422
    assert "body field 'inputs': Field required" in error_of(res)["message"]


async def test_started_execution_is_listed(client: httpx.AsyncClient) -> None:
    execution_id = await start(client, "greet", "x")
    await wait_status(client, execution_id, "completed")
    items = (await client.get("/api/executions")).json()["items"]
    assert execution_id in [i["execution_id"] for i in items]


async def test_webhook_secrets_are_never_shown(client: httpx.AsyncClient) -> None:
    definition = {
        "id": "hooked-secret",
        "nodes": [{"id": "a", "type": "echo"}],
        "triggers": [{"type": "webhook", "config": {"path": "hooked", "secret": "s3cret-value"}}],
    }
    res = await client.post("/api/workflows", json=definition)
    assert res.status_code in (200, 201), res.text
    for path in ("/api/workflows/hooked-secret", "/api/workflows/hooked-secret/versions/1"):
        res = await client.get(path)
        assert res.status_code == 200, res.text
        assert "s3cret-value" not in res.text
        [trigger] = res.json()["definition"]["triggers"]
        assert trigger["config"]["secret"] == "***"
