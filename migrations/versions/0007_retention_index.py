"""Retention: an index of finished executions by status and completion time.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-26

``ix_executions_completed`` (status, completed_at; only rows with a completed_at) lets
retention (``prune_executions``) find a status's executions that finished before a cutoff
without reading the table. The upgrade rewrites no row; building the index reads the
executions table once (``CREATE INDEX`` blocks writes to it meanwhile).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_index(
        op.f("ix_executions_completed"),
        "executions",
        ["status", "completed_at"],
        postgresql_where=sa.text("completed_at IS NOT NULL"),
    )


def downgrade() -> None:
    # 0006 has no retention: nothing reads this index.
    op.drop_index(op.f("ix_executions_completed"), table_name="executions")
