"""The PostgreSQL store's statements. Values always travel as bound parameters.

Node rows are written as one ``jsonb`` array of objects unpacked by
``jsonb_to_recordset``: one parameter, any number of rows. A node's output travels as JSON
*text* inside that array (``output``) so that SQL NULL (no data) and the JSON value ``null``
stay distinct.
"""

from __future__ import annotations

# A node row's columns, in the order ``NODE_COLUMNS`` and ``NODE_READ_COLUMNS`` list them
# (and so the order of the values of a snapshot's anonymous node ``ROW(...)``: rows.py).
NODE_FIELDS = (
    "node_id",
    "status",
    "generation",
    "attempts",
    "output",
    "error",
    "next_nodes",
    "skipped",
    "queued_at",
    "started_at",
    "completed_at",
    "wake_at",
    "wait",
    "wait_child",
)
# As read: the jsonb columns come back as text (``NodeRecord`` keeps JSON text), and so does
# the uuid one (``NodeRecord`` keeps ids as strings).
_NODE_AS_TEXT = frozenset({"output", "wait", "wait_child"})
NODE_COLUMNS = ", ".join(NODE_FIELDS)
NODE_READ_COLUMNS = ", ".join(f"{c}::text" if c in _NODE_AS_TEXT else c for c in NODE_FIELDS)
_NODE_RECORDSET = """
    jsonb_to_recordset($NODES::jsonb) AS x(
        node_id text, status text, generation int, attempts int, output text, error text,
        next_nodes text[], skipped boolean, queued_at timestamptz, started_at timestamptz,
        completed_at timestamptz, wake_at timestamptz, wait text, wait_child uuid)
"""
_NODE_VALUES = (
    "x.node_id, x.status, x.generation, x.attempts, x.output::jsonb, x.error, x.next_nodes, "
    "x.skipped, x.queued_at, x.started_at, x.completed_at, x.wake_at, x.wait::jsonb, "
    "x.wait_child"
)
_NODE_UPSERT_SET = """
    status = EXCLUDED.status, generation = EXCLUDED.generation,
    attempts = EXCLUDED.attempts, output = EXCLUDED.output, error = EXCLUDED.error,
    next_nodes = EXCLUDED.next_nodes, skipped = EXCLUDED.skipped,
    queued_at = EXCLUDED.queued_at, started_at = EXCLUDED.started_at,
    completed_at = EXCLUDED.completed_at, wake_at = EXCLUDED.wake_at, wait = EXCLUDED.wait,
    wait_child = EXCLUDED.wait_child
"""

EXECUTION_COLUMNS = (
    "execution_id::text, workflow_id, workflow_version, status, initial_data::text, "
    "metadata::text, parent_execution_id::text, parent_node_id, depth, priority, "
    "idempotency_key, created_at, started_at, completed_at, error, concurrency_key, "
    "output::text"
)

# One execution and all its nodes, as one consistent snapshot (one statement).
SNAPSHOT = f"""
SELECT {EXECUTION_COLUMNS}, revision,
       ARRAY(SELECT ROW({NODE_READ_COLUMNS})
             FROM node_results n WHERE n.execution_id = e.execution_id) AS nodes
FROM executions e WHERE execution_id = $1
"""
# Several executions' snapshots at once (batched reads).
SNAPSHOTS = SNAPSHOT.replace("WHERE execution_id = $1", "WHERE execution_id = ANY($1::uuid[])")

# The fallback under contention: lock the execution row first, then read the snapshot in a
# second statement. (One ``SELECT ... FOR UPDATE`` would not do: under READ COMMITTED it
# returns the newest execution row but nodes from the snapshot taken before the lock wait.)
LOCK_EXECUTION = "SELECT 1 FROM executions WHERE execution_id = $1 FOR UPDATE"

