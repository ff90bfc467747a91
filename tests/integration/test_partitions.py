"""The month partitions of logs and spans in PostgreSQL (``stores/postgres/partitions.py``).

Partitions are created ahead of their rows (rows of such a month already in the default
partition move in); an old partition goes whole once few stored executions may have rows
there (theirs move to the default partition first, still readable), and stays while
many may; retention runs both after deleting the executions that expired."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from spane_py.engine import pruning
from spane_py.records import LogRecord, SpanRecord
from spane_py.state import ExecutionStatus
from spane_py.stores.base import PruneResult, Transition
from spane_py.stores.base_retention import PartitionChanges
from spane_py.stores.postgres import partitions
from spane_py.stores.postgres.store import PostgresExecutionStore
from tests.contract.records import execution, node

NOW = datetime(2031, 6, 15, 12, tzinfo=UTC)


def day(month: int, d: int = 10) -> datetime:
    return datetime(2031, month, d, 12, tzinfo=UTC)


@pytest.fixture
async def store(database_url: str, pg_schema: str) -> AsyncIterator[PostgresExecutionStore]:
    async with PostgresExecutionStore(database_url, schema=pg_schema) as s:
        # The migration made this month's partitions and the next two's (empty): the tests
        # live in 2031, where they would be old ones.
        for table in ("logs", "spans"):
            for name in await names(s, table):
                if partitions.month_of(name) is not None:
                    await s.pool.execute(f"DROP TABLE {name}")
        yield s


async def names(store: PostgresExecutionStore, table: str) -> set[str]:
    return {str(r["name"]) for r in await store._partitions(table)}


async def where(store: PostgresExecutionStore, table: str, execution_id: str) -> list[str]:
    """The partitions holding ``execution_id``'s rows of ``table``, one entry per row."""
    rows = await store.pool.fetch(
        f"SELECT tableoid::regclass::text AS part FROM {table} WHERE execution_id = $1 ORDER BY 1",
        execution_id,
    )
    return [r["part"] for r in rows]


async def started(
    store: PostgresExecutionStore,
    created: datetime,
    *,
    status: ExecutionStatus = ExecutionStatus.COMPLETED,
    ended: datetime | None = None,
    logs_at: tuple[datetime, ...] = (),
) -> str:
    """An execution created at ``created`` (and finished at ``ended``), with a log line at
    each of ``logs_at`` and a span at the first."""
    record = execution(
        created_at=created,
        status=status,
        completed_at=ended if status.is_terminal else None,
    )
    eid = record.execution_id
    await store.create_execution(record, [node("a")])
    await store.add_logs([LogRecord(eid, "info", f"at {t:%m-%d}", t, "a") for t in logs_at])
    if logs_at:
        span = SpanRecord(f"{eid}:a:0:1", eid, "a", "a", 1, "succeeded", logs_at[0], logs_at[0])
        await store.transition(eid, lambda snap: Transition(spans=(span,)))
    return eid


async def test_the_coming_months_are_created_and_take_their_rows_from_the_default_one(
    store: PostgresExecutionStore,
) -> None:
    eid = await started(store, day(7), logs_at=(day(7), day(8, 31), day(9)))
    assert set(await where(store, "logs", eid)) == {"logs_default"}

    changes = await store.ensure_partitions(NOW)  # June, July, August 2031
    assert set(changes.created) == {
        f"{table}_p2031{m:02}" for table in ("logs", "spans") for m in (6, 7, 8)
    }
    assert changes.moved == 3  # two log lines and the span (September has no partition)
    assert await where(store, "logs", eid) == ["logs_default", "logs_p203107", "logs_p203108"]
    assert await where(store, "spans", eid) == ["spans_p203107"]
    assert [r.message for r in await store.get_logs(eid)] == ["at 07-10", "at 08-31", "at 09-10"]
    assert len(await store.get_spans(eid)) == 1
    # Once there, nothing more to do; later rows go straight to their month.
    assert await store.ensure_partitions(NOW) == PartitionChanges()
    await store.add_logs([LogRecord(eid, "info", "later", day(6), "a")])
    assert "logs_p203106" in await where(store, "logs", eid)


