"""A typed column for the execution a waiting node waits for: node_results.wait_child.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05

Until 0003 the sweeper found a sub-workflow node whose child had ended by reading
``wait ->> 'child'`` (JSON private to the sub-workflow node). The new nullable column holds
that id as a uuid; the upgrade copies it into the rows of nodes that wait now (the only ones
the sweeper reads: few, through the old partial index) and swaps the partial index. A
malformed id in old JSON is left out, as the old query matched nothing for it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None

_UUID = "'^[0-9a-f]{8}-([0-9a-f]{4}-){3}[0-9a-f]{12}$'"


def upgrade() -> None:
    op.add_column(
        "node_results", sa.Column("wait_child", postgresql.UUID(as_uuid=False), nullable=True)
    )
    op.execute(
        "UPDATE node_results SET wait_child = (wait ->> 'child')::uuid "
        "WHERE status = 'waiting' AND (wait ->> 'child') IS NOT NULL "
        f"AND (wait ->> 'child') ~* {_UUID}"
    )
    op.drop_index(op.f("ix_node_results_child"), table_name="node_results")
    op.create_index(
        op.f("ix_node_results_wait_child"),
        "node_results",
        ["wait_child"],
        postgresql_where=sa.text("status = 'waiting' AND wait_child IS NOT NULL"),
    )


def downgrade() -> None:
    # 0003 reads the child from the wait JSON, which every version kept writing: nothing lost.
    op.drop_index(op.f("ix_node_results_wait_child"), table_name="node_results")
    op.create_index(
        op.f("ix_node_results_child"),
        "node_results",
        ["execution_id"],
        postgresql_where=sa.text("status = 'waiting' AND (wait ->> 'child') IS NOT NULL"),
    )
    op.drop_column("node_results", "wait_child")