# Several guarded writes at once, each to a different execution: one statement, one commit.
# Returns the executions whose guard held; the others were written by someone else since.
# Node rows, spans and dead-letter items are written only with a guard that held: a write
# repeated after a lost answer (or decided on a stale snapshot) adds nothing.
WRITE_MANY = f"""
WITH input AS (
    SELECT * FROM jsonb_to_recordset($1::jsonb) AS i(
        execution_id uuid, revision bigint, set_execution boolean, status text,
        started_at timestamptz, completed_at timestamptz, error text, metadata jsonb,
        output text, nodes jsonb, spans jsonb, dlq jsonb)
), guard AS (
    UPDATE executions e SET
        revision = e.revision + 1,
        status = CASE WHEN i.set_execution THEN i.status ELSE e.status END,
        started_at = CASE WHEN i.set_execution THEN i.started_at ELSE e.started_at END,
        completed_at = CASE WHEN i.set_execution THEN i.completed_at ELSE e.completed_at END,
        error = CASE WHEN i.set_execution THEN i.error ELSE e.error END,
        metadata = CASE WHEN i.set_execution THEN i.metadata ELSE e.metadata END,
        output = CASE WHEN i.set_execution THEN i.output::jsonb ELSE e.output END
    FROM input i
    WHERE e.execution_id = i.execution_id AND e.revision = i.revision
    RETURNING e.execution_id
), upsert AS (
    INSERT INTO node_results (execution_id, {NODE_COLUMNS})
    SELECT g.execution_id, {_NODE_VALUES}
    FROM guard g JOIN input i ON i.execution_id = g.execution_id,
         {_NODE_RECORDSET.replace("$NODES::jsonb", "i.nodes")}
    ON CONFLICT (execution_id, node_id) DO UPDATE SET {_NODE_UPSERT_SET}
), traced AS (
    INSERT INTO spans (span_id, execution_id, node_id, name, attempt, status, worker_id,
                       error, traceback, attributes, started_at, ended_at)
    SELECT s.span_id, g.execution_id, s.node_id, s.name, s.attempt, s.status, s.worker_id,
           s.error, s.traceback, coalesce(s.attributes, '{{}}'::jsonb), s.started_at,
           s.ended_at
    FROM guard g JOIN input i ON i.execution_id = g.execution_id,
         jsonb_to_recordset(coalesce(i.spans, '[]'::jsonb)) AS s(
             span_id text, node_id text, name text, attempt int, status text,
             worker_id text, error text, traceback text, attributes jsonb,
             started_at timestamptz, ended_at timestamptz)
    -- A span id is kept once: the key holds the time too (spans are partitioned by it), and
    -- every write of one span id carries the same started_at, its node's (engine.spans).
    ON CONFLICT (span_id, started_at) DO NOTHING
), dead AS (
    INSERT INTO dlq_items (execution_id, workflow_id, node_id, job, error, traceback,
                           attempts, failed_at, retried_at)
    SELECT d.execution_id, d.workflow_id, d.node_id, d.job, d.error, d.traceback,
           d.attempts, d.failed_at, d.retried_at
    FROM guard g JOIN input i ON i.execution_id = g.execution_id,
         ROWS FROM (jsonb_to_recordset(coalesce(i.dlq, '[]'::jsonb)) AS (
             execution_id uuid, workflow_id text, node_id text, job jsonb, error text,
             traceback text, attempts int, failed_at timestamptz, retried_at timestamptz))
         WITH ORDINALITY AS d(execution_id, workflow_id, node_id, job, error, traceback,
                              attempts, failed_at, retried_at, ord)
    ORDER BY g.execution_id, d.ord  -- ids in the order of the transition's items
)
SELECT execution_id::text FROM guard
"""

