"""A newer spane_py's migrations for tests: ours plus a revision (``NEWER``) this code lacks."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from spane_py.stores.postgres import migrate, revisions

OURS = "0008"  # this code's head
NEWER = "0009"  # the test-only revision on top of it

REVISION_NEWER = f'''"""Test-only revision: a note on workflows.

Revision ID: {NEWER}
Revises: {OURS}
"""

import sqlalchemy as sa
from alembic import op

revision = "{NEWER}"
down_revision = "{OURS}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("workflows", sa.Column("note", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("workflows", "note")
'''


class NewerMigrations:
    """Switches ``migrate`` between its own migrations and a copy with revision ``NEWER``."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
        self._monkeypatch = monkeypatch
        self.path = tmp_path / "migrations"
        shutil.copytree(
            migrate.migrations_path(), self.path, ignore=shutil.ignore_patterns("__pycache__")
        )
        (self.path / "versions" / f"{NEWER}_note.py").write_text(REVISION_NEWER)

    def use_newer(self) -> None:
        self._monkeypatch.setattr(migrate, "migrations_path", lambda: self.path)
        self._monkeypatch.setattr(revisions, "REVISIONS", (*revisions.REVISIONS, NEWER))

    def use_ours(self) -> None:
        self._monkeypatch.undo()

    def __enter__(self) -> NewerMigrations:
        self.use_newer()
        return self

    def __exit__(self, *exc: object) -> None:
        self.use_ours()
