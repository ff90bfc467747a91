"""The API on the PostgreSQL store: the same answers as on the in-memory one, for the
routes that read the store directly (list, counts, trace, dead letters, health)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from spane_py import NodeRegistry, WorkflowEngine
from spane_py.api import ApiSettings, create_app
from spane_py.queue.presence import WorkerPresence
from tests.api._support import BROKEN, GREET, Gate, eventually, make_client, start, wait_status


@pytest.fixture
async def pg_client(
    registry: NodeRegistry, database_url: str, pg_schema: str, redis_url: str, key_prefix: str
) -> AsyncIterator[httpx.AsyncClient]:
    from spane_py.stores.postgres.store import PostgresExecutionStore

    store = PostgresExecutionStore(database_url, schema=pg_schema, apply_migrations=False)
    engine = WorkflowEngine(
        registry, store, redis_url=redis_url, key_prefix=key_prefix, poll_delay=0.2
    )
    await engine.start()
    try:
        for definition in (GREET, BROKEN):
            await engine.register_workflow(definition)
        await engine.start_workers(4)
        presence = WorkerPresence(engine.queue.redis, prefix=key_prefix)

        async def beating() -> bool:
            return bool(await presence.live())

        await eventually(beating)
        app = create_app(engine, ApiSettings(token=None), close_engine=False)
        async with make_client(app) as client:
            yield client
    finally:
        await engine.stop_workers(grace_seconds=1.0)
        await engine.purge()
        await engine.close()


async def test_the_api_on_postgres(pg_client: httpx.AsyncClient, gate: Gate) -> None:
    client = pg_client
    ids = [await start(client, "greet", f"n{i}") for i in range(3)]
    for execution_id in ids:
        await wait_status(client, execution_id, "completed")
    broken = await start(client, "broken", 0)
    await wait_status(client, broken, "failed")

    first = (await client.get("/api/executions", params={"limit": 2})).json()
    rest = (
        await client.get("/api/executions", params={"limit": 2, "cursor": first["next_cursor"]})
    ).json()
    listed = [i["execution_id"] for i in first["items"] + rest["items"]]
    assert listed == [broken, *ids[::-1]]
    assert rest["next_cursor"] is None
    failed = (await client.get("/api/executions", params={"status": "failed"})).json()
    assert [i["execution_id"] for i in failed["items"]] == [broken]

    trace = (await client.get(f"/api/executions/{ids[0]}/trace")).json()
    assert [s["node_id"] for s in trace["spans"]] == ["hello", "shout"]
    nodes = {n["id"]: n for n in trace["graph"]["nodes"]}
    assert nodes["shout"]["input"] == "n0"

    stats = (await client.get("/api/stats")).json()
    assert stats["executions"]["completed"] == 3
    assert stats["executions"]["failed"] == 1
    assert stats["workflows"] == 2
    assert stats["dlq"] == 1

    health = (await client.get("/healthz")).json()
    assert health["status"] == "ok"
    assert health["store"]["ok"] is True

    dlq = (await client.get("/api/dlq")).json()
    assert dlq["total"] == 1
    gate.fail = False
    res = await client.post(f"/api/dlq/{dlq['items'][0]['dlq_id']}/retry")
    assert res.status_code == 200, res.text
    await wait_status(client, broken, "completed")
    missing = await client.get("/api/executions/not-a-uuid/trace")
    assert missing.status_code == 404
