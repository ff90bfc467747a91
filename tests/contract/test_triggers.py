"""Contract: schedules and webhook bindings of registered workflows."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from spane_py.errors import StatePersistenceError
from spane_py.stores.base import ExecutionStore, ScheduleRecord, WebhookRecord

from .records import T0, at, definition, save


def schedule(workflow_id: str = "wf", name: str = "a", **changes: Any) -> ScheduleRecord:
    record = ScheduleRecord(
        schedule_id=f"{workflow_id}:{name}",
        workflow_id=workflow_id,
        cron="* * * * *",
        timezone="Europe/Berlin",
        created_at=T0,
    )
    return dataclasses.replace(record, **changes)


def hook(
    path: str, method: str = "POST", workflow_id: str = "wf", secret: str | None = None
) -> WebhookRecord:
    return WebhookRecord(path=path, method=method, workflow_id=workflow_id, secret=secret)


async def test_sync_creates_lists_and_reads_schedules(contract_store: ExecutionStore) -> None:
    await save(contract_store, definition("wf", "a"))
    await save(contract_store, definition("other", "a"))
    assert await contract_store.sync_triggers("wf", [schedule(name="b"), schedule()], []) == []
    assert await contract_store.sync_triggers("other", [schedule("other")], []) == []
    listed = await contract_store.list_schedules()
    assert [s.schedule_id for s in listed] == ["other:a", "wf:a", "wf:b"]
    assert [s.schedule_id for s in await contract_store.list_schedules("wf")] == ["wf:a", "wf:b"]
    got = await contract_store.get_schedule("wf:a")
    assert got == schedule()
    assert got is not None
    assert got.paused is False
    assert got.last_tick is None
    assert got.created_at == T0  # microseconds kept
    assert await contract_store.get_schedule("nope") is None


async def test_sync_keeps_state_of_kept_schedules_and_drops_the_others(
    contract_store: ExecutionStore,
) -> None:
    await save(contract_store, definition("wf", "a"))
    await contract_store.sync_triggers("wf", [schedule(), schedule(name="b")], [])
    assert await contract_store.set_schedule_paused("wf:a", True)
    assert await contract_store.advance_schedule("wf:a", None, at(60))
    later = schedule(missed="run_once", created_at=at(3600))
    await contract_store.sync_triggers("wf", [later, schedule(name="c")], [])
    kept = await contract_store.get_schedule("wf:a")
    assert kept == schedule(missed="run_once", paused=True, last_tick=at(60))  # created_at kept
    assert [s.schedule_id for s in await contract_store.list_schedules()] == ["wf:a", "wf:c"]
    await contract_store.sync_triggers("wf", [], [])
    assert await contract_store.list_schedules() == []


async def test_sync_of_an_unsaved_workflow_is_refused(contract_store: ExecutionStore) -> None:
    with pytest.raises(StatePersistenceError, match="'ghost' is not saved"):
        await contract_store.sync_triggers("ghost", [schedule("ghost")], [hook("x", "POST")])
    assert await contract_store.list_schedules() == []
    assert await contract_store.list_webhooks() == []


async def test_pause_and_resume(contract_store: ExecutionStore) -> None:
    await save(contract_store, definition("wf", "a"))
    await contract_store.sync_triggers("wf", [schedule()], [])
    assert await contract_store.set_schedule_paused("wf:a", True) is True
    assert await contract_store.set_schedule_paused("wf:a", True) is False  # already
    paused = await contract_store.get_schedule("wf:a")
    assert paused is not None
    assert paused.paused
    assert paused.last_tick is None
    # resuming moves last_tick forward to skip_until (ticks while paused are not caught up)
    assert await contract_store.set_schedule_paused("wf:a", False, skip_until=at(100))
    resumed = await contract_store.get_schedule("wf:a")
    assert resumed is not None
    assert not resumed.paused
    assert resumed.last_tick == at(100)
    # ... but never back
    await contract_store.set_schedule_paused("wf:a", True)
    await contract_store.set_schedule_paused("wf:a", False, skip_until=at(50))
    again = await contract_store.get_schedule("wf:a")
    assert again is not None
    assert again.last_tick == at(100)
    assert await contract_store.set_schedule_paused("nope", True) is False


async def test_advance_is_compare_and_set(contract_store: ExecutionStore) -> None:
    await save(contract_store, definition("wf", "a"))
    await contract_store.sync_triggers("wf", [schedule()], [])
    assert await contract_store.advance_schedule("wf:a", None, at(1)) is True
    assert await contract_store.advance_schedule("wf:a", None, at(2)) is False  # lost the race
    assert await contract_store.advance_schedule("wf:a", at(1), at(2)) is True
    got = await contract_store.get_schedule("wf:a")
    assert got is not None
    assert got.last_tick == at(2)
    assert await contract_store.advance_schedule("nope", None, at(1)) is False


async def test_delete_schedule(contract_store: ExecutionStore) -> None:
    await save(contract_store, definition("wf", "a"))
    await contract_store.sync_triggers("wf", [schedule(), schedule(name="b")], [])
    assert await contract_store.delete_schedule("wf:a") is True
    assert await contract_store.delete_schedule("wf:a") is False
    assert [s.schedule_id for s in await contract_store.list_schedules()] == ["wf:b"]


async def test_webhooks_bound_listed_and_replaced(contract_store: ExecutionStore) -> None:
    await save(contract_store, definition("wf", "a"))
    await save(contract_store, definition("other", "a"))
    hooks = [hook("orders/new", "POST", secret="s1"), hook("orders/new", "GET"), hook("b")]
    assert await contract_store.sync_triggers("wf", [], hooks) == []
    assert await contract_store.sync_triggers("other", [], [hook("z", workflow_id="other")]) == []
    listed = await contract_store.list_webhooks()
    assert [(w.path, w.method, w.workflow_id) for w in listed] == [
        ("b", "POST", "wf"),
        ("orders/new", "GET", "wf"),
        ("orders/new", "POST", "wf"),
        ("z", "POST", "other"),
    ]
    assert all(w.created_at is not None for w in listed)
    assert [w.path for w in await contract_store.list_webhooks("other")] == ["z"]
    got = await contract_store.get_webhook("orders/new", "POST")
    assert got is not None
    assert got.secret == "s1"
    assert got.workflow_id == "wf"
    assert "s1" not in repr(got)  # secrets stay out of logs
    assert await contract_store.get_webhook("orders/new", "PUT") is None
    # a new version: the secret changes, GET and b go
    await contract_store.sync_triggers("wf", [], [hook("orders/new", "POST", secret="s2")])
    assert [(w.path, w.method) for w in await contract_store.list_webhooks("wf")] == [
        ("orders/new", "POST")
    ]
    again = await contract_store.get_webhook("orders/new", "POST")
    assert again is not None
    assert again.secret == "s2"
    assert again.created_at == got.created_at


async def test_a_path_bound_to_another_active_workflow_is_a_conflict(
    contract_store: ExecutionStore,
) -> None:
    await save(contract_store, definition("wf", "a"))
    await save(contract_store, definition("other", "a"))
    await contract_store.sync_triggers("wf", [schedule()], [hook("orders/new", secret="s")])
    conflicts = await contract_store.sync_triggers(
        "other", [schedule("other")], [hook("free", workflow_id="other"), hook("orders/new")]
    )
    assert [(c.path, c.method, c.workflow_id) for c in conflicts] == [("orders/new", "POST", "wf")]
    # nothing written for "other"
    assert await contract_store.list_schedules("other") == []
    assert await contract_store.list_webhooks("other") == []
    bound = await contract_store.get_webhook("orders/new", "POST")
    assert bound is not None
    assert bound.workflow_id == "wf"
    assert bound.secret == "s"


async def test_a_deactivated_workflows_path_passes_to_the_next(
    contract_store: ExecutionStore,
) -> None:
    await save(contract_store, definition("old", "a"))
    await save(contract_store, definition("new", "a"))
    await contract_store.sync_triggers("old", [], [hook("orders/new", workflow_id="old")])
    assert await contract_store.deactivate_workflow("old")
    assert (
        await contract_store.sync_triggers("new", [], [hook("orders/new", workflow_id="new")]) == []
    )
    bound = await contract_store.get_webhook("orders/new", "POST")
    assert bound is not None
    assert bound.workflow_id == "new"
    assert await contract_store.list_webhooks("old") == []


async def test_conflicts_come_back_as_stored_ordered_by_path_then_method(
    contract_store: ExecutionStore,
) -> None:
    await save(contract_store, definition("wf", "a"))
    await save(contract_store, definition("other", "a"))
    taken = [hook("z"), hook("a", "PUT", secret="s"), hook("a", "GET")]
    await contract_store.sync_triggers("wf", [], taken)
    stored = {(w.path, w.method): w for w in await contract_store.list_webhooks("wf")}
    conflicts = await contract_store.sync_triggers(
        "other", [], [hook(w.path, w.method, workflow_id="other") for w in taken]
    )
    assert conflicts == [stored["a", "GET"], stored["a", "PUT"], stored["z", "POST"]]
    assert conflicts[1].secret == "s"


async def test_a_conflict_leaves_the_workflows_own_triggers_as_they_were(
    contract_store: ExecutionStore,
) -> None:
    await save(contract_store, definition("wf", "a"))
    await save(contract_store, definition("other", "a"))
    await contract_store.sync_triggers("wf", [], [hook("orders/new")])
    await contract_store.sync_triggers(
        "other", [schedule("other")], [hook("mine", workflow_id="other", secret="s1")]
    )
    before = (
        await contract_store.list_schedules("other"),
        await contract_store.list_webhooks("other"),
    )
    conflicts = await contract_store.sync_triggers(
        "other",
        [schedule("other", name="b")],
        [hook("mine", workflow_id="other", secret="s2"), hook("orders/new", workflow_id="other")],
    )
    assert [(c.path, c.workflow_id) for c in conflicts] == [("orders/new", "wf")]
    after = (
        await contract_store.list_schedules("other"),
        await contract_store.list_webhooks("other"),
    )
    assert after == before


async def test_a_reactivated_workflow_does_not_take_back_a_path_another_holds(
    contract_store: ExecutionStore,
) -> None:
    await save(contract_store, definition("old", "a"))
    await save(contract_store, definition("new", "a"))
    await contract_store.sync_triggers("old", [], [hook("orders/new", workflow_id="old")])
    assert await contract_store.deactivate_workflow("old")
    assert (
        await contract_store.sync_triggers("new", [], [hook("orders/new", workflow_id="new")]) == []
    )
    await save(contract_store, definition("old", "a"))  # the same content: reactivated
    conflicts = await contract_store.sync_triggers(
        "old", [], [hook("orders/new", workflow_id="old")]
    )
    assert [(c.path, c.workflow_id) for c in conflicts] == [("orders/new", "new")]
    # Once "new" is deactivated, the path passes back to "old" when "old" syncs again.
    assert await contract_store.deactivate_workflow("new")
    assert (
        await contract_store.sync_triggers("old", [], [hook("orders/new", workflow_id="old")]) == []
    )
    bound = await contract_store.get_webhook("orders/new", "POST")
    assert bound is not None
    assert bound.workflow_id == "old"
