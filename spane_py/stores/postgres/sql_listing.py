"""The PostgreSQL store's search of executions: one ``SELECT`` built from the filters
given, newest first, keyset-paginated.

Only the filters given appear in the statement (no ``$1 IS NULL OR ...``), so the planner
sees each for what it is and picks its index: the primary key read backwards for the
cursor and an id prefix (a range of uuids), ``ix_executions_workflow`` and
``ix_executions_status`` (each ``(column, execution_id DESC)``), ``ix_executions_created``,
``ix_executions_parent``; a field match is jsonb containment (``metadata @> $n``), the
rule ``spane_py.execution_search`` defines. The statement texts vary with the filters
present, not their values: asyncpg prepares each once.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from spane_py import _json
from spane_py.execution_search import FieldMatch
from spane_py.state import ExecutionStatus
from spane_py.stores.postgres import params
from spane_py.stores.postgres.sql import EXECUTION_COLUMNS

_COLUMN = {"metadata": "metadata", "input": "initial_data"}

# A running execution with a node waiting (a timer, a person, a child): read through the
# node_results primary key of each candidate.
_WAITING = (
    "status = 'running' AND EXISTS (SELECT 1 FROM node_results n "
    "WHERE n.execution_id = e.execution_id AND n.status = 'waiting')"
)


def list_executions(
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
) -> tuple[str, list[Any]] | None:
    """The statement and its arguments (it fetches ``limit + 1`` rows: one more says a
    next page follows); None when nothing can match (an id prefix no uuid has, parents
    none of which is a uuid)."""
    args: list[Any] = []
    conditions: list[str] = []

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    if workflow_id is not None:
        conditions.append(f"workflow_id = {arg(workflow_id)}")
    if status is not None:
        conditions.append(f"status = {arg(ExecutionStatus(status).value)}")
    if waiting:
        conditions.append(_WAITING)
    if since is not None:
        conditions.append(f"created_at >= {arg(since)}")
    if until is not None:
        conditions.append(f"created_at < {arg(until)}")
    if id_prefix is not None:
        bounds = params.uuid_prefix_range(id_prefix)
        if bounds is None:
            return None
        conditions.append(f"execution_id BETWEEN {arg(bounds[0])}::uuid AND {arg(bounds[1])}::uuid")
    if parent_ids is not None:
        parents = [p for p in parent_ids if params.is_uuid(p)]
        if not parents:
            return None
        conditions.append(f"parent_execution_id = ANY({arg(parents)}::uuid[])")
    if roots_only:
        conditions.append("parent_execution_id IS NULL")
    for match in where:
        pattern = _json.dumps(match.pattern())
        conditions.append(f"{_COLUMN[match.source]} @> {arg(pattern)}::jsonb")
    if cursor is not None:
        conditions.append(f"execution_id < {arg(cursor)}::uuid")
    where_sql = f"WHERE {' AND '.join(conditions)}" if conditions else ""
    # ORDER BY e.execution_id, the column: bare, the name would be the select list's
    # execution_id::text, which no index has (a sort of every row that matches).
    statement = (
        f"SELECT {EXECUTION_COLUMNS} FROM executions e {where_sql} "
        f"ORDER BY e.execution_id DESC LIMIT {arg(limit + 1)}"
    )
    return statement, args


__all__ = ["list_executions"]