# Writes and reads that come in the same tick, in one statement: ``WRITE_MANY``'s guarded
# writes ($1), then the snapshots of the executions in $2, as ``SNAPSHOTS`` has them, each row
# ending with the ids of the executions whose guard held (``written``, the same on every row;
# one row of NULLs and ``written`` when nothing is read). The snapshots are those from before
# the writes (one statement, one snapshot of the database): the store never reads and writes
# one execution in the same batch (its per-execution lock), so none of them is written here.
WRITE_AND_READ = (
    WRITE_MANY.removesuffix("SELECT execution_id::text FROM guard\n")
    + ", written AS (SELECT array_agg(execution_id::text) AS ids FROM guard)\n"
    + "SELECT s.*, w.ids AS written FROM written w LEFT JOIN ("
    + SNAPSHOT.replace("WHERE execution_id = $1", "WHERE execution_id = ANY($2::uuid[])")
    + ") s ON true\n"
)

# A new execution and its first nodes. With an idempotency key already used for the
# workflow, nothing is written and no row comes back.
CREATE_EXECUTION = f"""
WITH ins AS (
    INSERT INTO executions (execution_id, workflow_id, workflow_version, status, initial_data,
        metadata, parent_execution_id, parent_node_id, depth, priority, idempotency_key,
        created_at, started_at, completed_at, error, concurrency_key, output)
    VALUES ($1, $2, $3, $4, $5::jsonb, $6::jsonb, $7, $8, $9, $10, $11, $12, $13, $14, $15,
            $17, $18::jsonb)
    ON CONFLICT (workflow_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING execution_id
), nodes AS (
    INSERT INTO node_results (execution_id, {NODE_COLUMNS})
    SELECT ins.execution_id, {_NODE_VALUES}
    FROM ins, {_NODE_RECORDSET.replace("$NODES", "$16")}
)
SELECT count(*) FROM ins
"""

# Several new executions (no idempotency keys) and their first nodes: one statement.
CREATE_EXECUTIONS = f"""
WITH input AS (
    SELECT * FROM jsonb_to_recordset($1::jsonb) AS i(
        execution_id uuid, workflow_id text, workflow_version int, status text,
        initial_data text, metadata jsonb, parent_execution_id uuid, parent_node_id text,
        depth int, priority smallint, created_at timestamptz, started_at timestamptz,
        completed_at timestamptz, error text, concurrency_key text, output text,
        nodes jsonb)
), ins AS (
    INSERT INTO executions (execution_id, workflow_id, workflow_version, status, initial_data,
        metadata, parent_execution_id, parent_node_id, depth, priority, created_at,
        started_at, completed_at, error, concurrency_key, output)
    SELECT execution_id, workflow_id, workflow_version, status, initial_data::jsonb,
        metadata, parent_execution_id, parent_node_id, depth, priority, created_at,
        started_at, completed_at, error, concurrency_key, output::jsonb
    FROM input
    RETURNING execution_id
), nodes AS (
    INSERT INTO node_results (execution_id, {NODE_COLUMNS})
    SELECT ins.execution_id, {_NODE_VALUES}
    FROM ins JOIN input i ON i.execution_id = ins.execution_id,
         {_NODE_RECORDSET.replace("$NODES::jsonb", "i.nodes")}
)
SELECT count(*) FROM ins
"""

GET_EXECUTION = f"SELECT {EXECUTION_COLUMNS} FROM executions WHERE execution_id = $1"
# The ids that start with a prefix: the uuids between the prefix padded with 0s and with fs
# (a range of the primary key's index, where `execution_id::text LIKE` would read them all).
# (ORDER BY e.execution_id: the uuid column; bare, the name is the select list's text.)
FIND_EXECUTION_IDS = """
SELECT execution_id::text FROM executions e
WHERE execution_id BETWEEN $1::uuid AND $2::uuid ORDER BY e.execution_id LIMIT $3
"""
# An idempotency key held past its time is released, so that a new execution can take it.
RELEASE_KEY = """
UPDATE executions SET idempotency_key = NULL, revision = revision + 1
WHERE workflow_id = $1 AND idempotency_key = $2 AND created_at < $3
"""
GET_EXECUTION_BY_KEY = (
    f"SELECT {EXECUTION_COLUMNS} FROM executions WHERE workflow_id = $1 AND idempotency_key = $2"
)
GET_NODES = f"SELECT {NODE_READ_COLUMNS} FROM node_results WHERE execution_id = $1"
MERGE_METADATA = """
UPDATE executions SET metadata = metadata || $2::jsonb, revision = revision + 1
WHERE execution_id = $1
"""
# The listing of executions with its filters: sql_listing.py.
COUNT_EXECUTIONS = """
SELECT count(*) FROM executions
WHERE ($1::text IS NULL OR workflow_id = $1) AND ($2::text IS NULL OR status = $2)
"""
CHILD_EXECUTIONS = (
    f"SELECT {EXECUTION_COLUMNS} FROM executions WHERE parent_execution_id = $1 "
    "ORDER BY execution_id"
)
PARENT_EXECUTION = f"""
SELECT {EXECUTION_COLUMNS} FROM executions
WHERE execution_id = (SELECT parent_execution_id FROM executions WHERE execution_id = $1)
"""

