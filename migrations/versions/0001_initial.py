"""Initial schema: workflows, versions, executions, node results, logs, spans, DLQ.

Revision ID: 0001
Revises:
Create Date: 2025-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "workflows",
        sa.Column("workflow_id", sa.Text(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.text("true")),
        sa.Column("latest_version", sa.Integer(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("now()"),
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("now()"),
        ),
        sa.PrimaryKeyConstraint("workflow_id", name=op.f("pk_workflows")),
    )

    op.create_table(
        "workflow_versions",
        sa.Column("workflow_id", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("definition", postgresql.JSONB(), nullable=False),
        sa.Column("content_hash", sa.Text(), nullable=False),
        sa.Column("change_notes", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("now()"),
        ),
        sa.PrimaryKeyConstraint("workflow_id", "version", name=op.f("pk_workflow_versions")),
        sa.ForeignKeyConstraint(
            ["workflow_id"],
            ["workflows.workflow_id"],
            name=op.f("fk_workflow_versions_workflow_id_workflows"),
        ),
    )

    op.create_table(
        "executions",
        sa.Column("execution_id", postgresql.UUID(as_uuid=False), nullable=False),
        sa.Column("workflow_id", sa.Text(), nullable=False),
        sa.Column("workflow_version", sa.Integer(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("initial_data", postgresql.JSONB(), nullable=False),
        sa.Column(
            "metadata", postgresql.JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb")
        ),
        sa.Column("parent_execution_id", postgresql.UUID(as_uuid=False), nullable=True),
        sa.Column("parent_node_id", sa.Text(), nullable=True),
        sa.Column("depth", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("priority", sa.SmallInteger(), nullable=True),
        sa.Column("idempotency_key", sa.Text(), nullable=True),
        sa.Column("revision", sa.BigInteger(), nullable=False, server_default=sa.text("0")),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("execution_id", name=op.f("pk_executions")),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'paused', 'completed', 'failed', 'cancelled')",
            name=op.f("ck_executions_status"),
        ),
        sa.CheckConstraint(
            "priority IS NULL OR priority BETWEEN 1 AND 10", name=op.f("ck_executions_priority")
        ),
        sa.CheckConstraint("depth >= 0", name=op.f("ck_executions_depth")),
    )
    op.create_index(
        op.f("uq_executions_idempotency"),
        "executions",
        ["workflow_id", "idempotency_key"],
        unique=True,
        postgresql_where=sa.text("idempotency_key IS NOT NULL"),
    )
    op.create_index(
        op.f("ix_executions_workflow"), "executions", ["workflow_id", sa.text("execution_id DESC")]
    )
    op.create_index(
        op.f("ix_executions_status"), "executions", ["status", sa.text("execution_id DESC")]
    )
    op.create_index(op.f("ix_executions_created"), "executions", ["created_at"])
    op.create_index(
        op.f("ix_executions_parent"),
        "executions",
        ["parent_execution_id"],
        postgresql_where=sa.text("parent_execution_id IS NOT NULL"),
    )

    op.create_table(
        "node_results",
        sa.Column("execution_id", postgresql.UUID(as_uuid=False), nullable=False),
        sa.Column("node_id", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("output", postgresql.JSONB(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("next_nodes", postgresql.ARRAY(sa.Text()), nullable=True),
        sa.Column("skipped", sa.Boolean(), nullable=False, server_default=sa.text("false")),
        sa.Column("queued_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("execution_id", "node_id", name=op.f("pk_node_results")),
        sa.ForeignKeyConstraint(
            ["execution_id"],
            ["executions.execution_id"],
            name=op.f("fk_node_results_execution_id_executions"),
            ondelete="CASCADE",
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'queued', 'running', 'succeeded', 'failed', 'skipped', "
            "'cancelled')",
            name=op.f("ck_node_results_status"),
        ),
    )
    op.create_index(
        op.f("ix_node_results_pending"),
        "node_results",
        ["queued_at"],
        postgresql_where=sa.text("status IN ('queued', 'running')"),
    )

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
        sa.PrimaryKeyConstraint("log_id", name=op.f("pk_logs")),
        sa.ForeignKeyConstraint(
            ["execution_id"],
            ["executions.execution_id"],
            name=op.f("fk_logs_execution_id_executions"),
            ondelete="CASCADE",
        ),
    )
    op.create_index(op.f("ix_logs_execution"), "logs", ["execution_id", "log_id"])

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
            "attributes", postgresql.JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb")
        ),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("span_id", name=op.f("pk_spans")),
        sa.ForeignKeyConstraint(
            ["execution_id"],
            ["executions.execution_id"],
            name=op.f("fk_spans_execution_id_executions"),
            ondelete="CASCADE",
        ),
    )
    op.create_index(op.f("ix_spans_execution"), "spans", ["execution_id", "started_at"])

    op.create_table(
        "dlq_items",
        sa.Column("dlq_id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("execution_id", postgresql.UUID(as_uuid=False), nullable=False),
        sa.Column("workflow_id", sa.Text(), nullable=False),
        sa.Column("node_id", sa.Text(), nullable=False),
        sa.Column("job", postgresql.JSONB(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("traceback", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column(
            "failed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")
        ),
        sa.Column("retried_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("dlq_id", name=op.f("pk_dlq_items")),
        sa.ForeignKeyConstraint(
            ["execution_id"],
            ["executions.execution_id"],
            name=op.f("fk_dlq_items_execution_id_executions"),
            ondelete="CASCADE",
        ),
    )
    op.create_index(op.f("ix_dlq_items_failed"), "dlq_items", ["failed_at"])
    op.create_index(op.f("ix_dlq_items_execution"), "dlq_items", ["execution_id"])


def downgrade() -> None:
    # Children first: node_results, logs, spans and dlq_items reference executions.
    for table in ("dlq_items", "spans", "logs", "node_results", "executions"):
        op.drop_table(table)
    op.drop_table("workflow_versions")
    op.drop_table("workflows")
