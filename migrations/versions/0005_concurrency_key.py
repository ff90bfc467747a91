"""A workflow's limit per concurrency key: executions.concurrency_key.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-12

A workflow may limit how many of its executions with the same key value (``{"concurrency":
{"key": "input.customer_id", "max": 1}}``) run at once. The key value of each execution is
computed when it is created and kept in the new nullable text column; executions created
before this revision have none (NULL: only ``max_concurrency`` applies to them). The
partial index covers what admission reads: a workflow's queued executions and its running
or paused ones that have a key, by status, key and id.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.add_column("executions", sa.Column("concurrency_key", sa.Text(), nullable=True))
    op.create_index(
        op.f("ix_executions_concurrency"),
        "executions",
        ["workflow_id", "status", "concurrency_key", "execution_id"],
        postgresql_where=sa.text(
            "status = 'queued' OR (status IN ('running', 'paused') AND concurrency_key IS NOT NULL)"
        ),
    )


def downgrade() -> None:
    # 0004 has no key limits: queued executions are admitted under max_concurrency alone.
    op.drop_index(op.f("ix_executions_concurrency"), table_name="executions")
    op.drop_column("executions", "concurrency_key")
