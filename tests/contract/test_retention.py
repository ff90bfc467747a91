"""Contract: retention, deleting expired executions (``RetentionStore.prune_executions``).

Exactly what expired goes, with everything of its own; nothing unfinished, nothing a
running parent (or a running child) needs; at most ``limit`` a call, oldest first."""

from __future__ import annotations

from datetime import timedelta

import pytest

from spane_py.records import (
    ArtifactRecord,
    DlqRecord,
    EventRecord,
    ExecutionRecord,
    ResumeTokenRecord,
    SpanRecord,
)
from spane_py.state import ExecutionStatus, NodeStatus
from spane_py.stores.base import ExecutionStore, PruneResult, Transition

from .records import T0, at, execution, log, node

DONE, FAILED, CANCELLED = (
    ExecutionStatus.COMPLETED,
    ExecutionStatus.FAILED,
    ExecutionStatus.CANCELLED,
)
CUTOFF = at(1000)


def finished(
    status: ExecutionStatus = DONE, ended: float = 0, workflow_id: str = "wf", **fields: object
) -> ExecutionRecord:
    return execution(workflow_id, status=status, completed_at=at(ended), **fields)


async def full(store: ExecutionStore, record: ExecutionRecord) -> int:
    """Write ``record`` with one row of each kind that hangs off an execution; returns the
    rows it holds in all (its own included)."""
    eid = record.execution_id
    await store.create_execution(record, [node("a", NodeStatus.SUCCEEDED), node("b")])
    await store.add_logs([log(eid, "one"), log(eid, "two", node_id="a")])
    span = SpanRecord(f"{eid}:a:0:1", eid, "a", "a", 1, "succeeded", started_at=T0)
    dead = DlqRecord(eid, record.workflow_id, "b", {"x": 1}, "boom", 3, failed_at=T0)
    await store.transition(eid, lambda snap: Transition(spans=(span,), dlq=(dead,)))
    await store.save_token(ResumeTokenRecord(f"tok-{eid}", eid, "b", 0, created_at=T0))
    blob = ArtifactRecord(eid, "x", "text/plain", 2, T0, node_id="a")
    await store.put_artifact(blob, b"hi")
    await store.add_events([EventRecord("node.completed", T0, eid, record.workflow_id, "a")])
    return 1 + 2 + 2 + 1 + 1 + 1 + 1 + 1


async def gone(store: ExecutionStore, record: ExecutionRecord) -> bool:
    eid = record.execution_id
    if await store.get_execution(eid) is not None:
        return False
    assert await store.get_node_results(eid) == {}
    assert await store.get_logs(eid) == []
    assert await store.get_spans(eid) == []
    assert await store.list_artifacts(eid) == []
    assert await store.get_events(execution_id=eid) == []
    assert await store.list_tokens(execution_id=eid, active_only=False, now=T0) == []
    items = await store.list_dlq_items(include_retried=True, limit=1000)
    assert all(i.execution_id != eid for i in items)
    return True


async def prune(store: ExecutionStore, status: ExecutionStatus = DONE, **kw: object) -> PruneResult:
    return await store.prune_executions(status=status, completed_before=CUTOFF, **kw)  # type: ignore[arg-type]


