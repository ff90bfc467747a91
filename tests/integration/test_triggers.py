"""Schedule and webhook triggers end to end, in-process, on both stores: a per-second
schedule fires once per tick with two engines sharing a store; schedules listed, paused,
resumed, removed, following new versions; webhooks accepted, rejected (404, 401, 400),
bound once per path and method, triggered from an engine that never registered them."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from typing import Any

import pytest

from spane_py import ExecutionContext, NodeRegistry, WorkflowEngine
from spane_py.errors import (
    InvalidTriggerError,
    ScheduleNotFoundError,
    WebhookNotFoundError,
    WebhookPayloadError,
    WebhookSignatureError,
    WorkflowNotFoundError,
)
from spane_py.stores.base import ExecutionStore
from spane_py.stores.memory import InMemoryExecutionStore
from spane_py.triggers.webhooks import sign
from tests.conftest import fresh_pg_schema
from tests.integration._support import wait_until
from tests.integration.conftest import EngineFactory

SharedStore = Callable[[], ExecutionStore]  # each call: a store on the same state


@pytest.fixture(params=["memory", "postgres"])
async def shared_store(request: pytest.FixtureRequest) -> AsyncIterator[SharedStore]:
    if request.param == "memory":
        store = InMemoryExecutionStore()
        yield lambda: store
        return
    from spane_py.stores.postgres.store import PostgresExecutionStore

    url = request.getfixturevalue("database_url")
    schema_sql = request.getfixturevalue("_pg_schema_sql")
    made: list[PostgresExecutionStore] = []

    def make() -> ExecutionStore:
        made.append(PostgresExecutionStore(url, schema=schema, min_pool_size=1, max_pool_size=8))
        return made[-1]

    async with fresh_pg_schema(url, schema_sql) as schema:
        yield make  # requested before the engines: closed after them
        for store in made:
            await store.close()


@pytest.fixture
def reg() -> NodeRegistry:
    registry = NodeRegistry()

    async def echo(ctx: ExecutionContext) -> Any:
        return ctx.input_data

    registry.register("echo", echo)
    return registry


def ticking(
    workflow_id: str = "ticker", cron: str = "* * * * * *", **trigger: Any
) -> dict[str, Any]:
    return {
        "id": workflow_id,
        "nodes": [{"id": "a", "type": "echo"}],
        "triggers": [{"type": "schedule", "cron": cron, **trigger}],
    }


def hooked(
    workflow_id: str = "orders", path: str = "/hooks/orders", **trigger: Any
) -> dict[str, Any]:
    return {
        "id": workflow_id,
        "nodes": [{"id": "a", "type": "echo"}],
        "triggers": [{"type": "webhook", "path": path, **trigger}],
    }


async def executions_by_tick(store: ExecutionStore, workflow_id: str) -> Counter[str]:
    page = await store.list_executions(workflow_id=workflow_id, limit=1000)
    return Counter(r.metadata["tick"] for r in page.items)


# Schedules ---------------------------------------------------------------------------
async def test_per_second_schedule_fires_once_per_tick_on_two_engines(
    shared_store: SharedStore, make_engine: EngineFactory, reg: NodeRegistry, key_prefix: str
) -> None:
    engines = [
        await make_engine(reg, shared_store(), key_prefix=key_prefix, close_store=False)
        for _ in range(2)
    ]
    for engine in engines:
        await engine.start_workers(5)
    await engines[0].register_workflow(ticking())
    await asyncio.sleep(3.6)
    for engine in engines:
        await engine.stop_workers(grace_seconds=1.0)
    store = engines[0].store
    counts = await executions_by_tick(store, "ticker")
    ticks = sorted(datetime.fromisoformat(t) for t in counts)
    assert len(ticks) >= 3, counts
    assert set(counts.values()) == {1}, counts  # exactly one execution per tick
    assert ticks == [ticks[0] + timedelta(seconds=i) for i in range(len(ticks))]  # no gap
    page = await store.list_executions(workflow_id="ticker", limit=1)
    state = await engines[1].wait_for_execution(page.items[0].execution_id, timeout=10)
    assert state.status == "completed"
    tick = page.items[0].metadata["tick"]
    sid = page.items[0].metadata["schedule_id"]
    assert state.node_results["a"].data == {"schedule_id": sid, "tick": tick}
    assert page.items[0].metadata == {"trigger": "schedule", "schedule_id": sid, "tick": tick}
    [info] = await engines[1].list_schedules()
    assert (info.schedule_id, info.workflow_id, info.cron, info.paused) == (
        sid,
        "ticker",
        "* * * * * *",
        False,
    )
    assert info.last_tick == ticks[-1]


async def test_pause_resume_remove(
    make_engine: EngineFactory, reg: NodeRegistry, key_prefix: str
) -> None:
    engine = await make_engine(reg, InMemoryExecutionStore(), key_prefix=key_prefix)
    await engine.start_workers(5)
    await engine.register_workflow(ticking())
    [info] = await engine.list_schedules("ticker")
    sid = info.schedule_id
    assert info.next_tick is not None
    await wait_until(lambda: _count(engine), timeout=5, what="a first tick")
    assert await engine.pause_schedule(sid) is True
    assert await engine.pause_schedule(sid) is False  # already paused
    paused_at = await engine.store.get_execution_count(workflow_id="ticker")
    [info] = await engine.list_schedules()
    assert info.paused
    assert info.next_tick is None
    # registering the workflow again keeps it paused
    await engine.register_workflow(ticking())
    await asyncio.sleep(1.5)
    assert await engine.store.get_execution_count(workflow_id="ticker") == paused_at
    # resumed: it goes on from the next tick, without catching up the paused ones
    assert await engine.resume_schedule(sid) is True
    await asyncio.sleep(1.5)
    after = await engine.store.get_execution_count(workflow_id="ticker")
    assert paused_at < after <= paused_at + 2
    await engine.remove_schedule(sid)
    assert await engine.list_schedules() == []
    for call in (engine.pause_schedule, engine.resume_schedule, engine.remove_schedule):
        with pytest.raises(ScheduleNotFoundError, match=f"no schedule has the id '{sid}'"):
            await call(sid)
    # the trigger is still in the definition: registering brings it back
    await engine.register_workflow(ticking())
    assert [i.schedule_id for i in await engine.list_schedules()] == [sid]


async def _count(engine: WorkflowEngine) -> bool:
    return await engine.store.get_execution_count(workflow_id="ticker") > 0


async def test_schedules_follow_the_registered_version(shared_store: SharedStore) -> None:
    engine = WorkflowEngine(NodeRegistry(), shared_store())
    reg_echo(engine.registry)
    try:
        await engine.register_workflow(ticking(cron="0 9 * * *", timezone="Europe/Berlin"))
        [first] = await engine.list_schedules()
        await engine.pause_schedule(first.schedule_id)
        # same cron and timezone, another policy: the same schedule, still paused
        await engine.register_workflow(
            ticking(cron="0 9 * * *", timezone="Europe/Berlin", missed="run_once")
        )
        [same] = await engine.list_schedules()
        assert (same.schedule_id, same.missed, same.paused) == (first.schedule_id, "run_once", True)
        # another cron: another schedule; the old one goes
        await engine.register_workflow(ticking(cron="0 10 * * *", timezone="Europe/Berlin"))
        [other] = await engine.list_schedules()
        assert other.schedule_id != first.schedule_id
        assert not other.paused
        # a version without triggers has no schedule
        await engine.register_workflow({"id": "ticker", "nodes": [{"id": "a", "type": "echo"}]})
        assert await engine.list_schedules() == []
        # duplicates are refused before anything is saved
        twice = ticking(cron="0 9 * * *")
        twice["triggers"] *= 2  # type: ignore[operator]
        with pytest.raises(
            InvalidTriggerError, match=r"has the schedule '0 9 \* \* \*' \(UTC\) twice"
        ):
            await engine.register_workflow(twice)
        assert len(await engine.list_workflow_versions("ticker")) == 4
    finally:
        await engine.close()


def reg_echo(registry: NodeRegistry) -> None:
    async def echo(ctx: ExecutionContext) -> Any:
        return ctx.input_data

    registry.register("echo", echo)


# Webhooks ----------------------------------------------------------------------------
@pytest.fixture
async def hook_engines(
    shared_store: SharedStore, make_engine: EngineFactory, reg: NodeRegistry, key_prefix: str
) -> tuple[WorkflowEngine, WorkflowEngine]:
    """A worker engine that registers the workflows, and an API-like engine on the same
    store and Redis that never registered one (a cold cache)."""
    worker = await make_engine(reg, shared_store(), key_prefix=key_prefix, close_store=False)
    api = await make_engine(
        NodeRegistry(), shared_store(), key_prefix=key_prefix, close_store=False
    )
    await worker.start_workers(5)
    await worker.register_workflow(hooked())
    await worker.register_workflow(hooked("signed", "hooks/signed", secret="s3cret"))
    return worker, api


async def test_webhook_starts_the_bound_workflow_from_another_engine(
    hook_engines: tuple[WorkflowEngine, WorkflowEngine],
) -> None:
    worker, api = hook_engines
    [eid] = await api.trigger_webhook("/hooks/orders/", "post", b'{"order": 42}')
    state = await api.wait_for_execution(eid, timeout=10)
    assert state.status == "completed"
    assert state.node_results["a"].data == {"order": 42}
    record = await api.store.get_execution(eid)
    assert record is not None
    assert record.metadata == {"trigger": "webhook", "path": "hooks/orders", "method": "POST"}
    # a parsed value and text work too; an empty body is no data
    [e2] = await api.trigger_webhook("hooks/orders", body={"order": 43})
    [e3] = await api.trigger_webhook("hooks/orders", body="[1, 2]")
    [e4] = await api.trigger_webhook("hooks/orders", body=b"")
    results = [await worker.wait_for_execution(e, timeout=10) for e in (e2, e3, e4)]
    assert [r.node_results["a"].data for r in results] == [{"order": 43}, [1, 2], None]
    # a sender's retry of one delivery starts nothing new
    first = await api.trigger_webhook("hooks/orders", body=b"{}", headers={"Idempotency-Key": "d1"})
    again = await api.trigger_webhook("hooks/orders", body=b"{}", headers={"idempotency-key": "d1"})
    assert first == again
    hooks = await api.list_webhooks()
    assert [(h.path, h.method, h.workflow_id, h.secret is not None) for h in hooks] == [
        ("hooks/orders", "POST", "orders", False),
        ("hooks/signed", "POST", "signed", True),
    ]


async def test_webhook_signatures(hook_engines: tuple[WorkflowEngine, WorkflowEngine]) -> None:
    worker, api = hook_engines
    body = b'{"action": "opened"}'
    good = sign("s3cret", body)
    assert good.startswith("sha256=")
    for headers in (
        {"X-Spane-Signature": good},
        {"x-hub-signature-256": good},  # GitHub's header, any case
        {"X-Spane-Signature": good.removeprefix("sha256=").upper()},  # bare hex
    ):
        [eid] = await api.trigger_webhook("hooks/signed", "POST", body, headers)
        assert (await worker.wait_for_execution(eid, timeout=10)).status == "completed"
    started = await api.store.get_execution_count(workflow_id="signed")
    for headers, reason in [
        ({}, "missing"),
        ({"X-Spane-Signature": "sha256=abc"}, "malformed"),
        ({"X-Spane-Signature": sign("wrong", body)}, "mismatch"),
        ({"X-Spane-Signature": sign("s3cret", body + b" ")}, "mismatch"),
    ]:
        with pytest.raises(WebhookSignatureError) as exc:
            await api.trigger_webhook("hooks/signed", "POST", body, headers)
        assert exc.value.details["reason"] == reason
        assert exc.value.http_status == 401
    with pytest.raises(WebhookPayloadError, match="pass the body as the bytes"):
        await api.trigger_webhook(
            "hooks/signed", "POST", {"action": "opened"}, {"X-Spane-Signature": good}
        )
    assert await api.store.get_execution_count(workflow_id="signed") == started  # none started


async def test_webhook_rejections_start_nothing(
    hook_engines: tuple[WorkflowEngine, WorkflowEngine],
) -> None:
    worker, api = hook_engines
    with pytest.raises(
        WebhookNotFoundError, match=r"no workflow is bound to the webhook POST /nope$"
    ):
        await api.trigger_webhook("nope", body=b"{}")
    with pytest.raises(
        WebhookNotFoundError, match=r"webhook GET /hooks/orders \(it takes POST\)"
    ) as exc:
        await api.trigger_webhook("hooks/orders", "GET")
    assert exc.value.http_status == 404
    with pytest.raises(WebhookPayloadError, match="the body is not JSON") as bad:
        await api.trigger_webhook("hooks/orders", body=b"{not json")
    assert bad.value.http_status == 400
    with pytest.raises(WebhookPayloadError, match="not JSON"):
        await api.trigger_webhook("hooks/orders", body=b"\xff\xfe")
    with pytest.raises(WebhookPayloadError):
        await api.trigger_webhook("hooks/orders", body={"when": object()})
    assert await api.store.get_execution_count() == 0
    # a deactivated workflow's webhook is not found either
    await worker.store.deactivate_workflow("orders")
    await asyncio.sleep(1.1)  # the engines remember the latest version for a second
    with pytest.raises(
        WebhookNotFoundError, match="starts workflow 'orders', which is deactivated"
    ):
        await api.trigger_webhook("hooks/orders", body=b"{}")
    assert await api.store.get_execution_count() == 0


async def test_a_path_and_method_belong_to_one_workflow(
    hook_engines: tuple[WorkflowEngine, WorkflowEngine],
) -> None:
    worker, api = hook_engines
    with pytest.raises(
        InvalidTriggerError,
        match=r"workflow 'copycat' cannot be registered: webhook POST /hooks/orders belongs to "
        r"'orders'",
    ) as exc:
        await worker.register_workflow(hooked("copycat", "hooks/orders/"))
    assert exc.value.details["conflicts"] == [["POST", "hooks/orders", "orders"]]
    with pytest.raises(WorkflowNotFoundError):
        await api.get_workflow("copycat")  # nothing saved
    # another method on the same path is another webhook
    await worker.register_workflow(hooked("reader", "hooks/orders", method="GET"))
    # the same webhook twice in one workflow
    twice = hooked("twice", "x")
    twice["triggers"].append({"type": "webhook", "config": {"path": "/x", "method": "post"}})
    with pytest.raises(InvalidTriggerError, match=r"'twice' has the webhook POST /x twice"):
        await worker.register_workflow(twice)
    # once the owner is deactivated, the path can be taken
    await worker.store.deactivate_workflow("orders")
    await worker.register_workflow(hooked("copycat", "hooks/orders"))
    [binding] = [
        h for h in await api.list_webhooks() if h.method == "POST" and h.path == "hooks/orders"
    ]
    assert binding.workflow_id == "copycat"
