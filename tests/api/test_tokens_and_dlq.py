"""Resume tokens and the dead-letter queue over HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.api._support import Gate, error_of, eventually, start, wait_status


async def _waiting(client: httpx.AsyncClient) -> tuple[str, str]:
    """An ``approval`` execution waiting at its wait node: (execution id, token)."""
    execution_id = await start(client, "approval", {"amount": 10})

    async def token() -> str | None:
        res = await client.get("/api/resume-tokens", params={"execution_id": execution_id})
        assert res.status_code == 200
        items = res.json()
        return items[0]["token"] if items else None

    return execution_id, await eventually(token)


async def test_list_validate_and_resume(client: httpx.AsyncClient) -> None:
    execution_id, token = await _waiting(client)
    listed = (await client.get("/api/resume-tokens")).json()
    assert [(t["execution_id"], t["node_id"], t["state"]) for t in listed] == [
        (execution_id, "approve", "active")
    ]
    res = await client.post("/api/resume-tokens/validate", json={"token": token})
    assert res.status_code == 200
    assert res.json()["node_id"] == "approve"
    res = await client.post("/api/resume", json={"token": token, "data": {"ok": True}})
    assert res.status_code == 200, res.text
    assert res.json() == {"execution_id": execution_id}
    state = await wait_status(client, execution_id, "completed")
    assert state["node_results"]["approve"]["data"] == {"ok": True}
    # Used: gone for good.
    again = await client.post("/api/resume", json={"token": token})
    assert again.status_code == 410
    error = error_of(again)
    assert error["code"] == "RESUME_TOKEN_INVALID"
    assert error["details"]["reason"] == "used"
    assert (await client.get("/api/resume-tokens")).json() == []
    everything = await client.get("/api/resume-tokens", params={"active_only": "false"})
    assert [t["state"] for t in everything.json()] == ["used"]


async def test_revoke(client: httpx.AsyncClient) -> None:
    execution_id, token = await _waiting(client)
    res = await client.post("/api/resume-tokens/revoke", json={"token": token})
    assert res.status_code == 200, res.text
    assert res.json() == {"token": token, "revoked": True}
    again = await client.post("/api/resume-tokens/revoke", json={"token": token})
    assert again.status_code == 410
    assert error_of(again)["details"]["reason"] == "revoked"
    assert "revoked already" in error_of(again)["message"]
    res = await client.post("/api/resume-tokens/validate", json={"token": token})
    assert res.status_code == 410
    assert error_of(res)["message"] == "the resume token is revoked"
    await client.post(f"/api/executions/{execution_id}/cancel")


@pytest.mark.parametrize(
    "path", ["/api/resume", "/api/resume-tokens/validate", "/api/resume-tokens/revoke"]
)
async def test_unknown_token_is_404(client: httpx.AsyncClient, path: str) -> None:
    res = await client.post(path, json={"token": "no-such-token"})
    assert res.status_code == 404, res.text
    assert error_of(res)["message"] == "unknown resume token"


@pytest.mark.parametrize(
    ("body", "needle"),
    [({}, "body field 'token': Field required"), ({"token": ""}, "body field 'token'")],
)
async def test_token_is_required(
    client: httpx.AsyncClient, body: dict[str, object], needle: str
) -> None:
    res = await client.post("/api/resume", json=body)
    assert res.status_code == 422
    assert needle in error_of(res)["message"]


async def test_resume_data_over_the_limit_is_422(client: httpx.AsyncClient) -> None:
    execution_id, token = await _waiting(client)
    res = await client.post("/api/resume", json={"token": token, "data": "x" * (2 << 20)})
    assert res.status_code == 422
    assert error_of(res)["code"] == "SERIALIZATION_FAILED"
    await client.post(f"/api/executions/{execution_id}/cancel")


async def _dead(client: httpx.AsyncClient) -> tuple[str, int]:
    execution_id = await start(client, "broken", 1)
    await wait_status(client, execution_id, "failed")
    items = (await client.get("/api/dlq")).json()["items"]
    (item,) = [i for i in items if i["execution_id"] == execution_id]
    return execution_id, item["dlq_id"]


async def test_dlq_list_and_retry(client: httpx.AsyncClient, gate: Gate) -> None:
    execution_id, dlq_id = await _dead(client)
    page = (await client.get("/api/dlq")).json()
    assert page["total"] == 1
    item = page["items"][0]
    assert (item["workflow_id"], item["node_id"], item["attempts"]) == ("broken", "explode", 1)
    assert "the node failed on purpose" in item["error"]
    assert item["retried_at"] is None
    gate.fail = False
    res = await client.post(f"/api/dlq/{dlq_id}/retry")
    assert res.status_code == 200, res.text
    assert res.json()["retried_at"] is not None
    await wait_status(client, execution_id, "completed")
    assert (await client.get("/api/dlq")).json() == {"items": [], "total": 0}
    retried = (await client.get("/api/dlq", params={"include_retried": "true"})).json()
    assert retried["total"] == 1
    again = await client.post(f"/api/dlq/{dlq_id}/retry")
    assert again.status_code == 409
    assert "was retried at" in error_of(again)["message"]


@pytest.mark.parametrize(("dlq_id", "status"), [("999", 404), ("0", 422), ("abc", 422)])
async def test_dlq_retry_bad_ids(client: httpx.AsyncClient, dlq_id: str, status: int) -> None:
    res = await client.post(f"/api/dlq/{dlq_id}/retry")
    assert res.status_code == status, res.text
    if status == 404:
        assert error_of(res)["code"] == "DLQ_ITEM_NOT_FOUND"
        assert "no dead-letter item has id 999" in error_of(res)["message"]
    else:
        assert "path parameter 'dlq_id'" in error_of(res)["message"]


async def test_dlq_purge(client: httpx.AsyncClient) -> None:
    await _dead(client)
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    res = await client.delete("/api/dlq", params={"older_than": past})
    assert res.json() == {"purged": 0}
    res = await client.delete("/api/dlq")
    assert res.status_code == 200
    assert res.json() == {"purged": 1}
    bad = await client.delete("/api/dlq", params={"older_than": "2024-01-01"})
    assert bad.status_code == 422
    assert "query parameter 'older_than'" in error_of(bad)["message"]
