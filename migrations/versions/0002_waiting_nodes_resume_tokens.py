"""Waiting nodes (status 'waiting', wake_at, wait) and resume tokens.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23

The new columns are nullable without a default: adding them rewrites no row. The status
CHECK is replaced by a looser one, which PostgreSQL validates with one scan of
node_results; the new partial indexes start empty (no node could be 'waiting' before).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

_STATUSES_0001 = (
    "status IN ('pending', 'queued', 'running', 'succeeded', 'failed', 'skipped', 'cancelled')"
)
_STATUSES_0002 = (
    "status IN ('pending', 'queued', 'running', 'waiting', 'succeeded', 'failed', 'skipped', "
    "'cancelled')"
)


def upgrade() -> None:
    op.add_column("node_results", sa.Column("wake_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("node_results", sa.Column("wait", postgresql.JSONB(), nullable=True))
    op.drop_constraint(op.f("ck_node_results_status"), "node_results", type_="check")
    op.create_check_constraint(op.f("ck_node_results_status"), "node_results", _STATUSES_0002)
    # The sweeper's due timers, and the waits for a child execution (see tables.py).
    op.create_index(
        op.f("ix_node_results_wake"),
        "node_results",
        ["wake_at"],
        postgresql_where=sa.text("status = 'waiting' AND wake_at IS NOT NULL"),
    )
    op.create_index(
        op.f("ix_node_results_child"),
        "node_results",
        ["execution_id"],
        postgresql_where=sa.text("status = 'waiting' AND (wait ->> 'child') IS NOT NULL"),
    )

    op.create_table(
        "resume_tokens",
        sa.Column("token", sa.Text(), nullable=False),
        sa.Column("execution_id", postgresql.UUID(as_uuid=False), nullable=False),
        sa.Column("node_id", sa.Text(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("token", name=op.f("pk_resume_tokens")),
        sa.ForeignKeyConstraint(
            ["execution_id"],
            ["executions.execution_id"],
            name=op.f("fk_resume_tokens_execution_id_executions"),
            ondelete="CASCADE",
        ),
    )
    op.create_index(op.f("ix_resume_tokens_execution"), "resume_tokens", ["execution_id"])


def downgrade() -> None:
    # Refuses (the old CHECK fails) while a node is 'waiting': 0001 cannot represent it, and
    # turning it into another status would silently change what the execution does.
    op.drop_table("resume_tokens")
    op.drop_index(op.f("ix_node_results_child"), table_name="node_results")
    op.drop_index(op.f("ix_node_results_wake"), table_name="node_results")
    op.drop_constraint(op.f("ck_node_results_status"), "node_results", type_="check")
    op.create_check_constraint(op.f("ck_node_results_status"), "node_results", _STATUSES_0001)
    op.drop_column("node_results", "wait")
    op.drop_column("node_results", "wake_at")
