"""Pause, resume, cancel, retry and replay over HTTP, one or many, and what they refuse."""

from __future__ import annotations

import httpx
import pytest

from tests.api._support import Gate, error_of, eventually, start, wait_status

MISSING = "01a20000-0000-7000-8000-000000000000"


async def _held(client: httpx.AsyncClient, gate: Gate) -> str:
    """An execution of ``gated``, running, its first node held by the gate (under way on a
    worker: not merely queued, which a busy machine may leave it for a while)."""
    execution_id = await start(client, "gated", 1)
    await wait_status(client, execution_id, "running")

    async def entered() -> bool:
        return execution_id in gate.entered

    await eventually(entered)
    return execution_id


async def test_pause_then_resume(client: httpx.AsyncClient, gate: Gate) -> None:
    execution_id = await _held(client, gate)
    res = await client.post(f"/api/executions/{execution_id}/pause")
    assert res.status_code == 200, res.text
    assert res.json() == {
        "execution_id": execution_id,
        "action": "pause",
        "changed": True,
        "status": "paused",
    }
    again = await client.post(f"/api/executions/{execution_id}/pause")
    assert again.status_code == 200
    assert again.json()["changed"] is False
    gate.open()  # the running node finishes; its child waits while paused

    async def parked() -> bool:
        state = (await client.get(f"/api/executions/{execution_id}")).json()
        return state["node_results"]["hold"]["status"] == "succeeded"

    await eventually(parked)
    assert (await client.get(f"/api/executions/{execution_id}")).json()["status"] == "paused"
    res = await client.post(f"/api/executions/{execution_id}/resume")
    assert res.status_code == 200
    assert res.json()["changed"] is True
    await wait_status(client, execution_id, "completed")


async def test_cancel_with_a_reason(client: httpx.AsyncClient, gate: Gate) -> None:
    execution_id = await _held(client, gate)
    res = await client.post(
        f"/api/executions/{execution_id}/cancel", json={"reason": "changed my mind"}
    )
    assert res.status_code == 200, res.text
    assert res.json()["status"] == "cancelled"
    state = await wait_status(client, execution_id, "cancelled")
    assert "changed my mind" in state["error"]
    gate.open()


async def test_cancel_without_a_body(client: httpx.AsyncClient, gate: Gate) -> None:
    execution_id = await _held(client, gate)
    res = await client.post(f"/api/executions/{execution_id}/cancel")
    assert res.status_code == 200, res.text
    assert res.json()["changed"] is True
    gate.open()


@pytest.mark.parametrize("action", ["pause", "resume", "retry"])
async def test_refused_actions_are_409_with_the_reason(
    client: httpx.AsyncClient, action: str
) -> None:
    execution_id = await start(client, "greet", "x")
    await wait_status(client, execution_id, "completed")
    res = await client.post(f"/api/executions/{execution_id}/{action}")
    assert res.status_code == 409, res.text
    error = error_of(res)
    assert error["code"] == "INVALID_EXECUTION_STATE"
    assert error["execution_id"] == execution_id
    assert "it is completed" in error["message"]


@pytest.mark.parametrize("action", ["pause", "resume", "cancel", "retry", "replay"])
async def test_actions_on_an_unknown_execution_are_404(
    client: httpx.AsyncClient, action: str
) -> None:
    res = await client.post(f"/api/executions/{MISSING}/{action}")
    assert res.status_code == 404
    assert error_of(res)["code"] == "EXECUTION_NOT_FOUND"


async def test_cancel_reason_is_checked(client: httpx.AsyncClient) -> None:
    res = await client.post(f"/api/executions/{MISSING}/cancel", json={"reason": 5})
    assert res.status_code == 422
    assert "body field 'reason'" in error_of(res)["message"]


async def test_retry_a_failed_execution(client: httpx.AsyncClient, gate: Gate) -> None:
    execution_id = await start(client, "broken", "in")
    await wait_status(client, execution_id, "failed")
    gate.fail = False  # the outage is over
    res = await client.post(f"/api/executions/{execution_id}/retry")
    assert res.status_code == 200, res.text
    assert res.json()["action"] == "retry"
    state = await wait_status(client, execution_id, "completed")
    assert state["node_results"]["explode"]["data"] == "fixed"


async def test_replay(client: httpx.AsyncClient) -> None:
    execution_id = await start(client, "greet", "ada")
    await wait_status(client, execution_id, "completed")
    res = await client.post(f"/api/executions/{execution_id}/replay")
    assert res.status_code == 201, res.text
    new_id = res.json()["execution_id"]
    assert new_id != execution_id
    assert res.json()["replayed_from"] == execution_id
    state = await wait_status(client, new_id, "completed")
    assert state["initial_data"] == "ada"
    assert state["metadata"]["replayed_from"] == execution_id


async def test_bulk_pause_resume_cancel(client: httpx.AsyncClient, gate: Gate) -> None:
    held = [await _held(client, gate) for _ in range(2)]
    done = await start(client, "greet", "x")
    await wait_status(client, done, "completed")
    res = await client.post(
        "/api/executions/bulk/pause", json={"execution_ids": [*held, done, MISSING]}
    )
    assert res.status_code == 200, res.text
    body = res.json()
    assert body["action"] == "pause"
    assert sorted(body["changed"]) == sorted(held)
    assert set(body["errors"]) == {done, MISSING}
    assert "completed" in body["errors"][done]
    res = await client.post("/api/executions/bulk/resume", json={"execution_ids": held})
    assert sorted(res.json()["changed"]) == sorted(held)
    res = await client.post("/api/executions/bulk/cancel", json={"execution_ids": held})
    assert sorted(res.json()["changed"]) == sorted(held)
    gate.open()


async def test_bulk_retry_and_replay(client: httpx.AsyncClient) -> None:
    done = await start(client, "greet", "x")
    await wait_status(client, done, "completed")
    res = await client.post("/api/executions/bulk/replay", json={"execution_ids": [done, MISSING]})
    assert res.status_code == 200, res.text
    body = res.json()
    assert body["changed"] == [done]
    assert set(body["errors"]) == {MISSING}
    new_id = body["created"][done]
    assert (await wait_status(client, new_id, "completed"))["metadata"]["replayed_from"] == done
    res = await client.post("/api/executions/bulk/retry", json={"execution_ids": [done]})
    body = res.json()
    assert body["action"] == "retry"
    assert body["changed"] == []
    assert "completed" in body["errors"][done]  # only a failed execution is retried


@pytest.mark.parametrize(
    ("path", "body", "status", "needle"),
    [
        ("/api/executions/bulk/pause", {"execution_ids": []}, 422, "body field 'execution_ids'"),
        ("/api/executions/bulk/pause", {}, 422, "body field 'execution_ids': Field required"),
        ("/api/executions/bulk/explode", {"execution_ids": ["x"]}, 422,
         "path parameter 'action': Input should be 'pause', 'resume', 'cancel', 'retry' or "
         "'replay'"),
    ],
)  # fmt: skip
async def test_bad_bulk_requests(
    client: httpx.AsyncClient, path: str, body: dict[str, object], status: int, needle: str
) -> None:
    res = await client.post(path, json=body)
    assert res.status_code == status, res.text
    assert needle in error_of(res)["message"]


async def test_control_routes_take_post_only(client: httpx.AsyncClient) -> None:
    res = await client.get(f"/api/executions/{MISSING}/pause")
    assert res.status_code == 405
    error = error_of(res)
    assert error["code"] == "METHOD_NOT_ALLOWED"
    assert "GET is not allowed" in error["message"]