# Workflows ------------------------------------------------------------------------------
_VERSION_COLUMNS = (
    "v.workflow_id, v.version, v.definition::text, v.content_hash, v.created_at, "
    "v.change_notes, w.active"
)
LOCK_WORKFLOW = """
SELECT w.latest_version, w.active, v.content_hash
FROM workflows w JOIN workflow_versions v
  ON v.workflow_id = w.workflow_id AND v.version = w.latest_version
WHERE w.workflow_id = $1 FOR UPDATE OF w
"""
INSERT_WORKFLOW = """
INSERT INTO workflows (workflow_id, active, latest_version) VALUES ($1, true, 0)
ON CONFLICT (workflow_id) DO NOTHING
"""
LOCK_NEW_WORKFLOW = "SELECT latest_version FROM workflows WHERE workflow_id = $1 FOR UPDATE"
INSERT_VERSION = """
INSERT INTO workflow_versions (workflow_id, version, definition, content_hash, change_notes,
                               created_at)
VALUES ($1, $2, $3::jsonb, $4, $5, $6)
"""
SET_LATEST = """
UPDATE workflows SET latest_version = $2, active = true, updated_at = now()
WHERE workflow_id = $1
"""
ACTIVATE = "UPDATE workflows SET active = true, updated_at = now() WHERE workflow_id = $1"
DEACTIVATE = """
UPDATE workflows SET active = false, updated_at = now() WHERE workflow_id = $1 AND active
"""
GET_LATEST_VERSION = f"""
SELECT {_VERSION_COLUMNS} FROM workflows w JOIN workflow_versions v
  ON v.workflow_id = w.workflow_id AND v.version = w.latest_version
WHERE w.workflow_id = $1 AND w.active
"""
GET_VERSION = f"""
SELECT {_VERSION_COLUMNS} FROM workflow_versions v JOIN workflows w USING (workflow_id)
WHERE v.workflow_id = $1 AND v.version = $2
"""
GET_LATEST_NUMBER = "SELECT latest_version FROM workflows WHERE workflow_id = $1 AND active"
LIST_WORKFLOWS = f"""
SELECT {_VERSION_COLUMNS} FROM workflows w JOIN workflow_versions v
  ON v.workflow_id = w.workflow_id AND v.version = w.latest_version
WHERE (NOT $1 OR w.active)
ORDER BY w.workflow_id LIMIT $2 OFFSET $3
"""
LIST_VERSIONS = f"""
SELECT {_VERSION_COLUMNS} FROM workflow_versions v JOIN workflows w USING (workflow_id)
WHERE v.workflow_id = $1 ORDER BY v.version
"""
COUNT_WORKFLOWS = "SELECT count(*) FROM workflows WHERE (NOT $1 OR active)"

