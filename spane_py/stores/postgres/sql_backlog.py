"""The statements of the backlog (``BacklogStore``): the sweeper's pending nodes and the
admission of queued executions under ``max_concurrency`` and concurrency keys."""

from __future__ import annotations

from spane_py.stores.postgres.sql import EXECUTION_COLUMNS

# Nodes of running executions whose job the sweeper sends again (a no-op in Redis while the
# job still exists there), since when they have wanted it, oldest first. Three branches,
# each an index scan (tables.py): queued or running nodes stale since they were queued (or
# started); waiting nodes whose timer is due; waiting nodes whose child execution
# (``wait_child``) ended. A node in both of the last two counts once, since the earlier of
# its times.
PENDING_NODES = """
SELECT p.execution_id::text, e.workflow_id, e.workflow_version, p.node_id, p.generation,
       e.priority
FROM (
    SELECT execution_id, node_id, generation, min(since) AS since
    FROM (
        SELECT n.execution_id, n.node_id, n.generation,
               greatest(n.queued_at, n.started_at) AS since
        FROM node_results n
        WHERE n.status IN ('queued', 'running') AND n.queued_at < $1
          AND coalesce(n.started_at, n.queued_at) < $1
        UNION ALL
        SELECT n.execution_id, n.node_id, n.generation, n.wake_at
        FROM node_results n
        WHERE n.status = 'waiting' AND n.wake_at IS NOT NULL AND n.wake_at < $1
        UNION ALL
        SELECT n.execution_id, n.node_id, n.generation,
               coalesce(c.completed_at, c.created_at)
        FROM node_results n JOIN executions c ON c.execution_id = n.wait_child
        WHERE n.status = 'waiting' AND n.wait_child IS NOT NULL
          AND c.status IN ('completed', 'failed', 'cancelled')
          AND coalesce(c.completed_at, c.created_at) < $1
    ) due
    GROUP BY execution_id, node_id, generation
) p JOIN executions e USING (execution_id)
WHERE e.status = 'running'
ORDER BY p.since, p.execution_id, p.node_id
LIMIT $2
"""

# Admission of queued executions -----------------------------------------------------------
# Serialises admissions of one workflow across processes until the transaction ends. Keyed
# on the schema too: apps sharing a database do not wait for each other.
LOCK_ADMISSION = """
SELECT pg_advisory_xact_lock(hashtext('spane_py.admit'),
                             hashtext(current_schema() || '/' || $1::text))
"""
# Under that lock, in a later statement (so that it sees what the previous holder
# committed): promote the oldest queued executions while fewer than $2 run or are paused.
# The revision moves on, as with any write: a transition decided on a snapshot of the
# queued execution fails its guard and reads again.
ADMIT_QUEUED = f"""
WITH chosen AS (
    SELECT execution_id AS chosen_id FROM executions
    WHERE workflow_id = $1 AND status = 'queued'
    ORDER BY execution_id
    LIMIT greatest($2::bigint - (
        SELECT count(*) FROM executions
        WHERE workflow_id = $1 AND status IN ('running', 'paused')), 0)
    FOR UPDATE
)
UPDATE executions e SET status = 'running', started_at = $3, revision = e.revision + 1
FROM chosen c
WHERE e.execution_id = c.chosen_id AND e.status = 'queued'
RETURNING {EXECUTION_COLUMNS}
"""
# The same with a limit per concurrency key ($4), under the same lock: of each key that has
# queued executions (found by a skip scan of ix_executions_concurrency: one probe per key),
# its oldest queued ones while the key has room; executions without a key (created before
# the workflow had a key limit) all qualify. Of those, the oldest while fewer than $2 run
# or are paused. That is the greedy rule of BacklogStore.admit_queued: the k-th queued
# execution of a key (oldest first) is admitted only if the k-1 before it are, and admitting
# stops only when the workflow is full.
ADMIT_QUEUED_KEYED = f"""
WITH RECURSIVE queued_keys(k) AS (
    (SELECT concurrency_key FROM executions
     WHERE workflow_id = $1 AND status = 'queued' AND concurrency_key IS NOT NULL
     ORDER BY concurrency_key LIMIT 1)
    UNION ALL
    SELECT (SELECT concurrency_key FROM executions
            WHERE workflow_id = $1 AND status = 'queued' AND concurrency_key IS NOT NULL
              AND concurrency_key > q.k
            ORDER BY concurrency_key LIMIT 1)
    FROM queued_keys q WHERE q.k IS NOT NULL
), candidates AS (
    SELECT o.execution_id FROM queued_keys q CROSS JOIN LATERAL (
        SELECT execution_id, row_number() OVER (ORDER BY execution_id) AS place
        FROM (SELECT execution_id FROM executions
              WHERE workflow_id = $1 AND status = 'queued' AND concurrency_key IS NOT NULL
                AND concurrency_key = q.k
              ORDER BY execution_id LIMIT $4::bigint) first_of_key
    ) o
    WHERE q.k IS NOT NULL AND o.place + (
        SELECT count(*) FROM executions
        WHERE workflow_id = $1 AND status IN ('running', 'paused')
          AND concurrency_key IS NOT NULL AND concurrency_key = q.k) <= $4::bigint
    UNION ALL
    SELECT execution_id FROM executions
    WHERE workflow_id = $1 AND status = 'queued' AND concurrency_key IS NULL
), chosen AS (
    -- (by primary key: the candidates are few, the queued executions may be many)
    SELECT e.execution_id AS chosen_id FROM executions e
    WHERE e.execution_id = ANY(ARRAY(SELECT execution_id FROM candidates))
      AND e.status = 'queued'
    ORDER BY e.execution_id
    LIMIT greatest($2::bigint - (
        SELECT count(*) FROM executions
        WHERE workflow_id = $1 AND status IN ('running', 'paused')), 0)
    FOR UPDATE
)
UPDATE executions e SET status = 'running', started_at = $3, revision = e.revision + 1
FROM chosen c
WHERE e.execution_id = c.chosen_id AND e.status = 'queued'
RETURNING {EXECUTION_COLUMNS}
"""
QUEUED_WORKFLOWS = "SELECT DISTINCT workflow_id FROM executions WHERE status = 'queued' ORDER BY 1"
