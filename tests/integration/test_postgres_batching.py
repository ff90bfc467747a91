"""The PostgreSQL store's batching: a bad write fails alone; many transitions share commits."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace

import pytest

from spane_py.errors import StatePersistenceError
from spane_py.state import NodeStatus
from spane_py.stores.base import ExecutionSnapshot, Transition
from spane_py.stores.postgres.store import PostgresExecutionStore
from tests.contract.records import execution, node


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
            return Transition(nodes=(replace(a, attempts=a.attempts + 1),), payload=snap)

        for _ in range(rounds):
            seen = await ours.transition(record.execution_id, bump)  # we read (and cache)
            await theirs.transition(record.execution_id, bump)  # they write meanwhile
            await ours.transition(record.execution_id, bump, cached=seen.payload)
        nodes = await ours.get_node_results(record.execution_id)
        assert nodes["a"].attempts == 3 * rounds  # no update lost, none applied twice
