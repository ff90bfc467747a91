"""The PostgreSQL store's batching: a bad write fails alone; many transitions share commits."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from spane_py.errors import StatePersistenceError
from spane_py.state import NodeStatus
from spane_py.stores.base import ExecutionSnapshot, Recent, Transition
from spane_py.stores.postgres import sql
from spane_py.stores.postgres.store import PostgresExecutionStore
from tests.contract.records import Carried, execution, node


def _set_output(text: str) -> Callable[[ExecutionSnapshot], Transition]:
    def decide(snap: ExecutionSnapshot) -> Transition:
        done = replace(snap.nodes["a"], status=NodeStatus.SUCCEEDED, output=text)
        return Transition(nodes=(done,))

    return decide


async def test_a_bad_write_fails_alone(database_url: str, pg_schema: str) -> None:
    async with PostgresExecutionStore(database_url, schema=pg_schema) as store:
        good, bad = execution(), execution()
        for record in (good, bad):
            await store.create_execution(record, [node("a")])
        results = await asyncio.gather(
            store.transition(good.execution_id, _set_output('{"ok": 1}')),
            store.transition(bad.execution_id, _set_output("{not json")),
            return_exceptions=True,
        )
        assert isinstance(results[0], Transition)
        assert isinstance(results[1], StatePersistenceError)
        assert (await store.get_node_results(good.execution_id))["a"].data == {"ok": 1}
        assert (await store.get_node_results(bad.execution_id))["a"].status is NodeStatus.QUEUED


async def test_concurrent_transitions_of_many_executions_all_land(
    database_url: str, pg_schema: str
) -> None:
    async with PostgresExecutionStore(database_url, schema=pg_schema) as store:
        records = [execution() for _ in range(50)]
        await store.create_executions([(r, [node("a")]) for r in records])
        await asyncio.gather(
            *(store.transition(r.execution_id, _set_output(str(i))) for i, r in enumerate(records))
        )
        for i, r in enumerate(records):
            assert (await store.get_node_results(r.execution_id))["a"].data == i


@pytest.mark.parametrize("rounds", [3])
async def test_a_stale_cached_snapshot_is_detected(
    database_url: str, pg_schema: str, rounds: int
) -> None:
    """Another process writes between our read and our write: the guard catches it."""
    async with (
        PostgresExecutionStore(database_url, schema=pg_schema) as ours,
        PostgresExecutionStore(database_url, schema=pg_schema) as theirs,
    ):
        record = execution()
        await ours.create_execution(record, [node("a", attempts=0)])

        def bump(snap: ExecutionSnapshot) -> Transition:
            a = snap.nodes["a"]
            return Transition(nodes=(replace(a, attempts=a.attempts + 1),), decision=Carried(snap))

        for _ in range(rounds):
            seen = await ours.transition(record.execution_id, bump)  # we read (and cache)
            await theirs.transition(record.execution_id, bump)  # they write meanwhile
            await ours.transition(record.execution_id, bump, cached=seen.decision.value)
        nodes = await ours.get_node_results(record.execution_id)
        assert nodes["a"].attempts == 3 * rounds  # no update lost, none applied twice


def _spy_statements(store: PostgresExecutionStore) -> list[str]:
    """The statements the store's batcher sends, in order."""
    sent: list[str] = []
    run = store._batch._run

    class Spy:
        def __init__(self, conn: Any) -> None:
            self.conn = conn

        async def fetch(self, query: str, *args: Any) -> Any:
            sent.append(query)
            return await self.conn.fetch(query, *args)

    async def spied(fn: Any) -> Any:
        return await run(lambda conn: fn(Spy(conn)))

    store._batch._run = spied
    return sent


async def test_reads_and_writes_of_one_tick_share_a_statement(
    database_url: str, pg_schema: str
) -> None:
    async with PostgresExecutionStore(database_url, schema=pg_schema) as store:
        written, read, bad = execution(), execution(), execution()
        for record in (written, read, bad):
            await store.create_execution(record, [node("a")])
        cached = await store.get_snapshot(written.execution_id)
        cached_bad = await store.get_snapshot(bad.execution_id)
        assert cached is not None
        assert cached_bad is not None
        sent = _spy_statements(store)
        done, snap = await asyncio.gather(
            store.transition(written.execution_id, _set_output('{"ok": 1}'), cached=cached),
            store.get_snapshot(read.execution_id),
        )
        assert sent == [sql.WRITE_AND_READ]  # one statement for both
        assert isinstance(done, Transition)
        assert snap is not None
        assert snap.execution.execution_id == read.execution_id
        assert set(snap.nodes) == {"a"}
        assert (await store.get_node_results(written.execution_id))["a"].data == {"ok": 1}

        # A bad write in such a statement fails alone; the read is answered.
        sent.clear()
        results = await asyncio.gather(
            store.transition(bad.execution_id, _set_output("{not json"), cached=cached_bad),
            store.get_snapshot(read.execution_id),
            return_exceptions=True,
        )
        assert sent[0] == sql.WRITE_AND_READ
        assert isinstance(results[0], StatePersistenceError)
        assert isinstance(results[1], ExecutionSnapshot)
        assert (await store.get_node_results(bad.execution_id))["a"].status is NodeStatus.QUEUED


async def test_a_recent_snapshot_answers_only_what_the_caller_accepts(
    database_url: str, pg_schema: str
) -> None:
    """``recent``: a no-op decision on what this store learned after ``since`` stands
    without a read when the caller accepts it; anything else reads."""
    async with PostgresExecutionStore(database_url, schema=pg_schema) as store:
        reads: list[str] = []
        read = store._batch.read

        async def counted(execution_id: str) -> Any:
            reads.append(execution_id)
            return await read(execution_id)

        store._batch.read = counted  # type: ignore[method-assign]
        before = time.monotonic()
        record = execution()
        eid = record.execution_id
        await store.create_execution(record, [node("a")])

        def look(snap: ExecutionSnapshot) -> Transition:
            return Transition(decision=Carried(snap))

        def carried_only(t: Transition) -> bool:
            return isinstance(t.decision, Carried)

        done = await store.transition(eid, look, recent=Recent(before, carried_only))
        assert reads == []
        assert isinstance(done.decision, Carried)
        assert done.decision.value.revision == 0
        assert done.decision.value.nodes["a"].status is NodeStatus.QUEUED

        await store.transition(eid, look, recent=Recent(time.monotonic(), carried_only))
        assert reads == [eid]  # learned before `since`: read
        await store.transition(eid, look, recent=Recent(before, lambda t: False))
        assert reads == [eid, eid]  # a decision the caller does not take on it: read

        # Another store writes: ours still knows the old revision, and a decision that
        # writes is never answered from it (it reads, or its guard catches the change).
        async with PostgresExecutionStore(database_url, schema=pg_schema) as theirs:
            await theirs.transition(eid, _set_output("1"))
        done = await store.transition(eid, _set_output("2"), recent=Recent(before, carried_only))
        assert (await store.get_node_results(eid))["a"].data == 2