# Logs -------------------------------------------------------------------------------------
ADD_LOGS = """
INSERT INTO logs (execution_id, node_id, level, message, fields, logged_at)
SELECT x.execution_id, x.node_id, x.level, x.message, x.fields, x.logged_at
FROM ROWS FROM (jsonb_to_recordset($1::jsonb) AS (execution_id uuid, node_id text,
     level text, message text, fields jsonb, logged_at timestamptz))
     WITH ORDINALITY AS x(execution_id, node_id, level, message, fields, logged_at, ord)
WHERE EXISTS (SELECT 1 FROM executions e WHERE e.execution_id = x.execution_id)
ORDER BY x.ord
"""
GET_SPANS = """
SELECT span_id, execution_id::text, node_id, name, attempt, status, started_at, ended_at,
       worker_id, error, traceback, attributes::text
FROM spans WHERE execution_id = $1
  -- an execution that was deleted leaves its rows until their partition is dropped
  AND EXISTS (SELECT 1 FROM executions e WHERE e.execution_id = $1)
ORDER BY started_at, span_id
"""
GET_LOGS = """
SELECT execution_id::text, node_id, level, message, fields::text, logged_at FROM logs
WHERE execution_id = $1 AND ($2::text IS NULL OR node_id = $2)
  AND EXISTS (SELECT 1 FROM executions e WHERE e.execution_id = $1)
ORDER BY log_id
"""

# Dead-letter queue ------------------------------------------------------------------------
_DLQ_COLUMNS = (
    "dlq_id, execution_id::text, workflow_id, node_id, job::text, error, traceback, "
    "attempts, failed_at, retried_at"
)
LIST_DLQ = f"""
SELECT {_DLQ_COLUMNS} FROM dlq_items WHERE ($1 OR retried_at IS NULL)
ORDER BY dlq_id DESC LIMIT $2 OFFSET $3
"""
GET_DLQ = f"SELECT {_DLQ_COLUMNS} FROM dlq_items WHERE dlq_id = $1"
# $3: this is a retry after a lost answer, and a row already at $2 is our own earlier write.
MARK_DLQ_RETRIED = """
UPDATE dlq_items SET retried_at = $2
WHERE dlq_id = $1 AND (retried_at IS NULL OR ($3 AND retried_at = $2))
"""
PURGE_DLQ = "DELETE FROM dlq_items WHERE ($1::timestamptz IS NULL OR failed_at < $1)"
COUNT_DLQ = "SELECT count(*) FROM dlq_items WHERE ($1 OR retried_at IS NULL)"

# Resume tokens ----------------------------------------------------------------------------
_TOKEN_COLUMNS = (
    "token, execution_id::text, node_id, generation, created_at, expires_at, used_at, revoked_at"
)
INSERT_TOKEN = """
INSERT INTO resume_tokens (token, execution_id, node_id, generation, created_at, expires_at,
                           used_at, revoked_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
"""
GET_TOKEN = f"SELECT {_TOKEN_COLUMNS} FROM resume_tokens WHERE token = $1"
LIST_TOKENS = f"""
SELECT {_TOKEN_COLUMNS} FROM resume_tokens
WHERE ($1::uuid IS NULL OR execution_id = $1)
  AND (NOT $2 OR (used_at IS NULL AND revoked_at IS NULL
                  AND (expires_at IS NULL OR expires_at > $3)))
ORDER BY created_at, token
"""
# Only an unused, unrevoked token changes ($3: as in MARK_DLQ_RETRIED).
USE_TOKEN = """
UPDATE resume_tokens SET used_at = $2
WHERE token = $1 AND revoked_at IS NULL AND (used_at IS NULL OR ($3 AND used_at = $2))
"""
REVOKE_TOKEN = """
UPDATE resume_tokens SET revoked_at = $2
WHERE token = $1 AND used_at IS NULL AND (revoked_at IS NULL OR ($3 AND revoked_at = $2))
"""

