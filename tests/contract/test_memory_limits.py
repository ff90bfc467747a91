"""The in-memory store's own limits (not part of the contract, so not parametrised).

SPANE's bounds (1000 executions LRU, 1000 logs per execution, finished executions dropped
after an hour) with spane_py's promises on top: an execution that has not finished is never
evicted or expired, and definitions are never forgotten.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta

import pytest

from spane_py.errors import StatePersistenceError
from spane_py.records import ArtifactRecord, EventRecord
from spane_py.state import ExecutionStatus
from spane_py.stores.base import ExecutionRecord, Transition
from spane_py.stores.memory import InMemoryExecutionStore, MemoryStoreStats

from .records import T0, definition, execution, log, node, save

COMPLETED = ExecutionStatus.COMPLETED


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


async def _finish(store: InMemoryExecutionStore, record: ExecutionRecord) -> ExecutionRecord:
    done = replace(record, status=COMPLETED)
    await store.transition(record.execution_id, lambda snap: Transition(execution=done))
    return done


async def _present(store: InMemoryExecutionStore, *records: ExecutionRecord) -> list[bool]:
    return [await store.get_execution(r.execution_id) is not None for r in records]


class TestDefaults:
    def test_spane_bounds(self) -> None:
        store = InMemoryExecutionStore()
        assert store.max_executions == 1000
        assert store.max_logs_per_execution == 1000
        assert store.finished_ttl_seconds == 3600.0


class TestMaxExecutions:
    async def test_least_recently_used_finished_execution_is_evicted(self) -> None:
        store = InMemoryExecutionStore(max_executions=3)
        e1, e2, e3, e4 = (execution(status=COMPLETED) for _ in range(4))
        for record in (e1, e2, e3):
            await store.create_execution(record, [])
        await store.get_execution(e1.execution_id)  # e1 used: e2 is now the oldest
        await store.create_execution(e4, [])
        assert await _present(store, e1, e2, e3, e4) == [True, False, True, True]
        assert store.stats().executions == 3
        assert store.stats().evicted == 1

    async def test_a_transition_counts_as_use(self) -> None:
        store = InMemoryExecutionStore(max_executions=2)
        e1, e2, e3 = (execution(status=COMPLETED) for _ in range(3))
        await store.create_execution(e1, [])
        await store.create_execution(e2, [])
        await store.transition(e1.execution_id, lambda snap: Transition(nodes=(node("a"),)))
        await store.create_execution(e3, [])
        assert await _present(store, e1, e2, e3) == [True, False, True]

    async def test_unfinished_executions_are_never_evicted(self) -> None:
        store = InMemoryExecutionStore(max_executions=3)
        statuses = [ExecutionStatus.RUNNING, ExecutionStatus.PAUSED, ExecutionStatus.QUEUED]
        live = [execution(status=statuses[i % 3]) for i in range(10)]
        for record in live:
            await store.create_execution(record, [node("a")])
        assert all(await _present(store, *live))
        assert store.stats() == MemoryStoreStats(
            executions=10, running=10, workflows=0, logs=0, evicted=0
        )
        for record in live:
            assert await store.get_node_results(record.execution_id) == {"a": node("a")}

    async def test_finished_ones_go_first_whatever_their_age(self) -> None:
        store = InMemoryExecutionStore(max_executions=3)
        running = [execution() for _ in range(3)]
        for record in running:
            await store.create_execution(record, [])
        done = await _finish(store, running[1])
        newer = execution()
        await store.create_execution(newer, [])
        # Over the limit: the one finished execution goes, however recently it was used.
        assert await _present(store, running[0], done, running[2], newer) == [
            True,
            False,
            True,
            True,
        ]

    async def test_a_new_finished_execution_is_kept_even_over_the_limit(self) -> None:
        store = InMemoryExecutionStore(max_executions=2)
        for _ in range(2):
            await store.create_execution(execution(), [])
        finished = execution(status=COMPLETED)
        created = await store.create_execution(finished, [node("a")])
        assert created.created is True
        # create_execution said it exists: it must be readable.
        assert await store.get_execution(finished.execution_id) == finished
        assert await store.get_node_results(finished.execution_id) == {"a": node("a")}

    async def test_eviction_drops_everything_of_the_execution(self) -> None:
        store = InMemoryExecutionStore(max_executions=1)
        parent = execution(status=COMPLETED, idempotency_key="k")
        await store.create_execution(parent, [node("a")])
        await store.add_log(log(parent.execution_id, "hello"))
        child = execution(status=COMPLETED, parent_execution_id=parent.execution_id)
        await store.create_execution(child, [])
        assert await store.get_execution(parent.execution_id) is None
        assert await store.get_node_results(parent.execution_id) == {}
        assert await store.get_logs(parent.execution_id) == []
        assert await store.get_parent_execution(child.execution_id) is None
        assert store.stats().logs == 0
        # The idempotency key is free again.
        again = await store.create_execution(execution(idempotency_key="k"), [])
        assert again.created is True

    async def test_definitions_are_never_evicted(self) -> None:
        store = InMemoryExecutionStore(max_executions=1, finished_ttl_seconds=0.0)
        await save(store, definition("wf", "x"))
        for _ in range(5):
            await store.create_execution(execution(status=COMPLETED), [])
        assert await store.get_workflow("wf") is not None
        assert store.stats().workflows == 1


class TestMaxLogs:
    async def test_the_newest_logs_are_kept(self) -> None:
        store = InMemoryExecutionStore(max_logs_per_execution=5)
        record = execution()
        await store.create_execution(record, [])
        for i in range(8):
            await store.add_log(log(record.execution_id, f"m{i}", node_id="a" if i % 2 else None))
        assert [r.message for r in await store.get_logs(record.execution_id)] == [
            f"m{i}" for i in range(3, 8)
        ]
        assert [r.message for r in await store.get_logs(record.execution_id, "a")] == [
            "m3",
            "m5",
            "m7",
        ]
        assert store.stats().logs == 5

    async def test_the_limit_is_per_execution(self) -> None:
        store = InMemoryExecutionStore(max_logs_per_execution=2)
        one, two = execution(), execution()
        for record in (one, two):
            await store.create_execution(record, [])
            for i in range(3):
                await store.add_log(log(record.execution_id, f"m{i}"))
        assert len(await store.get_logs(one.execution_id)) == 2
        assert len(await store.get_logs(two.execution_id)) == 2


class TestFinishedTtl:
    async def test_finished_executions_expire_without_further_writes(self) -> None:
        clock = FakeClock()
        store = InMemoryExecutionStore(finished_ttl_seconds=60, clock=clock)
        done = execution(status=COMPLETED)
        running = execution()
        await store.create_execution(done, [node("a")])
        await store.create_execution(running, [])
        await store.add_log(log(done.execution_id, "m"))
        clock.advance(59.9)
        assert await _present(store, done, running) == [True, True]
        clock.advance(0.2)
        # Nothing was created since: reads alone must not show an expired execution.
        assert await store.get_execution(done.execution_id) is None
        assert await store.get_node_results(done.execution_id) == {}
        assert await store.get_logs(done.execution_id) == []
        assert _ids((await store.list_executions()).items) == [running.execution_id]
        assert await store.get_execution_count() == 1
        assert store.stats().executions == 1
        assert await _present(store, running) == [True]

    async def test_the_ttl_counts_from_when_the_execution_finished(self) -> None:
        clock = FakeClock()
        store = InMemoryExecutionStore(finished_ttl_seconds=60, clock=clock)
        record = execution()
        await store.create_execution(record, [])
        clock.advance(1000)  # a long run: no expiry while running
        assert await _present(store, record) == [True]
        await _finish(store, record)
        clock.advance(59)
        assert await _present(store, record) == [True]
        clock.advance(2)
        assert await _present(store, record) == [False]

    async def test_unfinished_executions_never_expire(self) -> None:
        clock = FakeClock()
        store = InMemoryExecutionStore(finished_ttl_seconds=1, clock=clock)
        live = [execution(status=s) for s in (ExecutionStatus.RUNNING, ExecutionStatus.PAUSED)]
        for record in live:
            await store.create_execution(record, [])
        clock.advance(10**6)
        assert store.cleanup() == 0
        assert all(await _present(store, *live))

    async def test_a_reopened_execution_does_not_expire(self) -> None:
        clock = FakeClock()
        store = InMemoryExecutionStore(finished_ttl_seconds=60, clock=clock)
        record = execution(status=ExecutionStatus.FAILED)
        await store.create_execution(record, [])
        clock.advance(30)
        retried = replace(record, status=ExecutionStatus.RUNNING)  # retry from failed nodes
        await store.transition(record.execution_id, lambda snap: Transition(execution=retried))
        clock.advance(3600)
        assert await _present(store, record) == [True]
        await _finish(store, record)
        clock.advance(61)
        assert await _present(store, record) == [False]

    async def test_expiry_with_the_real_clock(self) -> None:
        store = InMemoryExecutionStore(finished_ttl_seconds=0.01)
        done = execution(status=COMPLETED)
        await store.create_execution(done, [])
        await asyncio.sleep(0.05)
        assert await store.get_execution(done.execution_id) is None

    async def test_cleanup_reports_how_many_it_dropped(self) -> None:
        clock = FakeClock()
        store = InMemoryExecutionStore(finished_ttl_seconds=10, clock=clock)
        old = [execution(status=COMPLETED) for _ in range(3)]
        for record in old:
            await store.create_execution(record, [])
        clock.advance(5)
        young = execution(status=ExecutionStatus.CANCELLED)
        await store.create_execution(young, [])
        await store.create_execution(execution(), [])
        assert store.cleanup() == 0
        clock.advance(6)
        assert store.cleanup() == 3
        assert store.cleanup() == 0
        assert store.stats().executions == 2
        assert store.stats().evicted == 3
        clock.advance(5)
        assert store.cleanup() == 1


class TestHousekeeping:
    async def test_stats(self) -> None:
        store = InMemoryExecutionStore()
        assert store.stats() == MemoryStoreStats(
            executions=0, running=0, workflows=0, logs=0, evicted=0
        )
        await save(store, definition("a", "x"))
        await save(store, definition("a", "y"))
        await save(store, definition("b", "x"))
        records = [
            execution(),
            execution(status=ExecutionStatus.PAUSED),
            execution(status=COMPLETED),
        ]
        for record in records:
            await store.create_execution(record, [])
        for i in range(4):
            await store.add_log(log(records[i % 3].execution_id, f"m{i}"))
        assert store.stats() == MemoryStoreStats(
            executions=3, running=2, workflows=2, logs=4, evicted=0
        )

    async def test_clear_forgets_executions_and_keeps_definitions(self) -> None:
        store = InMemoryExecutionStore()
        await save(store, definition("wf", "x"))
        parent = execution(idempotency_key="k")
        child = execution(parent_execution_id=parent.execution_id)
        await store.create_execution(parent, [node("a")])
        await store.create_execution(child, [])
        await store.add_log(log(parent.execution_id, "m"))
        store.clear()
        assert await store.get_execution(parent.execution_id) is None
        assert await store.get_node_results(parent.execution_id) == {}
        assert await store.get_logs(parent.execution_id) == []
        assert await store.get_child_executions(parent.execution_id) == []
        assert await store.get_execution_count() == 0
        assert (await store.list_executions()).items == ()
        assert store.stats().executions == 0
        assert store.stats().logs == 0
        assert await store.get_workflow("wf") is not None
        # Keys are free again, and the store keeps working.
        again = await store.create_execution(execution(idempotency_key="k"), [])
        assert again.created is True
        assert store.stats().executions == 1


def _blob(execution_id: str, name: str, size: int) -> tuple[ArtifactRecord, bytes]:
    data = b"x" * size
    record = ArtifactRecord(execution_id, name, "application/octet-stream", size, T0)
    return record, data


class TestMaxArtifactBytes:
    async def test_finished_executions_artifacts_make_room_oldest_first(self) -> None:
        store = InMemoryExecutionStore(max_artifact_bytes=100)
        old, newer, running = execution(), execution(), execution()
        for record in (old, newer, running):
            await store.create_execution(record, [])
        await store.put_artifact(*_blob(old.execution_id, "a", 40))
        await store.put_artifact(*_blob(newer.execution_id, "a", 40))
        await _finish(store, old)
        await _finish(store, newer)
        await store.put_artifact(*_blob(running.execution_id, "a", 50))
        assert await store.list_artifacts(old.execution_id) == []  # dropped to make room
        assert len(await store.list_artifacts(newer.execution_id)) == 1
        assert await store.get_execution(old.execution_id) is not None  # the execution stays
        # Replacing an artifact counts only what it grows by.
        await store.put_artifact(*_blob(running.execution_id, "a", 60))
        assert len(await store.list_artifacts(newer.execution_id)) == 1

    async def test_unfinished_executions_artifacts_are_never_dropped(self) -> None:
        store = InMemoryExecutionStore(max_artifact_bytes=100)
        one, two = execution(), execution()
        for record in (one, two):
            await store.create_execution(record, [])
        await store.put_artifact(*_blob(one.execution_id, "a", 80))
        with pytest.raises(StatePersistenceError, match="at most 100 bytes of artifacts"):
            await store.put_artifact(*_blob(two.execution_id, "a", 30))
        assert await store.list_artifacts(two.execution_id) == []
        assert len(await store.list_artifacts(one.execution_id)) == 1

    async def test_artifacts_go_with_their_execution(self) -> None:
        clock = FakeClock()
        store = InMemoryExecutionStore(max_artifact_bytes=100, finished_ttl_seconds=10, clock=clock)
        record = execution()
        await store.create_execution(record, [])
        await store.put_artifact(*_blob(record.execution_id, "a", 100))
        await _finish(store, record)
        clock.advance(11)
        assert await store.get_artifact(record.execution_id, "a") is None
        fresh = execution()
        await store.create_execution(fresh, [])
        await store.put_artifact(*_blob(fresh.execution_id, "a", 100))  # its bytes were freed


class TestMaxEvents:
    async def test_the_newest_events_of_each_execution_are_kept(self) -> None:
        clock = FakeClock()
        store = InMemoryExecutionStore(
            max_events_per_execution=3, finished_ttl_seconds=10, clock=clock
        )
        one, two = execution(), execution()
        for record in (one, two):
            await store.create_execution(record, [])
        at = [T0 + timedelta(seconds=i) for i in range(5)]
        await store.add_events([EventRecord("e", t, one.execution_id) for t in at])
        await store.add_events([EventRecord("e", at[0], two.execution_id)])
        await store.add_events([EventRecord("breaker.opened", t) for t in at])
        assert [e.at for e in await store.get_events(execution_id=one.execution_id)] == at[2:]
        assert len(await store.get_events(execution_id=two.execution_id)) == 1
        assert len(await store.get_events(types=["breaker.opened"])) == 3
        await _finish(store, one)
        clock.advance(11)
        assert await store.get_events(execution_id=one.execution_id) == []  # gone with it
        assert len(await store.get_events(types=["breaker.opened"])) == 3


def _ids(records: tuple[ExecutionRecord, ...]) -> list[str]:
    return [r.execution_id for r in records]
