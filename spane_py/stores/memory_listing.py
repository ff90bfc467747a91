"""The in-memory store's search of executions (``list_executions``): the filters of the
``ExecutionStateStore`` protocol as a predicate over its records, newest first, and the
keyset cursor (the last execution id of a page: ids are time-ordered)."""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from spane_py import _json
from spane_py.execution_search import FieldMatch
from spane_py.records import ExecutionPage, ExecutionRecord, NodeRecord
from spane_py.state import ExecutionStatus, NodeStatus
from spane_py.stores.memory_state import detach


def select(
    records: Iterable[ExecutionRecord],
    nodes: Mapping[str, Mapping[str, NodeRecord]],
    *,
    workflow_id: str | None,
    status: ExecutionStatus | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
    cursor: str | None,
    id_prefix: str | None,
    waiting: bool,
    where: Sequence[FieldMatch],
    parent_ids: Sequence[str] | None,
    roots_only: bool,
) -> ExecutionPage:
    prefix = id_prefix.lower() if id_prefix is not None else None
    parents = set(parent_ids) if parent_ids is not None else None

    def keep(r: ExecutionRecord) -> bool:
        if (
            (workflow_id is not None and r.workflow_id != workflow_id)
            or (status is not None and r.status != status)
            or (since is not None and r.created_at < since)
            or (until is not None and r.created_at >= until)
            or (cursor is not None and r.execution_id >= cursor)
            or (prefix is not None and not r.execution_id.lower().startswith(prefix))
            or (parents is not None and r.parent_execution_id not in parents)
            or (roots_only and r.parent_execution_id is not None)
        ):
            return False
        if waiting and not (
            r.status is ExecutionStatus.RUNNING
            and any(n.status is NodeStatus.WAITING for n in nodes.get(r.execution_id, {}).values())
        ):
            return False
        if where:
            data = _json.loads(r.initial_data) if any(m.source == "input" for m in where) else None
            return all(m.matches(r.metadata, data) for m in where)
        return True

    matches = heapq.nlargest(limit + 1, filter(keep, records), key=lambda r: r.execution_id)
    page = tuple(detach(r) for r in matches[:limit])
    more = len(matches) > limit
    return ExecutionPage(page, page[-1].execution_id if more and page else None)


__all__ = ["select"]
