"""An execution's output, artifacts and the event history: executions.output, tables
artifacts and events.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-19

``executions.output`` (jsonb, NULL) holds the data of a completed execution's final nodes;
executions completed before this revision have none (NULL: their output reads as None, and
a sub-workflow node still waiting on such a child computes it from the child's nodes as
before). ``artifacts`` holds the named blobs nodes put (``ctx.put_artifact``), one row per
execution and name; ``events`` the engine's events of each execution, as streamed, with an
index for one execution's history and one for a type over time. Both go with their
execution (``ON DELETE CASCADE``). The upgrade rewrites no row.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.add_column("executions", sa.Column("output", postgresql.JSONB(), nullable=True))

    op.create_table(
        "artifacts",
        sa.Column("execution_id", postgresql.UUID(as_uuid=False), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("node_id", sa.Text(), nullable=True),
        sa.Column("content_type", sa.Text(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["execution_id"],
            ["executions.execution_id"],
            name=op.f("fk_artifacts_execution_id_executions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("execution_id", "name", name=op.f("pk_artifacts")),
    )

    op.create_table(
        "events",
        sa.Column("event_id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("execution_id", postgresql.UUID(as_uuid=False), nullable=True),
        sa.Column("workflow_id", sa.Text(), nullable=True),
        sa.Column("node_id", sa.Text(), nullable=True),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "fields", postgresql.JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb")
        ),
        sa.ForeignKeyConstraint(
            ["execution_id"],
            ["executions.execution_id"],
            name=op.f("fk_events_execution_id_executions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_events")),
    )
    op.create_index(op.f("ix_events_execution"), "events", ["execution_id", "at"])
    op.create_index(op.f("ix_events_type"), "events", ["type", "at"])


def downgrade() -> None:
    # 0005 has no output column, artifacts or event history: they are lost.
    op.drop_table("events")
    op.drop_table("artifacts")
    op.drop_column("executions", "output")
