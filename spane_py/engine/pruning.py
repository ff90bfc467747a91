"""Retention applied: deleting the executions whose time is up, by the engine's
``retention`` and each workflow's own (its latest definition's ``retention``), in batches.

The rule of what may go is the store's (``RetentionStore.prune_executions``); this module
only computes the cutoffs: for each finished status, the workflows that set their own
time are pruned each by theirs, and every other workflow by the engine's (when it has
one). Workers run it every ``retention_interval_seconds`` (the side task ``retention``);
``spane db prune`` runs ``prune_older_than`` by hand.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from spane_py.archive import Archive
from spane_py.retention import PRUNABLE, Retention
from spane_py.state import ExecutionStatus
from spane_py.stores.base import ExecutionStore, PruneResult
from spane_py.stores.base_retention import PartitionedTraces

logger = logging.getLogger("spane_py.retention")
BATCH = 500  # executions per statement: short statements, short locks


@dataclass(frozen=True, slots=True)
class PrunePass:
    """One cutoff to apply: ``status`` executions of ``workflow_id`` (None: every workflow
    but ``exclude``) that finished before ``before``."""

    status: ExecutionStatus
    before: datetime
    workflow_id: str | None = None
    exclude: tuple[str, ...] = ()

    @property
    def rule(self) -> dict[str, Any]:
        """The cutoff as the store's arguments (``prune_executions``, ``find_expired``)."""
        return {
            "status": self.status,
            "completed_before": self.before,
            "workflow_id": self.workflow_id,
            "exclude_workflows": self.exclude,
        }


async def workflow_retention(store: ExecutionStore) -> dict[str, Retention]:
    """The workflows whose latest definition sets a ``retention``, and theirs."""
    found: dict[str, Retention] = {}
    offset = 0
    while True:
        page = await store.list_workflows(active_only=False, limit=500, offset=offset)
        for record in page:
            settings = record.definition.retention
            if settings is not None:
                found[record.workflow_id] = Retention(
                    completed=settings.completed,
                    failed=settings.failed,
                    cancelled=settings.cancelled,
                )
        if len(page) < 500:
            return found
        offset += len(page)


def plan(
    default: Retention | None, per_workflow: dict[str, Retention], now: datetime
) -> list[PrunePass]:
    """The cutoffs that the engine's and the workflows' settings make at ``now``."""
    passes: list[PrunePass] = []
    for status in PRUNABLE:
        own = {w: r.for_status(status) for w, r in sorted(per_workflow.items())}
        own_set = {w: keep for w, keep in own.items() if keep is not None}
        for workflow_id, keep in own_set.items():
            passes.append(PrunePass(status, now - keep, workflow_id))
        keep_default = None if default is None else default.for_status(status)
        if keep_default is not None:
            passes.append(PrunePass(status, now - keep_default, exclude=tuple(own_set)))
    return passes


async def run_passes(
    store: ExecutionStore,
    passes: Sequence[PrunePass],
    *,
    dry_run: bool = False,
    archive: Archive | None = None,
    now: datetime | None = None,
) -> PruneResult:
    """Apply each cutoff in batches of ``BATCH`` until a batch finds fewer (a dry run:
    count at once); what went in all. With ``archive``, each batch is written there
    (at ``now``) before it is deleted."""
    total = PruneResult()
    for p in passes:
        if archive is not None and not dry_run:
            total += await _archive_and_prune(store, p, archive, now or p.before)
            continue
        while True:
            result = await store.prune_executions(
                **p.rule,
                limit=BATCH,
                dry_run=dry_run,
            )
            total += result
            if dry_run or result.executions < BATCH:
                break
            await asyncio.sleep(0)  # let the worker's jobs run between batches
    return total


async def _archive_and_prune(
    store: ExecutionStore, p: PrunePass, archive: Archive, now: datetime
) -> PruneResult:
    """Batch by batch: find the expired ones, archive them, delete those (the rule checked
    again: one that a running execution came to need meanwhile stays, archived)."""
    total = PruneResult()
    while True:
        ids = await store.find_expired(
            **p.rule,
            limit=BATCH,
        )
        if not ids:
            return total
        await archive.write(store, ids, now)
        result = await store.prune_executions(
            **p.rule,
            limit=BATCH,
            only=ids,
        )
        total += result
        if len(ids) < BATCH or not result.executions:
            return total
        await asyncio.sleep(0)


async def prune_expired(
    store: ExecutionStore,
    default: Retention | None,
    now: datetime,
    *,
    dry_run: bool = False,
    archive: Archive | None = None,
) -> PruneResult:
    """Delete (or, dry, count) what the settings say has expired at ``now``; with
    ``archive``, written there first."""
    passes = plan(default, await workflow_retention(store), now)
    result = await run_passes(store, passes, dry_run=dry_run, archive=archive, now=now)
    result += await keep_partitions(store, now, dry_run=dry_run)
    if (result.executions or result.partitions) and not dry_run:
        logger.info(
            "retention: deleted %d expired execution(s), %d row(s); dropped %d partition(s)",
            result.executions,
            result.rows,
            result.partitions,
        )
    return result


async def keep_partitions(
    store: ExecutionStore, now: datetime, *, dry_run: bool = False
) -> PruneResult:
    """A store with partitioned logs and spans (PostgreSQL): the partitions of the coming
    months are created, and the old ones that no stored execution needs are dropped
    (after the executions that expired went). Counted in ``partitions``."""
    if not isinstance(store, PartitionedTraces):
        return PruneResult()
    if not dry_run:
        created = await store.ensure_partitions(now)
        if created.created:
            logger.info("retention: created the partitions %s", ", ".join(created.created))
    changes = await store.drop_partitions(now, dry_run=dry_run)
    if changes.dropped and not dry_run:
        logger.info(
            "retention: dropped the partitions %s (%d row(s) of stored executions moved out)",
            ", ".join(changes.dropped),
            changes.moved,
        )
    return PruneResult(partitions=len(changes.dropped))


async def prune_older_than(
    store: ExecutionStore,
    older_than: timedelta,
    now: datetime,
    *,
    statuses: Sequence[ExecutionStatus] = PRUNABLE,
    workflow_id: str | None = None,
    dry_run: bool = False,
    archive: Archive | None = None,
) -> PruneResult:
    """What ``spane db prune`` does: one cutoff for every workflow (or ``workflow_id``)
    and each of ``statuses``, whatever the settings say."""
    passes = [PrunePass(s, now - older_than, workflow_id) for s in statuses]
    result = await run_passes(store, passes, dry_run=dry_run, archive=archive, now=now)
    return result + await keep_partitions(store, now, dry_run=dry_run)
