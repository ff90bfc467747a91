"""Logs and spans partitioned by month; an index of events by time.

Revision ID: 0008
Revises: 0007
Create Date: 2027-01-02

``logs`` and ``spans`` become tables partitioned by range on their time (``logged_at``,
``started_at``): one partition per calendar month (UTC), ``logs_pYYYYMM``, and a default
partition, ``logs_default``, for rows of months that have none. Retention drops a month's
partition whole (``spane_py/stores/postgres/partitions.py``) instead of deleting its rows
one by one. Their primary keys hold the time — (log_id, logged_at), (span_id,
started_at) — and their foreign keys to ``executions`` go: a dropped execution's rows go
with their partition, or at once when they are in the default partition.

The upgrade rewrites both tables: it creates the partitions of every month that has rows,
copies the rows and drops the old tables, under the locks of the migration's one
transaction; it takes time in proportion to their rows. The partitions of the coming
months are created by retention, in every worker's first round.
``log_id`` values are kept and the identity goes on after the largest. ``events`` gets
``ix_events_at`` (events over a time range, of any type).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0008"
down_revision: str | None = "0007"
branch_labels: str | None = None
depends_on: str | None = None

LOG_COLUMNS = "log_id, execution_id, node_id, level, message, fields, logged_at"
SPAN_COLUMNS = (
    "span_id, execution_id, parent_span_id, node_id, name, attempt, status, worker_id, "
    "error, traceback, attributes, started_at, ended_at"
)


def _months_of(table: str, column: str, old: str) -> str:
    """A DO block creating the month partitions of ``table`` for every month with rows in
    ``old`` (UTC). The coming months' are created by retention's first round (a new
    schema has none: its first rows wait in the default partition, then move)."""
    return f"""
DO $$
DECLARE
    month timestamp;