async def test_an_old_partition_goes_whole_and_what_is_still_stored_moves_out(
    store: PostgresExecutionStore,
) -> None:
    await store.ensure_partitions(day(1))  # January to March
    gone = await started(store, day(1), ended=day(1, 11), logs_at=(day(1), day(1, 11)))
    failed = await started(
        store, day(2), status=ExecutionStatus.FAILED, ended=day(2, 12), logs_at=(day(2),)
    )
    result = await store.prune_executions(status=ExecutionStatus.COMPLETED, completed_before=day(3))
    assert result.executions == 1
    # The deleted execution's rows wait for their partition, and are never read back.
    assert await where(store, "logs", gone) == ["logs_p203101", "logs_p203101"]
    assert await store.get_logs(gone) == []
    assert await store.get_spans(gone) == []

    changes = await store.drop_partitions(NOW)
    assert set(changes.dropped) == {
        f"{table}_p2031{m:02}" for table in ("logs", "spans") for m in (1, 2, 3)
    }
    assert changes.moved == 2  # the failed execution's log line and span
    assert await names(store, "logs") == {"logs_default"}
    assert await where(store, "logs", gone) == []
    assert await where(store, "logs", failed) == ["logs_default"]
    assert [r.message for r in await store.get_logs(failed)] == ["at 02-10"]
    assert len(await store.get_spans(failed)) == 1

    # In the default partition, deleting the execution deletes its rows.
    result = await store.prune_executions(status=ExecutionStatus.FAILED, completed_before=NOW)
    assert result == PruneResult(1, 4)  # the execution, its node, its log line and span
    assert await where(store, "logs", failed) == []
    assert await where(store, "spans", failed) == []


async def test_a_partition_that_too_many_stored_executions_may_need_stays(
    store: PostgresExecutionStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(partitions, "MAX_KEPT", 1)
    await store.ensure_partitions(day(2))  # February to April
    for _ in range(2):
        await started(store, day(2), ended=day(2, 12), logs_at=(day(2),))
    # Created long before and still running: it may write in every month since.
    running = await started(store, day(1), status=ExecutionStatus.RUNNING)
    dry = await store.drop_partitions(NOW, dry_run=True)
    assert set(dry.dropped) == {f"{t}_p2031{m:02}" for t in ("logs", "spans") for m in (3, 4)}
    assert await store.drop_partitions(NOW) == dry
    assert await names(store, "logs") == {"logs_default", "logs_p203102"}

    # The running one, alone, is not too many: it keeps nothing once February's go.
    await store.prune_executions(status=ExecutionStatus.COMPLETED, completed_before=NOW)
    assert (await store.drop_partitions(NOW)).dropped == ("logs_p203102", "spans_p203102")
    assert await store.get_execution(running) is not None


async def test_a_recent_partition_stays_whatever_it_holds(store: PostgresExecutionStore) -> None:
    await store.ensure_partitions(NOW)
    # June ends in the future, and May less than the margin before "now" (June 1st + 12 h).
    june_first = datetime(2031, 6, 1, 12, tzinfo=UTC)
    assert await store.drop_partitions(june_first) == PartitionChanges()
    assert await store.drop_partitions(june_first + partitions.MARGIN) == PartitionChanges()


async def test_retention_deletes_the_expired_then_drops_their_partitions(
    store: PostgresExecutionStore,
) -> None:
    await store.ensure_partitions(day(1))
    old = [await started(store, day(1), ended=day(1, 12), logs_at=(day(1),)) for _ in range(3)]
    recent = await started(store, NOW - timedelta(days=2), ended=NOW - timedelta(days=1))

    dry = await pruning.prune_older_than(store, timedelta(days=30), NOW, dry_run=True)
    assert (dry.executions, dry.partitions) == (3, 6)  # logs and spans of January to March
    assert len(await names(store, "logs")) == 4  # nothing changed

    result = await pruning.prune_older_than(store, timedelta(days=30), NOW)
    assert (result.executions, result.partitions) == (3, 6)
    for eid in old:
        assert await where(store, "logs", eid) == []
    assert await store.get_execution(recent) is not None
    # ... and this month's partitions and the next two's were made on the way.
    assert await names(store, "logs") == {
        "logs_default",
        "logs_p203106",
        "logs_p203107",
        "logs_p203108",
    }


async def test_a_busy_table_is_left_for_a_later_round(
    store: PostgresExecutionStore, database_url: str, pg_schema: str
) -> None:
    """A long transaction reading logs: creating or dropping a partition would queue every
    other statement on logs behind it. It gives up after its lock_timeout instead."""
    import asyncpg

    reader = await asyncpg.connect(database_url, server_settings={"search_path": pg_schema})
    try:
        transaction = reader.transaction()
        await transaction.start()
        await reader.fetch("SELECT 1 FROM logs LIMIT 1")  # holds its lock until the end
        changes = await store.ensure_partitions(NOW)  # spans' partitions: not busy
        assert changes.created == ("spans_p203106", "spans_p203107", "spans_p203108")
        # Meanwhile the store's own statements on logs go on.
        eid = await started(store, day(6), logs_at=(day(6),))
        await transaction.rollback()
    finally:
        await reader.close()
    changes = await store.ensure_partitions(NOW)
    assert changes.created == ("logs_p203106", "logs_p203107", "logs_p203108")
    assert changes.moved == 1  # the line logged meanwhile went to the default partition
    assert await where(store, "logs", eid) == ["logs_p203106"]
