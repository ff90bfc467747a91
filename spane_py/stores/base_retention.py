"""The store protocol of retention (``RetentionStore``): deleting finished executions
that expired, with everything that hangs off them. Part of the store contract
(``spane_py.stores.base``, which re-exports it and puts it in ``ExecutionStore``);
``tests/contract/test_retention.py`` holds every store to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from spane_py.state import ExecutionStatus

__all__ = [
    "PartitionChanges",
    "PartitionedTraces",
    "PruneResult",
    "RetentionStore",
    "check_prunable",
]


@dataclass(frozen=True, slots=True)
class PruneResult:
    """What one ``prune_executions`` call deleted (or, dry, would delete): ``executions``,
    and ``rows`` in all (the executions' own rows, their node results, logs, spans,
    resume tokens, dead-letter items, artifacts and events)."""

    executions: int = 0
    rows: int = 0
    # Partitions of logs and spans dropped whole (PostgreSQL). The logs and spans of
    # deleted executions in a month's partition go with it, and count in neither.
    partitions: int = 0

    def __add__(self, other: PruneResult) -> PruneResult:
        return PruneResult(
            self.executions + other.executions,
            self.rows + other.rows,
            self.partitions + other.partitions,
        )


def check_prunable(status: ExecutionStatus) -> None:
    """Only finished executions are pruned: another status raises ``ValueError``."""
    if not ExecutionStatus(status).is_terminal:
        raise ValueError(f"only finished executions are pruned, not {status!r} ones")


@runtime_checkable
class RetentionStore(Protocol):
    """Deleting expired executions (test_retention.py)."""

    async def prune_executions(
        self,
        *,
        status: ExecutionStatus,
        completed_before: datetime,
        workflow_id: str | None = None,
        exclude_workflows: Sequence[str] = (),
        limit: int = 500,
        dry_run: bool = False,
        only: Sequence[str] | None = None,
    ) -> PruneResult:
        """Delete at most ``limit`` expired executions and everything of theirs, the
        oldest (by ``completed_at``) first; returns what went.

        The rule, the one definition (in Python and in SQL): an execution expires when its
        status is ``status`` — which must be completed, failed or cancelled, else
        ``ValueError`` — its ``completed_at`` is set and strictly before
        ``completed_before``, its workflow is ``workflow_id`` (when given) and not one of
        ``exclude_workflows``, and it is needed by no unfinished execution: its parent
        (when it has one that is stored) has finished, and none of its children is
        unfinished. Queued, running and paused executions are never deleted. Deleting an
        execution deletes its node results, logs, spans, resume tokens, dead-letter items,
        artifacts and events. An execution being changed at that moment is left for a
        later call (PostgreSQL: ``SKIP LOCKED``), so one call holds no long lock: callers
        call again until fewer than ``limit`` went.

        ``dry_run``: count every execution that expired (no ``limit``) and its rows,
        deleting nothing. ``only``: of these executions alone (those ``find_expired``
        gave, once archived), the rule still applied.
        """
        ...

    async def find_expired(
        self,
        *,
        status: ExecutionStatus,
        completed_before: datetime,
        workflow_id: str | None = None,
        exclude_workflows: Sequence[str] = (),
        limit: int = 500,
    ) -> list[str]:
        """The ids of the executions ``prune_executions`` would delete, in its order (oldest
        first), at most ``limit``; nothing is locked or deleted (archiving reads them
        first, then deletes them with ``only``)."""
        ...


@dataclass(frozen=True, slots=True)
class PartitionChanges:
    """What ``ensure_partitions`` or ``drop_partitions`` did (or, dry, would do):
    partitions ``created`` or ``dropped`` (names), and rows ``moved`` between partitions."""

    created: tuple[str, ...] = ()
    dropped: tuple[str, ...] = ()
    moved: int = 0


@runtime_checkable
class PartitionedTraces(Protocol):
    """A store whose logs and spans are partitioned by time (PostgreSQL,
    ``stores/postgres/partitions.py``): retention keeps the partitions ahead of the rows
    and drops the old ones whole."""

    async def ensure_partitions(self, now: datetime, *, ahead: int = ...) -> PartitionChanges:
        """Create the partitions of ``now``'s month and the next ones that are missing."""
        ...

    async def drop_partitions(self, now: datetime, *, dry_run: bool = False) -> PartitionChanges:
        """Drop the old partitions that stored executions no longer need."""
        ...
