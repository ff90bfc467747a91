"""Schedule and webhook triggers end to end, in-process, on both stores: a per-second
schedule fires once per tick with two engines sharing a store; schedules listed, paused,
resumed, removed, following new versions; webhooks accepted, rejected (404, 401, 413, 400,
in that order, the body unread until the signature header passed), bound once per path and
method, triggered from an engine that never registered them; signed requests replayed
(again, at once, from another engine, after the window) start nothing new."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from spane_py import ExecutionContext, NodeRegistry, WorkflowEngine
from spane_py.errors import (
    InvalidTriggerError,
    ScheduleNotFoundError,
    WebhookNotFoundError,
    WebhookPayloadError,
    WebhookPayloadTooLargeError,
    WebhookSignatureError,
    WorkflowNotFoundError,
)
from spane_py.observability import events
from spane_py.stores.base import ExecutionStore
from spane_py.stores.memory import InMemoryExecutionStore
from spane_py.triggers.replay import ReplayMemory, fingerprint_key
from spane_py.triggers.scheduler import Scheduler
from spane_py.triggers.webhooks import sign, sign_github
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


async def ticks_fired(store: ExecutionStore, workflow_id: str = "ticker") -> list[datetime]:
    return sorted(datetime.fromisoformat(t) for t in await executions_by_tick(store, workflow_id))


@dataclass
class Rounds:
    """The scheduler rounds run in this process (``Scheduler.run_once``, wrapped)."""

    # (scheduler, began on the wall clock the scheduler reads, ended): in order of ending
    ended: list[tuple[int, datetime, datetime]] = field(default_factory=list)
    schedulers: set[int] = field(default_factory=set)

    async def wait_for_one_begun_after(self, moment: datetime, *, timeout: float = 15) -> None:
        """Until every scheduler here has ended a round that began after ``moment``. A
        scheduler's rounds follow one another: every round it began before has ended too,
        so nothing that read the schedules before ``moment`` can still fire a tick."""

        async def done() -> bool:
            after = {sid for sid, began, _ in self.ended if began > moment}
            return bool(self.schedulers) and self.schedulers <= after

        await wait_until(done, timeout=timeout, what=f"a scheduler round begun after {moment}")


@pytest.fixture
def rounds(monkeypatch: pytest.MonkeyPatch) -> Rounds:
    """Records every scheduler round; request it before the engines start their workers."""
    log = Rounds()
    real = Scheduler.run_once

    async def run_once(self: Scheduler) -> float:
        log.schedulers.add(id(self))
        began = datetime.now(UTC)  # at most the round's own reading of its clock
        try:
            return await real(self)
        finally:
            log.ended.append((id(self), began, datetime.now(UTC)))

    monkeypatch.setattr(Scheduler, "run_once", run_once)
    return log


# Schedules ---------------------------------------------------------------------------
async def test_per_second_schedule_fires_once_per_tick_on_two_engines(
    shared_store: SharedStore,
    make_engine: EngineFactory,
    reg: NodeRegistry,
    key_prefix: str,
    rounds: Rounds,
) -> None:
    engines = [
        await make_engine(
            reg,
            shared_store(),
            key_prefix=key_prefix,
            close_store=False,
            schedule_refresh_seconds=1.0,  # the second engine sees the schedule soon
        )
        for _ in range(2)
    ]
    for engine in engines:
        await engine.start_workers(5)
    await engines[0].register_workflow(ticking())
    store = engines[0].store

    async def three_ticks() -> bool:
        return len(await ticks_fired(store)) >= 3

    await wait_until(three_ticks, timeout=20, what="three ticks fired")
    [info] = await engines[1].list_schedules()
    await engines[1].pause_schedule(info.schedule_id)
    # A round that read the schedule before the pause may still fire a tick.
    await rounds.wait_for_one_begun_after(datetime.now(UTC))
    counts = await executions_by_tick(store, "ticker")
    ticks = sorted(datetime.fromisoformat(t) for t in counts)
    assert len(ticks) >= 3, counts
    assert set(counts.values()) == {1}, counts  # exactly one execution per tick
    assert ticks == [ticks[0] + timedelta(seconds=i) for i in range(len(ticks))]  # no gap
    page = await store.list_executions(workflow_id="ticker", limit=100)
    for record in page.items:
        state = await engines[1].wait_for_execution(record.execution_id, timeout=10)
        assert state.status == "completed"
        tick, sid = record.metadata["tick"], record.metadata["schedule_id"]
        assert state.node_results["a"].data == {"schedule_id": sid, "tick": tick}
        assert record.metadata == {"trigger": "schedule", "schedule_id": sid, "tick": tick}
    [info] = await engines[0].list_schedules()
    assert (info.schedule_id, info.workflow_id, info.cron, info.paused) == (
        sid,
        "ticker",
        "* * * * * *",
        True,
    )
    assert info.last_tick == ticks[-1]


async def test_pause_resume_remove(
    make_engine: EngineFactory, reg: NodeRegistry, key_prefix: str, rounds: Rounds
) -> None:
    # Rounds every 0.5 s while no schedule is due: a paused schedule is seen being passed by.
    engine = await make_engine(
        reg, InMemoryExecutionStore(), key_prefix=key_prefix, schedule_refresh_seconds=0.5
    )
    await engine.start_workers(5)
    await engine.register_workflow(ticking())
    [info] = await engine.list_schedules("ticker")
    sid = info.schedule_id
    assert info.next_tick is not None
    await wait_until(lambda: _count(engine), timeout=10, what="a first tick")
    assert await engine.pause_schedule(sid) is True
    paused_since = datetime.now(UTC)
    assert await engine.pause_schedule(sid) is False  # already paused
    await rounds.wait_for_one_begun_after(paused_since)  # one that read it before has ended
    paused_at = await engine.store.get_execution_count(workflow_id="ticker")
    [info] = await engine.list_schedules()
    assert info.paused
    assert info.next_tick is None
    # registering the workflow again keeps it paused: a round after the next tick was due
    # (had it been active, that round would have fired it) fires nothing
    await engine.register_workflow(ticking())
    registered = datetime.now(UTC)
    next_tick = registered.replace(microsecond=0) + timedelta(seconds=1)
    await rounds.wait_for_one_begun_after(next_tick)
    assert await engine.store.get_execution_count(workflow_id="ticker") == paused_at
    # resumed: it goes on from the next tick, without catching up the paused ones
    resumed_at = datetime.now(UTC)
    assert await engine.resume_schedule(sid) is True

    async def fired_again() -> bool:
        return await engine.store.get_execution_count(workflow_id="ticker") > paused_at

    await wait_until(fired_again, timeout=10, what="a tick after the resume")
    ticks = await ticks_fired(engine.store)
    assert [t for t in ticks if paused_since < t < resumed_at] == []  # none caught up
    assert ticks[paused_at - 1] <= paused_since < resumed_at < ticks[paused_at]
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
class FakeClock:
    """Unix seconds that move only when a test says: a window passes without a sleep."""

    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def hook_engines(
    shared_store: SharedStore,
    make_engine: EngineFactory,
    reg: NodeRegistry,
    key_prefix: str,
    clock: FakeClock,
) -> tuple[WorkflowEngine, WorkflowEngine]:
    """A worker engine that registers the workflows, and an API-like engine on the same
    store and Redis that never registered one (a cold cache), on a fake clock."""
    worker = await make_engine(reg, shared_store(), key_prefix=key_prefix, close_store=False)
    api = await make_engine(
        NodeRegistry(),
        shared_store(),
        key_prefix=key_prefix,
        close_store=False,
        webhook_clock=clock,
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
    long_key = {"Idempotency-Key": "k" * 1000}  # any length
    assert await api.trigger_webhook("hooks/orders", body=b"{}", headers=long_key) != first
    hooks = await api.list_webhooks()
    assert [(h.path, h.method, h.workflow_id, h.secret is not None) for h in hooks] == [
        ("hooks/orders", "POST", "orders", False),
        ("hooks/signed", "POST", "signed", True),
    ]


async def test_webhook_signatures(
    hook_engines: tuple[WorkflowEngine, WorkflowEngine], clock: FakeClock
) -> None:
    worker, api = hook_engines
    body = b'{"action": "opened"}'
    t = int(clock.now)
    good = sign("s3cret", body, timestamp=t)
    assert good.startswith(f"t={t},v1=")
    v1 = good.partition("v1=")[2]
    rotated = sign("s3cret", body, timestamp=t - 2).partition("v1=")[2]
    for headers in (
        {"X-Spane-Signature": good},
        {"x-spane-signature": sign("s3cret", body, timestamp=t - 1)},  # any case
        # several v1 entries (a rotated secret): one match is enough
        {"X-Spane-Signature": f"t={t - 2},v1={'0' * 64},v1={rotated}"},
        {"X-Spane-Signature": sign("s3cret", body, timestamp=t + 299)},  # a clock ahead
        {"X-Spane-Signature": sign("s3cret", body, timestamp=t - 300)},  # the window's edge
    ):
        [eid] = await api.trigger_webhook("hooks/signed", "POST", body, headers)
        assert (await worker.wait_for_execution(eid, timeout=10)).status == "completed"
    started = await api.store.get_execution_count(workflow_id="signed")
    assert started == 5
    for headers, reason in [
        ({}, "missing"),
        ({"X-Hub-Signature-256": "sha256=" + v1}, "missing"),  # not this hook's scheme
        ({"X-Spane-Signature": "sha256=" + v1}, "malformed"),  # the unsigned-time scheme
        ({"X-Spane-Signature": f"v1={v1}"}, "malformed"),
        ({"X-Spane-Signature": f"t=soon,v1={v1}"}, "malformed"),
        ({"X-Spane-Signature": f"t={t},v1=abc"}, "malformed"),
        ({"X-Spane-Signature": sign("s3cret", body, timestamp=t - 301)}, "outside_window"),
        ({"X-Spane-Signature": sign("s3cret", body, timestamp=t + 301)}, "outside_window"),
        ({"X-Spane-Signature": sign("wrong", body, timestamp=t)}, "mismatch"),
        ({"X-Spane-Signature": sign("s3cret", body + b" ", timestamp=t)}, "mismatch"),
        ({"X-Spane-Signature": f"t={t + 1},v1={v1}"}, "mismatch"),  # another time, same v1
    ]:
        with pytest.raises(WebhookSignatureError) as exc:
            await api.trigger_webhook("hooks/signed", "POST", body, headers)
        assert exc.value.details["reason"] == reason, headers
        assert exc.value.http_status == 401
    with pytest.raises(WebhookPayloadError, match="pass the body as the bytes"):
        await api.trigger_webhook(
            "hooks/signed",
            "POST",
            {"action": "opened"},
            {"X-Spane-Signature": sign("s3cret", body)},
        )
    assert await api.store.get_execution_count(workflow_id="signed") == started  # none started


async def test_signed_webhook_replays_start_nothing(
    hook_engines: tuple[WorkflowEngine, WorkflowEngine], clock: FakeClock
) -> None:
    worker, api = hook_engines
    body = b'{"order": 7}'
    signed = {"X-Spane-Signature": sign("s3cret", body, timestamp=int(clock.now))}
    seen: list[tuple[str, str]] = []

    def record(name: str, fields: Mapping[str, Any]) -> None:
        if name.startswith("webhook."):
            seen.append((name, fields.get("execution_id") or fields.get("reason")))

    events.add_sink(record)
    try:
        [first] = await api.trigger_webhook("hooks/signed", "POST", body, signed)
        [again] = await api.trigger_webhook("hooks/signed", "POST", body, signed)
    finally:
        events.remove_sink(record)
    assert seen == [("webhook.accepted", first), ("webhook.duplicate", first)]
    # the same request again (above), from this process at once several times, and from
    # another process (the worker's engine: same Redis and store): the first execution's id
    burst = await asyncio.gather(
        *(api.trigger_webhook("hooks/signed", "POST", body, signed) for _ in range(5))
    )
    [elsewhere] = await worker.trigger_webhook("hooks/signed", "POST", body, signed)
    assert {again, elsewhere, *(ids[0] for ids in burst)} == {first}
    # an Idempotency-Key is not covered by the signature: ignored on a signed hook
    [keyed] = await api.trigger_webhook(
        "hooks/signed", "POST", body, {**signed, "Idempotency-Key": "another"}
    )
    assert keyed == first
    assert await api.store.get_execution_count(workflow_id="signed") == 1
    # remembered in Redis under the engine's prefix, for twice the window (either side)
    digest = fingerprint_key("POST /hooks/signed", signed["X-Spane-Signature"][-64:])
    key = ReplayMemory(api.queue.redis, api.key_prefix).key(digest)
    assert key.startswith(f"{api.key_prefix}:webhook:seen:")
    assert await api.queue.redis.get(key) == first.encode()
    assert 0 < await api.queue.redis.pttl(key) <= 600_000
    # past the window the same request is refused, not run again
    clock.now += 301
    with pytest.raises(WebhookSignatureError) as exc:
        await api.trigger_webhook("hooks/signed", "POST", body, signed)
    assert exc.value.details["reason"] == "outside_window"
    # a new signature of the same body is a new delivery
    resigned = {"X-Spane-Signature": sign("s3cret", body, timestamp=int(clock.now))}
    [second] = await api.trigger_webhook("hooks/signed", "POST", body, resigned)
    assert second != first
    assert await api.store.get_execution_count(workflow_id="signed") == 2
    assert (await worker.wait_for_execution(second, timeout=10)).status == "completed"


async def test_replays_are_remembered_in_redis_past_the_idempotency_ttl(
    shared_store: SharedStore, make_engine: EngineFactory, reg: NodeRegistry
) -> None:
    # The store forgets an idempotency key almost at once here: only Redis remembers.
    engine = await make_engine(reg, shared_store(), close_store=False, idempotency_ttl_seconds=1e-6)
    await engine.register_workflow(hooked("signed", "hooks/signed", secret="s3cret"))
    body = b"{}"
    signed = {"X-Spane-Signature": sign("s3cret", body)}
    [first] = await engine.trigger_webhook("hooks/signed", "POST", body, signed)
    [again] = await engine.trigger_webhook("hooks/signed", "POST", body, signed)
    assert again == first
    assert await engine.store.get_execution_count(workflow_id="signed") == 1


async def test_github_signed_webhooks(
    hook_engines: tuple[WorkflowEngine, WorkflowEngine],
) -> None:
    worker, api = hook_engines
    await worker.register_workflow(
        hooked("gh", "hooks/github", secret="gh-secret", signature="github", tolerance_seconds=60)
    )
    body = b'{"action": "opened"}'
    good = sign_github("gh-secret", body)
    assert good.startswith("sha256=")
    [first] = await api.trigger_webhook("hooks/github", "POST", body, {"X-Hub-Signature-256": good})
    assert (await worker.wait_for_execution(first, timeout=10)).status == "completed"
    # GitHub's redelivery of the same body within the window: the first execution's id
    for headers in (
        {"x-hub-signature-256": good},
        {"X-Hub-Signature-256": good.removeprefix("sha256=").upper()},  # bare hex, any case
    ):
        assert await api.trigger_webhook("hooks/github", "POST", body, headers) == [first]
    digest = fingerprint_key("POST /hooks/github", good.removeprefix("sha256="))
    key = ReplayMemory(api.queue.redis, api.key_prefix).key(digest)
    assert 0 < await api.queue.redis.pttl(key) <= 60_000  # the hook's window
    for headers, reason in [
        ({"X-Spane-Signature": sign("gh-secret", body)}, "missing"),  # not this hook's scheme
        ({"X-Hub-Signature-256": "sha256=abc"}, "malformed"),
        ({"X-Hub-Signature-256": sign_github("wrong", body)}, "mismatch"),
    ]:
        with pytest.raises(WebhookSignatureError) as exc:
            await api.trigger_webhook("hooks/github", "POST", body, headers)
        assert exc.value.details["reason"] == reason
    assert await api.store.get_execution_count(workflow_id="gh") == 1


class Body:
    """A request body as the API hands it over: chunks, read only when iterated."""

    def __init__(self, chunk: bytes, count: int | None = None) -> None:
        self.chunk = chunk
        self.count = count  # None: endless
        self.read = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while self.count is None or self.read < self.count:
            self.read += 1
            yield self.chunk


async def test_signed_webhook_checks_come_in_order(
    hook_engines: tuple[WorkflowEngine, WorkflowEngine], clock: FakeClock
) -> None:
    _, api = hook_engines
    not_json = b"{not json"
    now = int(clock.now)
    # no hook (404) before anything else, the body unread
    body = Body(not_json, 1)
    with pytest.raises(WebhookNotFoundError):
        await api.trigger_webhook("hooks/none", "POST", body, {})
    # the signature header (401) before the body is read: its size and JSON stay unknown
    for headers in (
        {},
        {"X-Spane-Signature": "garbage"},
        {"X-Spane-Signature": sign("s3cret", not_json, timestamp=now - 3600)},
        {"X-Spane-Signature": f"t={now},v1=", "Content-Length": str(1 << 30)},  # not 413
    ):
        body = Body(b"x" * 65536)  # endless
        with pytest.raises(WebhookSignatureError):
            await api.trigger_webhook("hooks/signed", "POST", body, headers)
        assert body.read == 0, headers
    # a wrong signature over a body that is not JSON: 401, not 400
    with pytest.raises(WebhookSignatureError) as exc:
        await api.trigger_webhook(
            "hooks/signed", "POST", Body(not_json, 1),
            {"X-Spane-Signature": sign("guess", not_json, timestamp=now)},
        )  # fmt: skip
    assert exc.value.details["reason"] == "mismatch"
    # a well-signed body that is not JSON: 400 (the sender holds the secret)
    with pytest.raises(WebhookPayloadError) as bad:
        await api.trigger_webhook(
            "hooks/signed", "POST", Body(not_json, 1),
            {"X-Spane-Signature": sign("s3cret", not_json, timestamp=now)},
        )  # fmt: skip
    assert (bad.value.details["reason"], bad.value.code) == ("not_json", "WEBHOOK_PAYLOAD_INVALID")
    # an unsigned request to the open hook learns how its body parsed: nothing to hide there
    with pytest.raises(WebhookPayloadError, match="not JSON"):
        await api.trigger_webhook("hooks/orders", "POST", Body(not_json, 1), {})
    assert await api.store.get_execution_count() == 0


async def test_webhook_bodies_over_the_limit_are_not_read_on(
    hook_engines: tuple[WorkflowEngine, WorkflowEngine],
) -> None:
    worker, api = hook_engines
    limit = api.limits.max_payload_bytes
    chunk = b" " * 65536
    # by Content-Length: refused before a byte is read
    body = Body(chunk)
    with pytest.raises(WebhookPayloadTooLargeError) as exc:
        await api.trigger_webhook("hooks/orders", "POST", body, {"Content-Length": str(30 << 20)})
    assert body.read == 0
    assert (exc.value.http_status, exc.value.code) == (413, "PAYLOAD_TOO_LARGE")
    assert exc.value.details["reason"] == "too_large"
    assert isinstance(exc.value, WebhookPayloadError)
    # no Content-Length (chunked), or one that lies: read until past the limit, no further
    for headers in ({}, {"Content-Length": "10"}):
        body = Body(chunk)  # endless
        with pytest.raises(WebhookPayloadTooLargeError, match=f"over the limit of {limit} bytes"):
            await api.trigger_webhook("hooks/orders", "POST", body, headers)
        assert body.read == limit // len(chunk) + 1, headers  # the limit and one chunk
    # on a signed hook too, once the header passed
    body = Body(chunk)
    with pytest.raises(WebhookPayloadTooLargeError):
        await api.trigger_webhook(
            "hooks/signed", "POST", body, {"X-Spane-Signature": sign("s3cret", b"")}
        )
    assert body.read == limit // len(chunk) + 1
    # at the limit exactly: read and started
    [eid] = await api.trigger_webhook(
        "hooks/orders", "POST", Body(b"[" + b" " * (limit - 2) + b"]", 1), {}
    )
    assert (await worker.wait_for_execution(eid, timeout=10)).node_results["a"].data == []
    assert await api.store.get_execution_count() == 1


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
    with pytest.raises(WebhookPayloadError, match="is not JSON-serializable"):
        await api.trigger_webhook("hooks/orders", body={"when": object()})
    # the engine's payload limits hold (1 MiB, 64 levels): the size before parsing
    with pytest.raises(WebhookPayloadError, match="over the limit of 1048576 bytes") as big:
        await api.trigger_webhook("hooks/orders", body=b"[" + b"1," * (1 << 20) + b"1]")
    assert big.value.details["reason"] == "too_large"
    assert big.value.http_status == 413
    with pytest.raises(WebhookPayloadError, match="nests deeper than 64 levels"):
        await api.trigger_webhook("hooks/orders", body=b"[" * 100 + b"]" * 100)
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


async def test_a_signed_body_that_arrives_after_the_window_is_refused(
    hook_engines: tuple[WorkflowEngine, WorkflowEngine], clock: FakeClock
) -> None:
    """The timestamp is checked when the header comes, and again once the body is in: a
    captured request whose body is trickled in past the window starts nothing."""
    _, api = hook_engines
    body = b'{"n": 1}'
    header = {"X-Spane-Signature": sign("s3cret", body, timestamp=int(clock.now))}

    class Slow:
        async def __aiter__(self) -> AsyncIterator[bytes]:
            yield body[:3]
            clock.now += 301  # the default window is 300 s
            yield body[3:]

    with pytest.raises(WebhookSignatureError) as exc:
        await api.trigger_webhook("hooks/signed", "POST", Slow(), header)
    assert exc.value.details["reason"] == "outside_window"
    assert await api.store.get_execution_count() == 0
