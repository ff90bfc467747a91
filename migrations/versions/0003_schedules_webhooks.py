"""Schedule and webhook triggers: tables schedules and webhooks.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23

Two new tables, nothing else changes: the upgrade rewrites no row. Workflows registered
before it get their triggers the next time they are registered.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "schedules",
        sa.Column("schedule_id", sa.Text(), nullable=False),
        sa.Column("workflow_id", sa.Text(), nullable=False),
        sa.Column("cron", sa.Text(), nullable=False),
        sa.Column("timezone", sa.Text(), nullable=False),
        sa.Column("missed", sa.Text(), server_default=sa.text("'skip'"), nullable=False),
        sa.Column("paused", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("last_tick", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("missed IN ('skip', 'run_once')", name=op.f("ck_schedules_missed")),
        sa.ForeignKeyConstraint(
            ["workflow_id"],
            ["workflows.workflow_id"],
            name=op.f("fk_schedules_workflow_id_workflows"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("schedule_id", name=op.f("pk_schedules")),
    )
    op.create_index(op.f("ix_schedules_workflow"), "schedules", ["workflow_id"])

    op.create_table(
        "webhooks",
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("method", sa.Text(), nullable=False),
        sa.Column("workflow_id", sa.Text(), nullable=False),
        sa.Column("secret", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["workflow_id"],
            ["workflows.workflow_id"],
            name=op.f("fk_webhooks_workflow_id_workflows"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("path", "method", name=op.f("pk_webhooks")),
    )
    op.create_index(op.f("ix_webhooks_workflow"), "webhooks", ["workflow_id"])


def downgrade() -> None:
    # Bindings are lost; registering the workflows again (on 0003) writes them back.
    op.drop_table("webhooks")
    op.drop_table("schedules")
