"""The month partitions of logs and spans (a mixin of ``PostgresExecutionStore``).

``logs`` and ``spans`` are partitioned by range on their time (migration 0008): one
partition per calendar month in UTC, ``logs_pYYYYMM``, and a default partition for rows of
months that have none. Two operations keep them, both run by retention (engine.pruning):

* ``ensure_partitions``: the partitions of this month and the next ones are created ahead
  of the rows; rows of such a month already in the default partition move into it.
* ``drop_partitions``: a month's partition is dropped whole — no row-by-row delete, no
  dead rows left to vacuum — once it ended more than ``MARGIN`` ago and the stored
  executions that may have rows there (created before its end, not finished before its
  start, both give or take ``MARGIN``) are few: at most ``MAX_KEPT``. Their rows move to
  the default partition first, where deleting their execution deletes them. Rows of
  executions that were deleted stay in their month's partition until it is dropped
  (reads never return them).

``MARGIN`` stands for the clocks of different processes and for rows written a little
after their execution ended (the last logs of a node that was still finishing when its
execution was cancelled).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import asyncpg

from spane_py.stores.base_retention import PartitionChanges
from spane_py.stores.postgres import sql_partitions as sql
from spane_py.stores.postgres.connection import with_retry
from spane_py.stores.postgres.store_base import PostgresStoreBase

T = TypeVar("T")
logger = logging.getLogger("spane_py.retention")
MARGIN = timedelta(days=1)
MAX_KEPT = 1000  # executions whose rows may be moved out of a partition to drop it
AHEAD = 2  # months created ahead of this one
_MONTH = re.compile(r"_p(\d{4})(\d{2})$")

__all__ = ["AHEAD", "MARGIN", "MAX_KEPT", "PostgresPartitions"]


def month_start(when: datetime) -> datetime:
    """The first instant of ``when``'s month in UTC."""
    when = when.astimezone(UTC)
    return datetime(when.year, when.month, 1, tzinfo=UTC)


def add_months(month: datetime, count: int) -> datetime:
    index = month.year * 12 + month.month - 1 + count
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


def partition_name(table: str, month: datetime) -> str:
    return f"{table}_p{month:%Y%m}"


def month_of(partition: str) -> datetime | None:
    """The month a partition's name stands for (None: not a month partition)."""
    found = _MONTH.search(partition)
    if found is None:
        return None
    return datetime(int(found.group(1)), int(found.group(2)), 1, tzinfo=UTC)


class PostgresPartitions(PostgresStoreBase):
    async def ensure_partitions(self, now: datetime, *, ahead: int = AHEAD) -> PartitionChanges:
        """Create the missing partitions of logs and spans for ``now``'s month and the
        ``ahead`` months after it (a partition of a past month is never created again)."""
        months = [add_months(month_start(now), k) for k in range(ahead + 1)]
        created: list[str] = []
        moved = 0
        for table, column in sql.PARTITIONED.items():
            existing = {r["name"] for r in await self._partitions(table)}
            for month in months:
                name = partition_name(table, month)
                if name in existing:
                    continue
                made, count = await self._create(table, column, name, month)
                if made:
                    created.append(name)
                moved += count
        return PartitionChanges(created=tuple(created), moved=moved)

    async def drop_partitions(self, now: datetime, *, dry_run: bool = False) -> PartitionChanges:
        """Drop the month partitions of logs and spans that ended before ``now - MARGIN``
        and that at most ``MAX_KEPT`` stored executions may have rows in (moved to the
        default partition first). ``dry_run``: which would go, changing nothing."""
        dropped: list[str] = []
        moved = 0
        cutoff = now - MARGIN
        for table in sql.PARTITIONED:
            for row in await self._partitions(table):
                month = month_of(str(row["name"]))  # None: the default one
                if month is None or add_months(month, 1) > cutoff:
                    continue
                name = str(row["name"])
                outcome = await self._drop(table, name, month, dry_run=dry_run)
                if outcome is not None:
                    dropped.append(name)
                    moved += outcome
        return PartitionChanges(dropped=tuple(dropped), moved=moved)

    async def _partitions(self, table: str) -> list[dict[str, object]]:
        found = await self._fetch(f"listing the partitions of {table}", sql.LIST, table)
        return [dict(r) for r in found]

    async def _create(
        self, table: str, column: str, name: str, month: datetime
    ) -> tuple[bool, int]:
        """Whether this call created it (another process may have, or the table was busy),
        and the rows that moved into it from the default partition."""
        end = add_months(month, 1)

        async def run() -> tuple[bool, int]:
            async with self.pool.acquire() as conn, conn.transaction():
                await conn.execute(sql.LOCK)
                await conn.execute(sql.LOCK_TIMEOUT)
                if await conn.fetchval("SELECT to_regclass($1)", name) is not None:
                    return False, 0
                if not await conn.fetchval(sql.default_has_rows(table, column), month, end):
                    await conn.execute(sql.create(table, name, month, end))
                    return True, 0
                await conn.execute(sql.create_detached(table, name))
                status = await conn.execute(sql.take_from_default(table, column, name), month, end)
                await conn.execute(sql.attach(table, name, month, end))
                return True, int(status.split()[-1])

        done = await self._unless_busy(run, f"creating the partition {name}")
        return done if done is not None else (False, 0)

    async def _drop(self, table: str, name: str, month: datetime, *, dry_run: bool) -> int | None:
        """Rows moved out before dropping ``name`` (None: it stays, as too many executions
        may have rows there, or another process dropped it, or the table was busy)."""
        end = add_months(month, 1)

        async def run() -> int | None:
            async with self.pool.acquire() as conn, conn.transaction():
                await conn.execute(sql.LOCK)
                await conn.execute(sql.LOCK_TIMEOUT)
                if await conn.fetchval("SELECT to_regclass($1)", name) is None:
                    return None
                pins = await conn.fetch(sql.PINS, month, end, MARGIN, MAX_KEPT + 1)
                if len(pins) > MAX_KEPT:
                    return None
                kept = [str(r["execution_id"]) for r in pins]
                if dry_run:
                    return int(await conn.fetchval(sql.count_kept(name), kept))
                await conn.execute(sql.detach(table, name))
                status = await conn.execute(sql.put_back(table, name), kept)
                await conn.execute(sql.drop(name))
                return int(status.split()[-1])

        return await self._unless_busy(run, f"dropping the partition {name}")

    async def _unless_busy(self, run: Callable[[], Awaitable[T]], what: str) -> T | None:
        """``run()`` (retried on connection loss); None when it waited ``lock_timeout`` for
        its table: the next round tries again."""

        async def once() -> T | None:
            try:
                return await run()
            except asyncpg.LockNotAvailableError:
                logger.info("%s: the table is busy; a later round tries again", what)
                return None

        return await with_retry(once, what=what, retry_for_s=self.options.retry_for_s)