class TestPrune:
    async def test_exactly_what_expired_goes_with_everything_of_its_own(
        self, contract_store: ExecutionStore
    ) -> None:
        old = finished(ended=10)
        rows = await full(contract_store, old)
        at_cutoff = finished(ended=1000)  # not strictly before: kept
        young = finished(ended=2000)
        failed = finished(FAILED, ended=10)  # another status: kept
        for record in (at_cutoff, young, failed):
            await full(contract_store, record)

        assert await prune(contract_store) == PruneResult(1, rows)
        assert await gone(contract_store, old)
        for record in (at_cutoff, young, failed):
            assert await contract_store.get_execution(record.execution_id) is not None
            assert len(await contract_store.get_logs(record.execution_id)) == 2
            assert len(await contract_store.get_spans(record.execution_id)) == 1
        assert await prune(contract_store) == PruneResult(0, 0)
        assert await prune(contract_store, FAILED) == PruneResult(1, rows)
        assert await gone(contract_store, failed)

    async def test_unfinished_executions_are_never_deleted(
        self, contract_store: ExecutionStore
    ) -> None:
        # Even with a completed_at in the past (as a resumed execution may keep).
        for status in (ExecutionStatus.QUEUED, ExecutionStatus.RUNNING, ExecutionStatus.PAUSED):
            await contract_store.create_execution(finished(status, ended=1), [node("a")])
            with pytest.raises(ValueError, match="finished"):
                await prune(contract_store, status)
        for status in (DONE, FAILED, CANCELLED):
            assert await prune(contract_store, status) == PruneResult(0, 0)
        assert await contract_store.get_execution_count() == 3

    async def test_nothing_an_unfinished_parent_or_child_needs(
        self, contract_store: ExecutionStore
    ) -> None:
        running = execution(status=ExecutionStatus.RUNNING)
        child_of_running = finished(ended=1, parent_execution_id=running.execution_id)
        done = finished(ended=1)
        child_of_done = finished(ended=1, parent_execution_id=done.execution_id)
        parent_of_running = finished(CANCELLED, ended=1)
        running_child = execution(
            status=ExecutionStatus.RUNNING, parent_execution_id=parent_of_running.execution_id
        )
        orphan = finished(ended=1, parent_execution_id=execution().execution_id)  # not stored
        for record in (
            running,
            child_of_running,
            done,
            child_of_done,
            parent_of_running,
            running_child,
            orphan,
        ):
            await contract_store.create_execution(record, [])

        assert (await prune(contract_store)).executions == 3  # done, its child, the orphan
        for record in (done, child_of_done, orphan):
            assert await gone(contract_store, record)
        assert await prune(contract_store, CANCELLED) == PruneResult(0, 0)
        for record in (running, child_of_running, parent_of_running, running_child):
            assert await contract_store.get_execution(record.execution_id) is not None

    async def test_batches_oldest_first(self, contract_store: ExecutionStore) -> None:
        records = [finished(ended=100 - i) for i in range(7)]  # the last ended first
        for record in records:
            await contract_store.create_execution(record, [node("a")])
        assert await prune(contract_store, limit=3) == PruneResult(3, 6)
        for record in records[-3:]:
            assert await contract_store.get_execution(record.execution_id) is None
        assert await prune(contract_store, dry_run=True) == PruneResult(4, 8)
        assert await contract_store.get_execution_count() == 4
        assert await prune(contract_store, limit=3) == PruneResult(3, 6)
        assert await prune(contract_store, limit=3) == PruneResult(1, 2)
        assert await prune(contract_store, limit=3) == PruneResult(0, 0)
        assert await prune(contract_store, limit=0) == PruneResult(0, 0)
        with pytest.raises(ValueError, match="negative"):
            await prune(contract_store, limit=-1)

    async def test_by_workflow(self, contract_store: ExecutionStore) -> None:
        one = finished(ended=1, workflow_id="one")
        two = finished(ended=1, workflow_id="two")
        three = finished(ended=1, workflow_id="three")
        for record in (one, two, three):
            await contract_store.create_execution(record, [])
        assert (await prune(contract_store, workflow_id="one")).executions == 1
        assert await gone(contract_store, one)
        assert await prune(contract_store, exclude_workflows=["two", "three"]) == PruneResult(0, 0)
        assert (await prune(contract_store, exclude_workflows=["two"])).executions == 1
        assert await gone(contract_store, three)
        assert await contract_store.get_execution(two.execution_id) is not None

    async def test_a_dry_run_deletes_nothing(self, contract_store: ExecutionStore) -> None:
        record = finished(ended=1)
        rows = await full(contract_store, record)
        assert await prune(contract_store, dry_run=True) == PruneResult(1, rows)
        assert await prune(contract_store, dry_run=True, limit=0) == PruneResult(1, rows)
        assert await contract_store.get_execution(record.execution_id) is not None
        assert await contract_store.prune_executions(
            status=DONE, completed_before=at(1), dry_run=True
        ) == PruneResult(0, 0)
        assert await contract_store.prune_executions(
            status=DONE, completed_before=at(1) + timedelta(microseconds=1), dry_run=True
        ) == PruneResult(1, rows)

    async def test_find_expired_then_prune_only_those(self, contract_store: ExecutionStore) -> None:
        records = [finished(ended=10 - i) for i in range(4)]  # the last ended first
        running = execution(status=ExecutionStatus.RUNNING)
        child = finished(ended=1, parent_execution_id=running.execution_id)
        for record in (*records, running, child):
            await contract_store.create_execution(record, [])
        found = await contract_store.find_expired(status=DONE, completed_before=CUTOFF, limit=3)
        assert found == [r.execution_id for r in reversed(records)][:3]
        assert await contract_store.get_execution_count() == 6  # nothing deleted
        # ``only``: those alone, the rule still applied (a child of a running parent stays).
        only = [*found[:2], child.execution_id, "not-an-id"]
        assert (await prune(contract_store, only=only)).executions == 2
        assert await contract_store.get_execution(child.execution_id) is not None
        assert await contract_store.find_expired(status=DONE, completed_before=CUTOFF) == [
            records[1].execution_id,
            records[0].execution_id,
        ]
