"""Schedules, webhook triggers and approvals over HTTP: what the dashboard's workflows and
approvals pages read and do."""

from __future__ import annotations

from datetime import datetime, timedelta

import httpx

from tests.api._support import error_of, eventually, start, wait_status

TRIGGERED = {
    "id": "nightly",
    "nodes": [{"id": "run", "type": "echo"}],
    "triggers": [
        {"type": "schedule", "config": {"cron": "0 0 3 * * *", "timezone": "Europe/Berlin"}},
        {"type": "webhook", "config": {"path": "/hooks/nightly", "secret": "s3cret"}},
        {"type": "webhook", "config": {"path": "open/nightly", "method": "PUT"}},
    ],
}


async def _register(client: httpx.AsyncClient) -> None:
    res = await client.post("/api/workflows", json=TRIGGERED)
    assert res.status_code == 201, res.text


async def test_schedules_are_listed_with_their_next_tick(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/schedules")).json() == []
    await _register(client)
    res = await client.get("/api/schedules")
    assert res.status_code == 200
    [schedule] = res.json()
    assert schedule["workflow_id"] == "nightly"
    assert schedule["schedule_id"].startswith("nightly:")
    assert (schedule["cron"], schedule["timezone"]) == ("0 0 3 * * *", "Europe/Berlin")
    assert schedule["paused"] is False
    assert schedule["missed"] == "skip"
    next_tick = datetime.fromisoformat(schedule["next_tick"])
    assert next_tick.tzinfo is not None
    # 3 a.m. in Berlin, within the coming day.
    assert next_tick - datetime.now(next_tick.tzinfo) <= timedelta(days=1)
    filtered = await client.get("/api/schedules", params={"workflow_id": "greet"})
    assert filtered.json() == []
    mine = await client.get("/api/schedules", params={"workflow_id": "nightly"})
    assert [s["schedule_id"] for s in mine.json()] == [schedule["schedule_id"]]


async def test_pause_and_resume_a_schedule(client: httpx.AsyncClient) -> None:
    await _register(client)
    [schedule] = (await client.get("/api/schedules")).json()
    sid = schedule["schedule_id"]

    res = await client.post(f"/api/schedules/{sid}/pause")
    assert res.status_code == 200, res.text
    body = res.json()
    assert (body["schedule_id"], body["action"], body["changed"]) == (sid, "pause", True)
    assert body["schedule"]["paused"] is True
    assert body["schedule"]["next_tick"] is None  # paused: no next tick
    again = (await client.post(f"/api/schedules/{sid}/pause")).json()
    assert again["changed"] is False
    assert (await client.get("/api/schedules")).json()[0]["paused"] is True

    res = await client.post(f"/api/schedules/{sid}/resume")
    assert res.status_code == 200
    body = res.json()
    assert (body["action"], body["changed"], body["schedule"]["paused"]) == ("resume", True, False)
    assert body["schedule"]["next_tick"] is not None
    assert (await client.post(f"/api/schedules/{sid}/resume")).json()["changed"] is False


async def test_an_unknown_schedule_is_a_404(client: httpx.AsyncClient) -> None:
    for action in ("pause", "resume"):
        res = await client.post(f"/api/schedules/nightly:000000000000/{action}")
        assert res.status_code == 404
        assert error_of(res)["code"] == "SCHEDULE_NOT_FOUND"


async def test_webhook_triggers_are_listed_without_their_secrets(
    client: httpx.AsyncClient,
) -> None:
    assert (await client.get("/api/webhook-triggers")).json() == []
    await _register(client)
    res = await client.get("/api/webhook-triggers")
    assert res.status_code == 200
    hooks = res.json()
    assert "s3cret" not in res.text
    assert [(h["method"], h["path"], h["url"], h["signed"]) for h in hooks] == [
        ("POST", "hooks/nightly", "/api/webhooks/hooks/nightly", True),
        ("PUT", "open/nightly", "/api/webhooks/open/nightly", False),
    ]
    assert {h["workflow_id"] for h in hooks} == {"nightly"}
    assert (await client.get("/api/webhook-triggers?workflow_id=greet")).json() == []
    # The listed URL is the one that triggers it.
    triggered = await client.put(hooks[1]["url"], json={"n": 1})
    assert triggered.status_code == 202, triggered.text
    [execution_id] = triggered.json()["execution_ids"]
    state = await wait_status(client, execution_id, "completed")
    assert state["node_results"]["run"]["data"] == {"n": 1}


async def _approval(client: httpx.AsyncClient, execution_id: str) -> dict[str, object]:
    async def listed() -> dict[str, object] | None:
        res = await client.get("/api/approvals", params={"execution_id": execution_id})
        assert res.status_code == 200, res.text
        items = res.json()
        return items[0] if items else None

    found: dict[str, object] = await eventually(listed)
    return found


async def test_an_approval_shows_its_wait_and_is_gone_once_resumed(
    client: httpx.AsyncClient,
) -> None:
    assert (await client.get("/api/approvals")).json() == []
    execution_id = await start(client, "approval", {"amount": 10})
    approval = await _approval(client, execution_id)
    assert approval["workflow_id"] == "approval"
    assert approval["workflow_version"] == 1
    assert approval["execution_status"] == "running"
    assert approval["node_id"] == "approve"
    assert approval["input"] == {"amount": 10}  # what "ask" passed on: what is to be decided
    assert approval["on_timeout"] == "fail"
    since = datetime.fromisoformat(str(approval["waiting_since"]))
    times_out = datetime.fromisoformat(str(approval["times_out_at"]))
    expires = datetime.fromisoformat(str(approval["token_expires_at"]))
    assert abs((times_out - since) - timedelta(seconds=3600)) < timedelta(seconds=5)
    assert expires == times_out  # the token expires with the wait's timeout
    tokens = (await client.get("/api/resume-tokens", params={"execution_id": execution_id})).json()
    assert approval["token"] == tokens[0]["token"]
    assert [a["execution_id"] for a in (await client.get("/api/approvals")).json()] == [
        execution_id
    ]

    res = await client.post("/api/resume", json={"token": approval["token"], "data": "yes"})
    assert res.status_code == 200, res.text
    await wait_status(client, execution_id, "completed")
    assert (await client.get("/api/approvals")).json() == []


async def test_a_cancelled_executions_wait_is_not_listed(client: httpx.AsyncClient) -> None:
    """Its token is still unexpired and unused, but nothing waits for it any more."""
    execution_id = await start(client, "approval", {"amount": 99})
    await _approval(client, execution_id)
    res = await client.post(f"/api/executions/{execution_id}/cancel", json={"reason": "rejected"})
    assert res.status_code == 200, res.text
    await wait_status(client, execution_id, "cancelled")
    assert (await client.get("/api/approvals")).json() == []
    assert (await client.get("/api/approvals", params={"execution_id": execution_id})).json() == []
