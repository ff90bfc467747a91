"""/healthz, /metrics, /api/queue, /api/stats, the event stream and webhooks.

The event stream and metrics come from ``engine.subscribe`` and ``engine.metrics_text``;
tests of the SSE framing put a finite stand-in in place of the endless real stream (which
tests/e2e/test_cli_api.py reads from a served API).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from spane_py import WorkflowEngine
from spane_py.api import optional
from spane_py.api.routes import events
from spane_py.state import ExecutionStatus
from tests.api._support import error_of, eventually, start, wait_status


async def test_healthz_ok_with_a_live_worker(client: httpx.AsyncClient) -> None:
    res = await client.get("/healthz")
    assert res.status_code == 200, res.text
    body = res.json()
    assert body["status"] == "ok"
    assert body["redis"]["ok"] is True
    assert body["store"]["ok"] is True
    assert body["workers"]["live"] == 1
    assert body["workers"]["workers"][0]["seconds_since_beat"] < 15


async def test_healthz_degraded_without_workers(
    client: httpx.AsyncClient, running: WorkflowEngine
) -> None:
    await running.stop_workers(grace_seconds=1.0)  # a stopping worker leaves the set
    body = (await client.get("/healthz")).json()
    assert body["status"] == "degraded"
    assert body["workers"] == {"live": 0, "workers": [], "error": None}


async def test_healthz_counts_workers_of_other_engines(
    client: httpx.AsyncClient, running: WorkflowEngine, redis_url: str
) -> None:
    other = WorkflowEngine(
        running.registry, running.store, redis_url=redis_url, key_prefix=running.key_prefix,
        close_store=False, poll_delay=0.2,
    )  # fmt: skip
    await other.start_workers(1)
    try:

        async def both() -> Any:
            body = (await client.get("/healthz")).json()
            return body if body["workers"]["live"] == 2 else None

        body = await eventually(both)
        assert len({w["worker_id"] for w in body["workers"]["workers"]}) == 2
    finally:
        await other.close(grace_seconds=1.0)
    assert (await client.get("/healthz")).json()["workers"]["live"] == 1


async def test_healthz_failing_store_is_503(
    client: httpx.AsyncClient, running: WorkflowEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def down(workflow_id: str) -> int | None:
        raise ConnectionRefusedError("database is down")

    monkeypatch.setattr(running.store, "get_workflow_version", down)
    res = await client.get("/healthz")
    assert res.status_code == 503
    body = res.json()
    assert body["status"] == "failing"
    assert body["store"] == {
        "ok": False,
        "latency_ms": None,
        "error": "ConnectionRefusedError: database is down",
    }
    assert body["redis"]["ok"] is True


async def test_healthz_hung_redis_times_out(
    client: httpx.AsyncClient, running: WorkflowEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from spane_py.api import health

    async def hang() -> None:
        await asyncio.sleep(60)

    monkeypatch.setattr(health, "CHECK_TIMEOUT_S", 0.1)
    monkeypatch.setattr(running.queue, "ping", hang)
    res = await client.get("/healthz")
    assert res.status_code == 503
    assert res.json()["redis"]["error"] == "no answer within 0.1 s"


async def test_queue_and_stats(client: httpx.AsyncClient) -> None:
    done = await start(client, "greet", 1)
    await wait_status(client, done, "completed")
    failed = await start(client, "broken", 1)
    await wait_status(client, failed, "failed")
    queue = (await client.get("/api/queue")).json()
    assert set(queue) == {"queued", "scheduled", "running"}
    stats = (await client.get("/api/stats")).json()
    assert stats["executions"] == {
        **{s.value: 0 for s in ExecutionStatus},
        "completed": 1,
        "failed": 1,
    }
    assert stats["workflows"] == 4
    assert stats["dlq"] == 1
    only = (await client.get("/api/stats", params={"workflow_id": "greet"})).json()
    assert only["executions"]["failed"] == 0
    assert only["executions"]["completed"] == 1


async def test_queues_workers_and_an_unserved_queue_in_healthz(
    client: httpx.AsyncClient, running: WorkflowEngine
) -> None:
    workers = (await client.get("/api/workers")).json()
    assert [w["queues"] for w in workers] == [["default"]]
    assert workers[0]["concurrency"] == 8
    assert workers[0]["pid"] > 0
    queues = (await client.get("/api/queues")).json()
    assert queues[0] == {
        "name": "default",
        "queued": 0,
        "running": 0,
        "oldest_waiting_s": None,
        "workers": 1,
        "unserved": False,
    }
    # A workflow whose node goes to a queue no worker consumes: it waits, and says so.
    await running.register_workflow(
        {"id": "elsewhere", "nodes": [{"id": "a", "type": "echo", "queue": "gpu"}]}
    )
    await start(client, "elsewhere", 1)

    async def unserved() -> Any:
        body = (await client.get("/healthz")).json()
        return body if body["unserved_queues"] else None

    body = await eventually(unserved)
    assert body["status"] == "degraded"
    [gpu] = body["unserved_queues"]
    assert (gpu["name"], gpu["queued"], gpu["workers"], gpu["unserved"]) == ("gpu", 1, 0, True)
    queues = {q["name"]: q for q in (await client.get("/api/queues")).json()}
    assert queues["gpu"]["unserved"] is True
    assert queues["gpu"]["oldest_waiting_s"] >= 0


async def test_metrics_come_from_the_engine(
    client: httpx.AsyncClient, running: WorkflowEngine
) -> None:
    await running.run_workflow("greet", "x", timeout=10)
    res = await client.get("/metrics")
    assert res.status_code == 200
    assert res.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert 'spane_workflows_completed_total{workflow_id="greet"} 1.0' in res.text


@pytest.mark.parametrize("is_async", [False, True])
async def test_metrics_with_metrics_text(
    client: httpx.AsyncClient, running: WorkflowEngine, is_async: bool
) -> None:
    text = "# TYPE spane_workflows_completed_total counter\nspane_workflows_completed_total 3\n"

    def sync_metrics() -> str:
        return text

    async def async_metrics() -> str:
        return text

    running.metrics_text = async_metrics if is_async else sync_metrics  # type: ignore[attr-defined]
    res = await client.get("/metrics")
    assert res.status_code == 200
    assert res.text == text
    assert res.headers["content-type"].startswith("text/plain; version=0.0.4")


async def test_events_stream_frames(
    client: httpx.AsyncClient, running: WorkflowEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    given: dict[str, Any] = {}

    async def subscribe(**filters: Any) -> AsyncIterator[Any]:
        given.update(filters)
        yield {"event": "node.completed", "execution_id": "e1", "node_id": "a"}
        await asyncio.sleep(0.3)  # long enough for a keepalive comment
        yield {"event": "execution.completed", "execution_id": "e1"}

    running.subscribe = subscribe  # type: ignore[attr-defined]
    monkeypatch.setattr(events, "KEEPALIVE_S", 0.1)
    frames: list[str] = []
    async with client.stream("GET", "/api/events", params={"execution_id": "e1"}) as res:
        assert res.status_code == 200
        assert res.headers["content-type"].startswith("text/event-stream")
        buffer = ""
        async for chunk in res.aiter_text():
            buffer += chunk
    frames = [f for f in buffer.split("\n\n") if f]
    assert given == {"execution_id": "e1"}
    assert frames[0].startswith("retry: 3000")
    assert ": keepalive" in frames
    named = [f for f in frames if f.startswith("event:")]
    assert [f.splitlines()[0] for f in named] == [
        "event: node.completed",
        "event: execution.completed",
    ]
    data = json.loads(named[0].splitlines()[1].removeprefix("data: "))
    assert data == {"event": "node.completed", "execution_id": "e1", "node_id": "a"}


def test_event_fields_of_objects_and_dataclasses() -> None:
    from dataclasses import dataclass
    from datetime import UTC, datetime

    @dataclass
    class Event:
        event: str
        at: datetime

    at = datetime(2030, 1, 1, tzinfo=UTC)
    assert optional.event_fields(Event("node.started", at)) == (
        "node.started",
        {"event": "node.started", "at": "2030-01-01T00:00:00Z"},
    )
    assert optional.event_fields({"type": "x", "n": 1}) == ("x", {"type": "x", "n": 1})
    assert optional.event_fields(5) == ("message", {"value": 5})


async def test_signed_webhooks_start_their_workflow(
    client: httpx.AsyncClient, running: WorkflowEngine
) -> None:
    from spane_py.triggers.webhooks import sign

    await running.register_workflow(
        {
            "id": "hooked",
            "nodes": [{"id": "a", "type": "echo"}],
            "triggers": [{"type": "webhook", "path": "orders/new", "secret": "s3cret"}],
        }
    )
    body = b'{"n": 1}'
    signed = {"content-type": "application/json", "X-Spane-Signature": sign("s3cret", body)}
    res = await client.post("/api/webhooks/orders/new/", content=body, headers=signed)
    assert res.status_code == 202, res.text
    (execution_id,) = res.json()["execution_ids"]
    done = await wait_status(client, execution_id, "completed")
    assert done["initial_data"] == {"n": 1}
    # the same signed request again: the first execution, nothing started
    again = await client.post("/api/webhooks/orders/new", content=body, headers=signed)
    assert again.status_code == 202, again.text
    assert again.json()["execution_ids"] == [execution_id]

    forged = await client.post(
        "/api/webhooks/orders/new", content=body, headers={"X-Spane-Signature": "sha256=00"}
    )
    assert forged.status_code == 401
    assert error_of(forged)["code"] == "WEBHOOK_SIGNATURE_INVALID"
    unsigned = await client.post("/api/webhooks/orders/new", content=body)
    assert unsigned.status_code == 401
    # the signature is checked before the body: an unsigned one that is not JSON gets 401
    # (not 400), one over the limit 401 (not 413)
    for content in (b"{nope", b"x" * ((1 << 20) + 1)):
        res = await client.post(
            "/api/webhooks/orders/new",
            content=content,
            headers={"content-type": "application/json"},
        )
        assert res.status_code == 401, res.text
        assert error_of(res)["details"]["reason"] == "missing"
    wrong_method = await client.put("/api/webhooks/orders/new", content=body)
    assert wrong_method.status_code == 404
    missing = await client.post("/api/webhooks/missing", json={})
    assert missing.status_code == 404
    assert error_of(missing)["code"] == "WEBHOOK_NOT_FOUND"
    assert await running.store.get_execution_count(workflow_id="hooked") == 1


async def test_webhook_bodies_are_checked(
    client: httpx.AsyncClient, running: WorkflowEngine
) -> None:
    await running.register_workflow(
        {
            "id": "open-hook",
            "nodes": [{"id": "a", "type": "echo"}],
            "triggers": [{"type": "webhook", "path": "x"}],
        }
    )
    bad = await client.post(
        "/api/webhooks/x", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert bad.status_code == 400
    assert error_of(bad)["code"] == "WEBHOOK_PAYLOAD_INVALID"  # as docs/api.md says
    assert "the body is not JSON" in error_of(bad)["message"]
    big = await client.post("/api/webhooks/x", content=b"x" * ((1 << 20) + 1))
    assert big.status_code == 413
    assert error_of(big)["code"] == "PAYLOAD_TOO_LARGE"
    assert "over the limit of 1048576" in error_of(big)["message"]
    # chunked (no Content-Length): the app stops pulling chunks once past the limit
    pulled = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal pulled
        while True:
            pulled += 1
            yield b" " * 65536

    chunked = await client.post("/api/webhooks/x", content=endless())
    assert chunked.status_code == 413
    assert error_of(chunked)["code"] == "PAYLOAD_TOO_LARGE"
    assert pulled <= (1 << 20) // 65536 + 2  # the limit, the chunk past it (and one ahead)
    empty = await client.post("/api/webhooks/x")
    assert empty.status_code == 202, empty.text
    assert await running.store.get_execution_count(workflow_id="open-hook") == 1


async def test_oversized_requests_are_413(running: WorkflowEngine) -> None:
    from spane_py.api import ApiSettings, create_app
    from tests.api._support import make_client

    app = create_app(running, ApiSettings(token=None), close_engine=False, max_body_bytes=100)
    async with make_client(app) as c:
        res = await c.post("/api/workflows/greet/executions", json={"input": "x" * 200})
        assert res.status_code == 413
        assert error_of(res)["message"] == ("the request body has 212 bytes, over the limit of 100")

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it comes
            yield b'{"input": "'
            for _ in range(10):
                yield b"x" * 20
            yield b'"}'

        res = await c.post(
            "/api/workflows/greet/executions",
            content=chunks(),
            headers={"content-type": "application/json"},
        )
        assert res.status_code == 413
        assert "over the limit of 100" in error_of(res)["message"]
        small = await c.post("/api/workflows/greet/executions", json={"input": 1})
        assert small.status_code == 201


async def test_unknown_route_is_404_in_the_error_shape(client: httpx.AsyncClient) -> None:
    res = await client.get("/api/nothing-here")
    assert res.status_code == 404
    assert (
        error_of(res)["message"] == "no route '/api/nothing-here': see /docs for the API's routes"
    )


async def test_a_worker_that_stopped_beating_ages_out(running: WorkflowEngine) -> None:
    """A worker that died stops beating: older than the window, it is not counted, and
    much older, it is dropped from the set."""
    from spane_py.queue.presence import LIVE_WINDOW_S, WorkerPresence

    presence = WorkerPresence(running.queue.redis, prefix=running.key_prefix)
    (worker, _task) = running._workers[0]
    now_ms = (await running.queue.redis.time())[0] * 1000
    window_ms = LIVE_WINDOW_S * 1000
    await running.queue.redis.zadd(
        presence.key, {"dead-lately": now_ms - window_ms - 500, "dead-long-ago": 1}
    )
    live = await presence.live()
    assert [w.worker_id for w in live] == [worker.worker_id]
    members = await running.queue.redis.zrange(presence.key, 0, -1)
    assert sorted(m.decode() for m in members) == sorted([worker.worker_id, "dead-lately"])


def test_the_error_codes_in_docs_api_are_the_codes_answered() -> None:
    import re
    from pathlib import Path

    from spane_py import errors

    root = Path(__file__).resolve().parents[2]
    table = [
        line
        for line in (root / "docs" / "api.md").read_text(encoding="utf-8").splitlines()
        if re.match(r"\| [45]\d\d \|", line)
    ]
    documented = {code for line in table for code in re.findall(r"`([A-Z][A-Z_]+)`", line)}

    def subclasses(cls: type) -> list[type]:
        return [cls, *(s for sub in cls.__subclasses__() for s in subclasses(sub))]

    known = {cls.code for cls in subclasses(errors.SpaneError)}
    api = root / "spane_py" / "api"
    for source in [*api.glob("*.py"), *api.glob("routes/*.py")]:
        known |= set(re.findall(r'"([A-Z][A-Z_]+)"', source.read_text(encoding="utf-8")))
    assert documented, "no error table in docs/api.md"
    assert documented <= known, f"documented, never answered: {sorted(documented - known)}"
    assert "WEBHOOK_PAYLOAD_INVALID" in documented
