"""/api/executions: the list with its filters and cursor, one execution, its trace."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from spane_py import WorkflowEngine
from spane_py.records import ArtifactRecord, EventRecord
from tests.api._support import Gate, error_of, eventually, start, wait_status


async def _completed(client: httpx.AsyncClient, workflow_id: str, n: int) -> list[str]:
    ids = [await start(client, workflow_id, i) for i in range(n)]
    for execution_id in ids:
        await wait_status(client, execution_id, "completed", "failed")
    return ids


async def test_list_newest_first_with_cursor_pages(client: httpx.AsyncClient) -> None:
    ids = await _completed(client, "greet", 5)
    first = await client.get("/api/executions", params={"limit": 2})
    assert first.status_code == 200
    page = first.json()
    assert [i["execution_id"] for i in page["items"]] == ids[::-1][:2]
    seen = [i["execution_id"] for i in page["items"]]
    while page["next_cursor"]:
        page = (
            await client.get("/api/executions", params={"limit": 2, "cursor": page["next_cursor"]})
        ).json()
        seen += [i["execution_id"] for i in page["items"]]
    assert seen == ids[::-1]
    item = first.json()["items"][0]
    assert item["status"] == "completed"
    assert item["workflow_version"] == 1
    assert item["duration_ms"] >= 0


async def test_filters_by_workflow_and_status(client: httpx.AsyncClient) -> None:
    good = await _completed(client, "greet", 2)
    bad = await _completed(client, "broken", 1)
    failed = (await client.get("/api/executions", params={"status": "failed"})).json()
    assert [i["execution_id"] for i in failed["items"]] == bad
    assert "the node failed on purpose" in failed["items"][0]["error"]
    greet = (await client.get("/api/executions", params={"workflow_id": "greet"})).json()
    assert {i["execution_id"] for i in greet["items"]} == set(good)
    none = await client.get(
        "/api/executions", params={"workflow_id": "greet", "status": "cancelled"}
    )
    assert none.json() == {"items": [], "next_cursor": None}


async def test_filters_by_time(client: httpx.AsyncClient) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    ids = await _completed(client, "greet", 2)
    after = datetime.now(UTC) + timedelta(seconds=1)
    got = (
        await client.get(
            "/api/executions", params={"since": before.isoformat(), "until": after.isoformat()}
        )
    ).json()
    assert {i["execution_id"] for i in got["items"]} == set(ids)
    later = (await client.get("/api/executions", params={"since": after.isoformat()})).json()
    assert later["items"] == []


@pytest.mark.parametrize(
    ("params", "status", "needle"),
    [
        ({"cursor": "not-a-cursor"}, 400, "is not one this API returned"),
        ({"since": "2030-01-02T00:00:00Z", "until": "2030-01-01T00:00:00Z"}, 400,
         "since must be earlier than until"),
        ({"since": "2030-01-01T00:00:00"}, 422, "query parameter 'since'"),
        ({"since": "yesterday"}, 422, "query parameter 'since'"),
        ({"status": "done"}, 422, "query parameter 'status': Input should be 'queued'"),
        ({"limit": 0}, 422, "query parameter 'limit'"),
        ({"limit": 501}, 422, "query parameter 'limit'"),
    ],
)  # fmt: skip
async def test_bad_list_parameters(
    client: httpx.AsyncClient, params: dict[str, object], status: int, needle: str
) -> None:
    res = await client.get("/api/executions", params=params)  # type: ignore[arg-type]
    assert res.status_code == status, res.text
    assert needle in error_of(res)["message"]


async def test_get_execution(client: httpx.AsyncClient) -> None:
    execution_id = await start(client, "greet", "ada")
    state = await wait_status(client, execution_id, "completed")
    assert state["execution_id"] == execution_id
    assert state["initial_data"] == "ada"
    assert state["node_results"]["hello"]["status"] == "succeeded"
    assert state["node_results"]["hello"]["attempts"] == 1


@pytest.mark.parametrize("suffix", ["", "/trace"])
@pytest.mark.parametrize("execution_id", ["01a20000-0000-7000-8000-000000000000", "nonsense"])
async def test_unknown_execution_is_404(
    client: httpx.AsyncClient, execution_id: str, suffix: str
) -> None:
    res = await client.get(f"/api/executions/{execution_id}{suffix}")
    assert res.status_code == 404
    error = error_of(res)
    assert error["code"] == "EXECUTION_NOT_FOUND"
    assert error["execution_id"] == execution_id
    assert "does not exist" in error["message"]


async def test_trace_has_spans_logs_and_the_graph(client: httpx.AsyncClient) -> None:
    execution_id = await start(client, "greet", "ada")
    await wait_status(client, execution_id, "completed")
    res = await client.get(f"/api/executions/{execution_id}/trace")
    assert res.status_code == 200, res.text
    trace = res.json()
    assert trace["execution"]["status"] == "completed"
    assert [(s["node_id"], s["status"]) for s in trace["spans"]] == [
        ("hello", "succeeded"),
        ("shout", "succeeded"),
    ]
    assert all(s["ended_at"] >= s["started_at"] for s in trace["spans"])
    assert [(line["node_id"], line["message"]) for line in trace["logs"]] == [("hello", "echoing")]
    assert trace["children"] == []
    graph = trace["graph"]
    assert graph["workflow_id"] == "greet"
    assert graph["entry_nodes"] == ["hello"]
    nodes = {n["id"]: n for n in graph["nodes"]}
    assert nodes["hello"]["children"] == ["shout"]
    assert nodes["shout"]["parents"] == ["hello"]
    assert nodes["hello"]["input"] == "ada"  # the entry node gets the initial data
    assert nodes["shout"]["input"] == "ada"  # one parent: its output
    assert {n["status"] for n in graph["nodes"]} == {"succeeded"}


async def test_trace_of_a_running_execution(client: httpx.AsyncClient, gate: Gate) -> None:
    execution_id = await start(client, "gated", {"k": 1})
    await wait_status(client, execution_id, "running")

    async def held() -> bool:
        trace = (await client.get(f"/api/executions/{execution_id}/trace")).json()
        nodes = {n["id"]: n for n in trace["graph"]["nodes"]}
        return nodes["hold"]["status"] == "running" and nodes["after"]["status"] == "pending"

    await eventually(held)
    trace = (await client.get(f"/api/executions/{execution_id}/trace")).json()
    nodes = {n["id"]: n for n in trace["graph"]["nodes"]}
    assert nodes["hold"]["input"] == {"k": 1}
    assert nodes["after"]["input"] is None  # not started: no input yet
    gate.open()
    await wait_status(client, execution_id, "completed")


async def test_an_executions_output_and_artifacts(
    client: httpx.AsyncClient, running: WorkflowEngine
) -> None:
    execution_id = await start(client, "greet", "ada")
    await wait_status(client, execution_id, "completed")
    state = (await client.get(f"/api/executions/{execution_id}")).json()
    assert state["output"] == "ADA"  # its final node's data
    listed = (await client.get("/api/executions", params={"workflow_id": "greet"})).json()
    assert [i["output"] for i in listed["items"]] == ["ADA"]

    assert (await client.get(f"/api/executions/{execution_id}/artifacts")).json() == []
    blob = b"\x89PNG\r\n\x1a\n\x00 bytes"
    now = datetime.now(UTC)
    for name, data, kind in (
        ("plots/a b.png", blob, "image/png"),
        ("rows", b'{"n":1}', "application/json"),
    ):
        record = ArtifactRecord(execution_id, name, kind, len(data), now, node_id="hello")
        await running.store.put_artifact(record, data)
    listed_artifacts = (await client.get(f"/api/executions/{execution_id}/artifacts")).json()
    assert [(a["name"], a["content_type"], a["size"], a["node_id"]) for a in listed_artifacts] == [
        ("plots/a b.png", "image/png", len(blob), "hello"),
        ("rows", "application/json", 7, "hello"),
    ]
    res = await client.get(f"/api/executions/{execution_id}/artifacts/plots/a%20b.png")
    assert res.status_code == 200
    assert res.content == blob
    assert res.headers["content-type"] == "image/png"
    assert res.headers["content-disposition"].startswith("attachment;")
    assert res.headers["x-content-type-options"] == "nosniff"
    trace = (await client.get(f"/api/executions/{execution_id}/trace")).json()
    assert [a["name"] for a in trace["artifacts"]] == ["plots/a b.png", "rows"]

    missing = await client.get(f"/api/executions/{execution_id}/artifacts/nope")
    assert missing.status_code == 404
    assert error_of(missing)["code"] == "ARTIFACT_NOT_FOUND"
    unknown = await client.get("/api/executions/00000000-0000-0000-0000-000000000000/artifacts")
    assert unknown.status_code == 404
    assert error_of(unknown)["code"] == "EXECUTION_NOT_FOUND"


async def test_the_event_history(client: httpx.AsyncClient, running: WorkflowEngine) -> None:
    execution_id = await start(client, "greet", "ada")
    await wait_status(client, execution_id, "completed")
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    written = [
        EventRecord("execution.started", t0, execution_id, "greet"),
        EventRecord("node.started", t0 + timedelta(seconds=1), execution_id, "greet", "hello",
                    {"attempt": 1}),
        EventRecord("node.failed", t0 + timedelta(seconds=2), execution_id, "greet", "hello",
                    {"attempt": 1, "error": "boom"}),
        EventRecord("breaker.opened", t0 + timedelta(seconds=3), fields={"node_type": "pay"}),
    ]  # fmt: skip
    await running.store.add_events(written)
    res = await client.get("/api/events/history", params={"execution_id": execution_id})
    assert res.status_code == 200, res.text
    found = res.json()
    assert [(e["type"], e["node_id"], e["workflow_id"]) for e in found] == [
        ("execution.started", None, "greet"),
        ("node.started", "hello", "greet"),
        ("node.failed", "hello", "greet"),
    ]
    assert found[2]["fields"] == {"attempt": 1, "error": "boom"}
    typed = await client.get(
        "/api/events/history", params=[("type", "node.failed"), ("type", "breaker.opened")]
    )
    assert [(e["type"], e["execution_id"]) for e in typed.json()] == [
        ("node.failed", execution_id),
        ("breaker.opened", None),
    ]
    window = await client.get(
        "/api/events/history",
        params={"since": found[1]["at"], "until": (t0 + timedelta(seconds=3)).isoformat(),
                "limit": 5},
    )  # fmt: skip
    assert [e["type"] for e in window.json()] == ["node.started", "node.failed"]
    bad = await client.get(
        "/api/events/history",
        params={"since": "2030-01-02T00:00:00Z", "until": "2030-01-01T00:00:00Z"},
    )
    assert bad.status_code == 400
    assert error_of(bad)["code"] == "INVALID_RANGE"
    assert (await client.get("/api/events/history", params={"limit": 0})).status_code == 422