BEGIN
    FOR month IN
        SELECT DISTINCT date_trunc('month', {column} AT TIME ZONE 'UTC') FROM {old}
    LOOP
        -- (no format(): its percent signs would not survive Alembic's offline SQL)
        EXECUTE 'CREATE TABLE ' || quote_ident('{table}_p' || to_char(month, 'YYYYMM'))
            || ' PARTITION OF {table} FOR VALUES FROM ('
            || quote_literal(month AT TIME ZONE 'UTC') || ') TO ('
            || quote_literal((month + interval '1 month') AT TIME ZONE 'UTC') || ')';
    END LOOP;
END
$$
"""


def _set_aside(table: str, foreign_key: str) -> str:
    """The old table renamed ``<table>_0007``, its names freed for the new one."""
    old = f"{table}_0007"
    op.execute(f"ALTER TABLE {table} RENAME TO {old}")
    op.execute(f"ALTER TABLE {old} RENAME CONSTRAINT pk_{table} TO pk_{old}")
    op.execute(f"ALTER TABLE {old} DROP CONSTRAINT {foreign_key}")
    op.execute(f"ALTER INDEX ix_{table}_execution RENAME TO ix_{old}_execution")
    return old


def upgrade() -> None:
    old_logs = _set_aside("logs", "fk_logs_execution_id_executions")
    op.execute(f"ALTER TABLE {old_logs} ALTER COLUMN log_id DROP IDENTITY")
    op.create_table(
        "logs",
        sa.Column("log_id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("execution_id", postgresql.UUID(as_uuid=False), nullable=False),
        sa.Column("node_id", sa.Text(), nullable=True),
        sa.Column("level", sa.Text(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column(
            "fields", postgresql.JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb")
        ),
        sa.Column("logged_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("log_id", "logged_at", name=op.f("pk_logs")),
        postgresql_partition_by="RANGE (logged_at)",
    )
    op.create_index(op.f("ix_logs_execution"), "logs", ["execution_id", "log_id"])
    op.execute("CREATE TABLE logs_default PARTITION OF logs DEFAULT")
    op.execute(_months_of("logs", "logged_at", old_logs))
    op.execute(f"INSERT INTO logs ({LOG_COLUMNS}) SELECT {LOG_COLUMNS} FROM {old_logs}")
    op.execute(
        "SELECT setval(pg_get_serial_sequence('logs', 'log_id'), "
        "coalesce((SELECT max(log_id) FROM logs), 0) + 1, false)"
    )
    op.execute(f"DROP TABLE {old_logs}")

    old_spans = _set_aside("spans", "fk_spans_execution_id_executions")
    op.create_table(
        "spans",
        sa.Column("span_id", sa.Text(), nullable=False),
        sa.Column("execution_id", postgresql.UUID(as_uuid=False), nullable=False),
        sa.Column("parent_span_id", sa.Text(), nullable=True),
        sa.Column("node_id", sa.Text(), nullable=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=True),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("worker_id", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("traceback", sa.Text(), nullable=True),
        sa.Column(
            "attributes",
            postgresql.JSONB(),
            nullable=False,
            server_default=sa.text("'{}'::jsonb"),
        ),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("span_id", "started_at", name=op.f("pk_spans")),
        postgresql_partition_by="RANGE (started_at)",
    )
    op.create_index(op.f("ix_spans_execution"), "spans", ["execution_id", "started_at"])
    op.execute("CREATE TABLE spans_default PARTITION OF spans DEFAULT")
    op.execute(_months_of("spans", "started_at", old_spans))
    op.execute(f"INSERT INTO spans ({SPAN_COLUMNS}) SELECT {SPAN_COLUMNS} FROM {old_spans}")
    op.execute(f"DROP TABLE {old_spans}")

    op.create_index(op.f("ix_events_at"), "events", ["at"])


def downgrade() -> None:
    # 0007's tables are not partitioned and reference their execution: rows of executions
    # that are gone (waiting for their partition to be dropped) are not copied back.
    op.drop_index(op.f("ix_events_at"), table_name="events")
    for table in ("logs", "spans"):
        op.execute(f"ALTER TABLE {table} RENAME TO {table}_0008")
        op.execute(f"ALTER TABLE {table}_0008 RENAME CONSTRAINT pk_{table} TO pk_{table}_0008")
        op.execute(f"ALTER INDEX ix_{table}_execution RENAME TO ix_{table}_0008_execution")
        if table == "logs":
            op.execute("ALTER TABLE logs_0008 ALTER COLUMN log_id DROP IDENTITY")
        op.execute(f"CREATE TABLE {table} (LIKE {table}_0008 INCLUDING DEFAULTS)")
    op.execute("ALTER TABLE logs ADD CONSTRAINT pk_logs PRIMARY KEY (log_id)")
    op.execute("ALTER TABLE logs ALTER COLUMN log_id ADD GENERATED BY DEFAULT AS IDENTITY")
    op.execute("ALTER TABLE spans ADD CONSTRAINT pk_spans PRIMARY KEY (span_id)")
    for table, columns in (("logs", LOG_COLUMNS), ("spans", SPAN_COLUMNS)):
        distinct = "DISTINCT ON (t.span_id) " if table == "spans" else ""
        order = " ORDER BY t.span_id, t.started_at" if table == "spans" else ""
        selected = ", ".join(f"t.{c.strip()}" for c in columns.split(","))
        op.execute(
            f"INSERT INTO {table} ({columns}) SELECT {distinct}{selected} FROM {table}_0008 t "
            f"WHERE EXISTS (SELECT 1 FROM executions e WHERE e.execution_id = t.execution_id)"
            f"{order}"
        )
        op.execute(f"DROP TABLE {table}_0008 CASCADE")
        op.create_foreign_key(
            op.f(f"fk_{table}_execution_id_executions"),
            table,
            "executions",
            ["execution_id"],
            ["execution_id"],
            ondelete="CASCADE",
        )
    op.create_index(op.f("ix_logs_execution"), "logs", ["execution_id", "log_id"])
    op.create_index(op.f("ix_spans_execution"), "spans", ["execution_id", "started_at"])
    op.execute(
        "SELECT setval(pg_get_serial_sequence('logs', 'log_id'), "
        "coalesce((SELECT max(log_id) FROM logs), 0) + 1, false)"
    )
