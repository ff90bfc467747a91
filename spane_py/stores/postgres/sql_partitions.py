"""The statements of the month partitions of logs and spans (partitions.py). Table and
partition names are formatted in by the caller from ``PARTITIONED`` and
``partitions.partition_name``, never from input."""

from __future__ import annotations

from datetime import datetime

from spane_py.state import ExecutionStatus

# The partitioned tables and their time columns (tables.py; here too, as a worker never
# imports SQLAlchemy).
PARTITIONED = {"logs": "logged_at", "spans": "started_at"}

# Partition upkeep in one process at a time (per schema: the lock is per database, and the
# key holds the schema's name).
LOCK = "SELECT pg_advisory_xact_lock(hashtext('spane_py.partitions'), hashtext(current_schema()))"

# Creating, attaching, detaching or dropping a partition locks its table against every
# read and write; queued behind a long query, it would hold up all the others meanwhile:
# it gives up after this long instead (the next round tries again).
LOCK_TIMEOUT = "SET LOCAL lock_timeout = '2s'"

# The names of a table's partitions.
LIST = """
SELECT c.relname AS name
FROM pg_inherits i
JOIN pg_class c ON c.oid = i.inhrelid
JOIN pg_class p ON p.oid = i.inhparent
WHERE p.relname = $1 AND p.relnamespace = to_regnamespace(current_schema())
ORDER BY c.relname
"""

_UNFINISHED = ", ".join(repr(s.value) for s in ExecutionStatus if not s.is_terminal)

# The stored executions that may have rows in a month [$1, $2), with the margin $3: created
# before its end and not finished before its start (at most $4 of them). The rule of
# ``PostgresPartitions.drop_partitions``. By ``ix_executions_created``, newest first: a
# month that many executions need (checked each round until they are gone) finds $4 of
# them among its own at once, without reading the older executions kept for long.
PINS = f"""
SELECT execution_id FROM executions
WHERE created_at < $2::timestamptz + $3::interval
  AND (completed_at IS NULL OR status IN ({_UNFINISHED})
       OR completed_at >= $1::timestamptz - $3::interval)
ORDER BY created_at DESC
LIMIT $4
"""


def _bounds(start: datetime, end: datetime) -> str:
    # DDL takes no parameters: the bounds are written out (times this module computed).
    return f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"


def create(table: str, partition: str, start: datetime, end: datetime) -> str:
    """A month's partition of ``table``; the default partition must hold no row of that
    month (``create_detached``, ``take_from_default`` and ``attach`` when it does)."""
    return f"CREATE TABLE {partition} PARTITION OF {table} {_bounds(start, end)}"


def create_detached(table: str, partition: str) -> str:
    return f"CREATE TABLE {partition} (LIKE {table} INCLUDING DEFAULTS)"


def default_has_rows(table: str, column: str) -> str:
    """Whether ``table``'s default partition holds rows of [$1, $2)."""
    return f"SELECT EXISTS (SELECT 1 FROM {table}_default WHERE {column} >= $1 AND {column} < $2)"


def take_from_default(table: str, column: str, partition: str) -> str:
    """Move the rows of [$1, $2) from ``table``'s default partition into ``partition``
    (not attached yet)."""
    return f"""
WITH gone AS (
    DELETE FROM {table}_default WHERE {column} >= $1 AND {column} < $2 RETURNING *
)
INSERT INTO {partition} SELECT * FROM gone
"""


def attach(table: str, partition: str, start: datetime, end: datetime) -> str:
    return f"ALTER TABLE {table} ATTACH PARTITION {partition} {_bounds(start, end)}"


def detach(table: str, partition: str) -> str:
    return f"ALTER TABLE {table} DETACH PARTITION {partition}"


def count_kept(partition: str) -> str:
    """Rows of the executions $1 in ``partition``."""
    return f"SELECT count(*) FROM {partition} WHERE execution_id = ANY($1::uuid[])"


def put_back(table: str, partition: str) -> str:
    """Insert the rows of the executions $1 in ``partition`` (detached) through ``table``:
    they land in its default partition, their month having no partition any more."""
    return f"INSERT INTO {table} SELECT * FROM {partition} WHERE execution_id = ANY($1::uuid[])"


def drop(partition: str) -> str:
    return f"DROP TABLE {partition}"
