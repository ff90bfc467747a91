"""The statements of retention (``RetentionStore.prune_executions``, whose docstring is
the rule): finding expired executions by ``ix_executions_completed`` (status,
completed_at), and deleting a batch of them; ``ON DELETE CASCADE`` deletes the rest,
but for logs and spans (partitioned, without a foreign key): the statement deletes their
rows in the default partitions, and the rest go with their month's partition
(partitions.py). Only the former count among the rows that went: a batch reads no month
partition."""

from __future__ import annotations

from spane_py.state import ExecutionStatus

_UNFINISHED = ", ".join(repr(s.value) for s in ExecutionStatus if not s.is_terminal)

# $1 status, $2 completed_before, $3 workflow_id (NULL: any), $4 excluded workflows,
# $5 only these ids (NULL: any).
_EXPIRED = f"""
SELECT e.execution_id FROM executions e
WHERE e.status = $1 AND e.completed_at < $2
  AND ($5::uuid[] IS NULL OR e.execution_id = ANY($5::uuid[]))
  AND ($3::text IS NULL OR e.workflow_id = $3)
  AND e.workflow_id <> ALL($4::text[])
  AND NOT EXISTS (SELECT 1 FROM executions p
                  WHERE p.execution_id = e.parent_execution_id AND p.status IN ({_UNFINISHED}))
  AND NOT EXISTS (SELECT 1 FROM executions c
                  WHERE c.parent_execution_id = e.execution_id AND c.status IN ({_UNFINISHED}))
"""

# The rows of the executions in ``doomed``, their own included (read before any delete:
# the statement's snapshot).
# Logs and spans count in their default partitions only: those are the rows deleted with
# their execution (the rest go with their month's partition, counted as partitions).
_ROWS = " + ".join(
    f"(SELECT count(*) FROM {table} t WHERE t.execution_id IN (SELECT execution_id FROM doomed))"
    for table in (
        "executions",
        "node_results",
        "logs_default",
        "spans_default",
        "resume_tokens",
        "dlq_items",
        "artifacts",
        "events",
    )
)

# One batch: at most $6 of them, oldest first, each locked (one a transition holds is
# skipped, left for a later batch) and deleted in this one statement.
PRUNE = f"""
WITH doomed AS MATERIALIZED (
{_EXPIRED}
  ORDER BY e.completed_at, e.execution_id
  LIMIT $6
  FOR UPDATE OF e SKIP LOCKED
), gone AS (
  DELETE FROM executions x USING doomed d WHERE x.execution_id = d.execution_id
  RETURNING 1
), gone_logs AS (
  DELETE FROM logs_default l USING doomed d WHERE l.execution_id = d.execution_id
), gone_spans AS (
  DELETE FROM spans_default s USING doomed d WHERE s.execution_id = d.execution_id
)
SELECT (SELECT count(*) FROM gone) AS executions, {_ROWS} AS rows
"""

# The ids of at most $6 of them, in the order PRUNE takes them; nothing locked.
FIND_EXPIRED = f"""{_EXPIRED}
ORDER BY e.completed_at, e.execution_id
LIMIT $6
"""

# Every execution that expired and its rows, deleting nothing.
COUNT_EXPIRED = f"""
WITH doomed AS MATERIALIZED ({_EXPIRED})
SELECT (SELECT count(*) FROM doomed) AS executions, {_ROWS} AS rows
"""
