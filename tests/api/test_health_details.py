"""``/healthz`` stays open for probes, but with an API token set only a caller presenting
it learns the details: worker ids (host name and process id), latencies and error texts
(issue 12, item 7)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest

from spane_py import WorkflowEngine
from spane_py.api import ApiSettings, create_app
from tests.api._support import error_of, make_client

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
async def locked(running: WorkflowEngine) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(running, ApiSettings(token=TOKEN), close_engine=False)
    async with make_client(app) as c:
        yield c


async def test_without_the_token_only_the_status_and_each_dependencys_ok(
    locked: httpx.AsyncClient, running: WorkflowEngine
) -> None:
    res = await locked.get("/healthz")
    assert res.status_code == 200, res.text
    assert res.json() == {
        "status": "ok",
        "redis": {"ok": True},
        "store": {"ok": True},
        "workers": {"live": 1},
    }
    (worker,) = await _worker_ids(locked)
    assert worker not in res.text  # e.g. "host:1234": neither the host nor the pid
    assert worker.rpartition(":")[0] not in res.text


async def test_with_the_token_the_details(locked: httpx.AsyncClient) -> None:
    res = await locked.get("/healthz", headers=AUTH)
    assert res.status_code == 200, res.text
    body = res.json()
    assert body["status"] == "ok"
    assert body["redis"]["latency_ms"] is not None
    assert body["store"]["ok"] is True
    assert body["workers"]["live"] == 1
    assert ":" in body["workers"]["workers"][0]["worker_id"]


@pytest.mark.parametrize(
    "headers",
    [{"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}],
    ids=["wrong-token", "not-bearer"],
)
async def test_a_wrong_token_is_401(locked: httpx.AsyncClient, headers: dict[str, str]) -> None:
    res = await locked.get("/healthz", headers=headers)
    assert res.status_code == 401
    assert error_of(res)["code"] == "UNAUTHORIZED"


async def test_a_failing_store_is_503_without_its_error_text(
    locked: httpx.AsyncClient, running: WorkflowEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def down(workflow_id: str) -> int | None:
        raise ConnectionRefusedError("db-7.internal:5432 refused the connection")

    monkeypatch.setattr(running.store, "get_workflow_version", down)
    res = await locked.get("/healthz")
    assert res.status_code == 503
    assert res.json() == {
        "status": "failing",
        "redis": {"ok": True},
        "store": {"ok": False},
        "workers": {"live": 1},
    }
    detailed = await locked.get("/healthz", headers=AUTH)
    assert detailed.status_code == 503
    assert "db-7.internal" in detailed.json()["store"]["error"]


async def test_with_auth_off_everyone_gets_the_details(client: httpx.AsyncClient) -> None:
    body = (await client.get("/healthz")).json()
    assert body["workers"]["workers"][0]["worker_id"]
    assert body["redis"]["latency_ms"] is not None


async def test_the_schema_describes_both_answers(locked: httpx.AsyncClient) -> None:
    schema = (await locked.get("/openapi.json")).json()
    ok = schema["paths"]["/healthz"]["get"]["responses"]["200"]["content"]["application/json"]
    refs = json.dumps(ok["schema"])
    assert "#/components/schemas/Health" in refs
    assert "#/components/schemas/HealthSummary" in refs


async def _worker_ids(client: httpx.AsyncClient) -> list[str]:
    body = (await client.get("/healthz", headers=AUTH)).json()
    return [w["worker_id"] for w in body["workers"]["workers"]]