# Triggers ---------------------------------------------------------------------------------
# Trigger syncs of one schema run one at a time: two workflows registered at once cannot
# both take the same webhook path.
LOCK_TRIGGERS = "SELECT pg_advisory_xact_lock(hashtext('spane_py.triggers'), hashtext($1))"
WORKFLOW_EXISTS = "SELECT EXISTS (SELECT 1 FROM workflows WHERE workflow_id = $1)"
_SCHEDULE_COLUMNS = (
    "schedule_id, workflow_id, cron, timezone, created_at, missed, paused, last_tick"
)
_WEBHOOK_COLUMNS = "h.path, h.method, h.workflow_id, h.secret, h.created_at"
WEBHOOK_CONFLICTS = f"""
SELECT {_WEBHOOK_COLUMNS}
FROM webhooks h JOIN workflows w ON w.workflow_id = h.workflow_id
JOIN jsonb_to_recordset($2::jsonb) AS x(path text, method text)
  ON x.path = h.path AND x.method = h.method
WHERE h.workflow_id <> $1 AND w.active
ORDER BY h.path, h.method
"""
# The workflow's schedules become exactly the input: others deleted, new ones inserted, the
# ones kept updated without touching created_at, paused and last_tick.
SYNC_SCHEDULES = """
WITH input AS (
    SELECT * FROM jsonb_to_recordset($2::jsonb) AS x(
        schedule_id text, cron text, timezone text, missed text, created_at timestamptz)
), gone AS (
    DELETE FROM schedules s
    WHERE s.workflow_id = $1 AND s.schedule_id NOT IN (SELECT schedule_id FROM input)
)
INSERT INTO schedules (schedule_id, workflow_id, cron, timezone, missed, created_at)
SELECT schedule_id, $1, cron, timezone, missed, created_at FROM input
ON CONFLICT (schedule_id) DO UPDATE SET
    cron = EXCLUDED.cron, timezone = EXCLUDED.timezone, missed = EXCLUDED.missed
WHERE schedules.workflow_id = EXCLUDED.workflow_id
"""
# Run after WEBHOOK_CONFLICTS found none: a binding taken over is an inactive workflow's.
SYNC_WEBHOOKS = """
WITH input AS (
    SELECT * FROM jsonb_to_recordset($2::jsonb) AS x(path text, method text, secret text)
), gone AS (
    DELETE FROM webhooks h
    WHERE h.workflow_id = $1
      AND NOT EXISTS (SELECT 1 FROM input i WHERE i.path = h.path AND i.method = h.method)
)
INSERT INTO webhooks (path, method, workflow_id, secret)
SELECT path, method, $1, secret FROM input
ON CONFLICT (path, method) DO UPDATE SET
    secret = EXCLUDED.secret,
    created_at = CASE WHEN webhooks.workflow_id = EXCLUDED.workflow_id
                      THEN webhooks.created_at ELSE now() END,
    workflow_id = EXCLUDED.workflow_id
"""
LIST_SCHEDULES = f"""
SELECT {_SCHEDULE_COLUMNS} FROM schedules
WHERE ($1::text IS NULL OR workflow_id = $1) ORDER BY schedule_id
"""
GET_SCHEDULE = f"SELECT {_SCHEDULE_COLUMNS} FROM schedules WHERE schedule_id = $1"
# $4 (as in MARK_DLQ_RETRIED): a retry after a lost answer; our own earlier write counts.
SET_SCHEDULE_PAUSED = """
UPDATE schedules SET paused = $2, last_tick = GREATEST(last_tick, $3::timestamptz)
WHERE schedule_id = $1 AND (paused <> $2 OR $4)
"""
ADVANCE_SCHEDULE = """
UPDATE schedules SET last_tick = $3
WHERE schedule_id = $1
  AND (last_tick IS NOT DISTINCT FROM $2::timestamptz OR ($4 AND last_tick = $3))
"""
DELETE_SCHEDULE = "DELETE FROM schedules WHERE schedule_id = $1"
LIST_WEBHOOKS = f"""
SELECT {_WEBHOOK_COLUMNS} FROM webhooks h
WHERE ($1::text IS NULL OR h.workflow_id = $1) ORDER BY h.path, h.method
"""
GET_WEBHOOK = f"SELECT {_WEBHOOK_COLUMNS} FROM webhooks h WHERE h.path = $1 AND h.method = $2"
