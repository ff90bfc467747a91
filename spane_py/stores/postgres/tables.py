"""spane_py's PostgreSQL schema, as SQLAlchemy Core tables. The schema is this module.

Alembic migrations (top-level ``migrations/``) are checked against it by a test. Tables are
unqualified: a store works in one PostgreSQL schema (``spane`` by default) chosen through
``search_path``, so several apps can share a database. Every time is ``timestamptz``.

JSON columns are ``jsonb``: node outputs keep 0, false and "" (stored as JSON values, never
coerced), but — JSON objects being unordered — not the order of keys.
"""

from __future__ import annotations

import re

from sqlalchemy import (
    DDL,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    Table,
    Text,
    event,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

from spane_py.state import ExecutionStatus, NodeStatus
from spane_py.stores.postgres.revisions import REVISIONS
from spane_py.stores.postgres.sql_partitions import PARTITIONED

# The revision these tables are at (a new Alembic revision adds its id to revisions.py).
SCHEMA_REVISION = REVISIONS[-1]

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def _ts(name: str, *, nullable: bool = True, default_now: bool = False) -> Column[object]:
    return Column(
        name,
        DateTime(timezone=True),
        nullable=nullable,
        server_default=text("now()") if default_now else None,
    )


# The CHECK constraints list the enums' values in their order: a new status fails the
# schema test (tests/migrations) until a migration adds it.
EXECUTION_STATUSES = tuple(s.value for s in ExecutionStatus)
NODE_STATUSES = tuple(s.value for s in NodeStatus)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


workflows = Table(
    "workflows",
    metadata,
    Column("workflow_id", Text, primary_key=True),
    Column("active", Boolean, nullable=False, server_default=text("true")),
    Column("latest_version", Integer, nullable=False),
    _ts("created_at", nullable=False, default_now=True),
    _ts("updated_at", nullable=False, default_now=True),
)

workflow_versions = Table(
    "workflow_versions",
    metadata,
    Column("workflow_id", Text, ForeignKey("workflows.workflow_id"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("definition", JSONB, nullable=False),
    Column("content_hash", Text, nullable=False),
    Column("change_notes", Text),
    _ts("created_at", nullable=False, default_now=True),
    PrimaryKeyConstraint("workflow_id", "version"),
)

executions = Table(
    "executions",
    metadata,
    Column("execution_id", UUID(as_uuid=False), primary_key=True),
    Column("workflow_id", Text, nullable=False),
    Column("workflow_version", Integer, nullable=False),
    Column("status", Text, nullable=False),
    Column("initial_data", JSONB, nullable=False),
    Column("metadata", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("parent_execution_id", UUID(as_uuid=False)),
    Column("parent_node_id", Text),
    Column("depth", Integer, nullable=False, server_default=text("0")),
    Column("priority", SmallInteger),
    Column("idempotency_key", Text),
    # Incremented by every transition: the guard of optimistic concurrency control.
    Column("revision", BigInteger, nullable=False, server_default=text("0")),
    Column("error", Text),
    _ts("created_at", nullable=False),
    _ts("started_at"),
    _ts("completed_at"),
    # Its workflow's concurrency key value (canonical JSON text; NULL: no key limit), 0005.
    Column("concurrency_key", Text),
    # A completed execution's output: the data of its final nodes (NULL otherwise), 0006.
    Column("output", JSONB),
    CheckConstraint(_in("status", EXECUTION_STATUSES), name="status"),
    CheckConstraint("priority IS NULL OR priority BETWEEN 1 AND 10", name="priority"),
    CheckConstraint("depth >= 0", name="depth"),
)
Index(
    "uq_executions_idempotency",
    executions.c.workflow_id,
    executions.c.idempotency_key,
    unique=True,
    postgresql_where=executions.c.idempotency_key.isnot(None),
)
Index("ix_executions_workflow", executions.c.workflow_id, executions.c.execution_id.desc())
Index("ix_executions_status", executions.c.status, executions.c.execution_id.desc())
Index("ix_executions_created", executions.c.created_at)
# Retention (sql_retention.py): a status's finished executions, oldest completed first,
# 0007. Unfinished executions have no completed_at and stay out of it.
Index(
    "ix_executions_completed",
    executions.c.status,
    executions.c.completed_at,
    postgresql_where=executions.c.completed_at.isnot(None),
)
Index(
    "ix_executions_parent",
    executions.c.parent_execution_id,
    postgresql_where=executions.c.parent_execution_id.isnot(None),
)
# Admission under a limit per concurrency key (sql.ADMIT_QUEUED_KEYED): the distinct keys
# of a workflow's queued executions, the oldest queued ones of a key (or without one), and
# how many of a key run or are paused, each a range of this index. It holds queued
# executions (only limited workflows have any) and the running or paused ones that have a
# key: finished executions and those of workflows without a key limit stay out of it.
Index(
    "ix_executions_concurrency",
    executions.c.workflow_id,
    executions.c.status,
    executions.c.concurrency_key,
    executions.c.execution_id,
    postgresql_where=text(
        "status = 'queued' OR (status IN ('running', 'paused') AND concurrency_key IS NOT NULL)"
    ),
)

node_results = Table(
    "node_results",
    metadata,
    Column(
        "execution_id",
        UUID(as_uuid=False),
        ForeignKey("executions.execution_id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("node_id", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("generation", Integer, nullable=False, server_default=text("0")),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("output", JSONB),  # NULL: no data; JSON null is the jsonb value 'null'
    Column("error", Text),
    Column("next_nodes", ARRAY(Text)),  # NULL: all outputs; '{}': none
    Column("skipped", Boolean, nullable=False, server_default=text("false")),
    _ts("queued_at"),
    _ts("started_at"),
    _ts("completed_at"),
    _ts("wake_at"),  # a waiting node: when its job is due again (NULL: only an event wakes it)
    Column("wait", JSONB),  # a waiting node: what it waits for (kept once it no longer waits)
    # A waiting node: the execution whose end wakes it (a sub-workflow's child), 0004.
    Column("wait_child", UUID(as_uuid=False)),
    PrimaryKeyConstraint("execution_id", "node_id"),
    CheckConstraint(_in("status", NODE_STATUSES), name="status"),
)
# The sweeper's query, one index per kind of node it looks for: nodes waiting for (or
# holding) a job; waiting nodes whose timer is due; waiting nodes whose child execution may
# have ended (few: the predicate keeps timers and events out).
Index(
    "ix_node_results_pending",
    node_results.c.queued_at,
    postgresql_where=node_results.c.status.in_(("queued", "running")),
)
Index(
    "ix_node_results_wake",
    node_results.c.wake_at,
    postgresql_where=text("status = 'waiting' AND wake_at IS NOT NULL"),
)
Index(
    "ix_node_results_wait_child",
    node_results.c.wait_child,
    postgresql_where=text("status = 'waiting' AND wait_child IS NOT NULL"),
)

# Logs and spans are partitioned by month on their time (0008): a partition of a month is
# ``logs_pYYYYMM``, created ahead of time (partitions.py), and ``logs_default`` holds the
# rows of months that have none. Retention drops a month's partition whole once no stored
# execution can have rows there. So no foreign key ties them to executions (deleting an
# execution deletes its rows in the default partition; the rest go with their partition,
# and reads only return rows of stored executions). Each primary key holds the time: a
# partitioned table's unique keys must hold its partition key.
logs = Table(
    "logs",
    metadata,
    Column("log_id", BigInteger, Identity(), nullable=False),
    Column("execution_id", UUID(as_uuid=False), nullable=False),
    Column("node_id", Text),
    Column("level", Text, nullable=False),
    Column("message", Text, nullable=False),
    Column("fields", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    _ts("logged_at", nullable=False),
    PrimaryKeyConstraint("log_id", "logged_at"),
    postgresql_partition_by="RANGE (logged_at)",
)
Index("ix_logs_execution", logs.c.execution_id, logs.c.log_id)

spans = Table(
    "spans",
    metadata,
    Column("span_id", Text, nullable=False),
    Column("execution_id", UUID(as_uuid=False), nullable=False),
    Column("parent_span_id", Text),
    Column("node_id", Text),
    Column("name", Text, nullable=False),
    Column("attempt", Integer),
    Column("status", Text, nullable=False),
    Column("worker_id", Text),
    Column("error", Text),
    Column("traceback", Text),
    Column("attributes", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    _ts("started_at", nullable=False),
    _ts("ended_at"),
    PrimaryKeyConstraint("span_id", "started_at"),
    postgresql_partition_by="RANGE (started_at)",
)
Index("ix_spans_execution", spans.c.execution_id, spans.c.started_at)

# The partitioned tables (``PARTITIONED``: name -> time column); their catch-all
# partitions (0008) are created with them and never dropped.
_PARTITION_NAME = re.compile(rf"^({'|'.join(PARTITIONED)})_(default|p\d{{6}})$")


def is_partition(table_name: str) -> bool:
    """Whether ``table_name`` names a partition of a partitioned table (not one of the
    tables above: autogenerate and the schema checks leave partitions out)."""
    return _PARTITION_NAME.match(table_name) is not None


for _name in PARTITIONED:
    event.listen(
        metadata.tables[_name],
        "after_create",
        DDL(f"CREATE TABLE {_name}_default PARTITION OF {_name} DEFAULT"),  # type: ignore[no-untyped-call]
    )

dlq_items = Table(
    "dlq_items",
    metadata,
    Column("dlq_id", BigInteger, Identity(), primary_key=True),
    Column(
        "execution_id",
        UUID(as_uuid=False),
        ForeignKey("executions.execution_id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("workflow_id", Text, nullable=False),
    Column("node_id", Text, nullable=False),
    Column("job", JSONB, nullable=False),
    Column("error", Text, nullable=False),
    Column("traceback", Text),
    Column("attempts", Integer, nullable=False),
    _ts("failed_at", nullable=False, default_now=True),
    _ts("retried_at"),
)
Index("ix_dlq_items_failed", dlq_items.c.failed_at)
Index("ix_dlq_items_execution", dlq_items.c.execution_id)

# Named blobs a node put (``ctx.put_artifact``), one per execution and name, 0006.
artifacts = Table(
    "artifacts",
    metadata,
    Column(
        "execution_id",
        UUID(as_uuid=False),
        ForeignKey("executions.execution_id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("name", Text, nullable=False),
    Column("node_id", Text),
    Column("content_type", Text, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("data", LargeBinary, nullable=False),  # bytea
    _ts("created_at", nullable=False),
    PrimaryKeyConstraint("execution_id", "name"),
)

# The event history: the engine's events as streamed (observability/events.py), written
# in batches (observability/history.py), 0006. Read by execution, or by type, over time.
events = Table(
    "events",
    metadata,
    Column("event_id", BigInteger, Identity(), primary_key=True),
    Column(
        "execution_id",
        UUID(as_uuid=False),
        ForeignKey("executions.execution_id", ondelete="CASCADE"),
    ),
    Column("workflow_id", Text),
    Column("node_id", Text),
    Column("type", Text, nullable=False),
    _ts("at", nullable=False),
    Column("fields", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
)
Index("ix_events_execution", events.c.execution_id, events.c.at)
Index("ix_events_type", events.c.type, events.c.at)
Index("ix_events_at", events.c.at)  # events over a time range alone, 0008

# A token that completes one waiting node once (``engine.resume``); it goes with its execution.
resume_tokens = Table(
    "resume_tokens",
    metadata,
    Column("token", Text, primary_key=True),
    Column(
        "execution_id",
        UUID(as_uuid=False),
        ForeignKey("executions.execution_id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("node_id", Text, nullable=False),
    Column("generation", Integer, nullable=False),
    _ts("created_at", nullable=False),
    _ts("expires_at"),
    _ts("used_at"),
    _ts("revoked_at"),
)
Index("ix_resume_tokens_execution", resume_tokens.c.execution_id)

# Schedule triggers of registered workflows (``register_workflow`` writes them); a tick's
# execution is made unique by its idempotency key, not here. See stores/base.py.
SCHEDULE_MISSED_POLICIES = ("skip", "run_once")
schedules = Table(
    "schedules",
    metadata,
    Column("schedule_id", Text, primary_key=True),
    Column(
        "workflow_id",
        Text,
        ForeignKey("workflows.workflow_id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("cron", Text, nullable=False),
    Column("timezone", Text, nullable=False),
    Column("missed", Text, nullable=False, server_default=text("'skip'")),
    Column("paused", Boolean, nullable=False, server_default=text("false")),
    _ts("last_tick"),  # the latest tick dealt with (fired or passed by)
    _ts("created_at", nullable=False, default_now=True),
    CheckConstraint(_in("missed", SCHEDULE_MISSED_POLICIES), name="missed"),
)
Index("ix_schedules_workflow", schedules.c.workflow_id)

# Webhook triggers: one workflow per path and method.
webhooks = Table(
    "webhooks",
    metadata,
    Column("path", Text, nullable=False),
    Column("method", Text, nullable=False),
    Column(
        "workflow_id",
        Text,
        ForeignKey("workflows.workflow_id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("secret", Text),
    _ts("created_at", nullable=False, default_now=True),
    PrimaryKeyConstraint("path", "method"),
)
Index("ix_webhooks_workflow", webhooks.c.workflow_id)
