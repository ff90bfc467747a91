"""``revisions.REVISIONS``, what the store checks a database against without Alembic, is
the chain of ``migrations/versions`` as Alembic reads it: a new revision whose id is not
added there fails here."""

from __future__ import annotations

from spane_py.stores.postgres import migrate, revisions
from spane_py.stores.postgres.tables import SCHEMA_REVISION


def test_revisions_are_the_chain_alembic_reads() -> None:
    assert migrate.script_revisions() == revisions.REVISIONS


def test_head_is_the_last_revision() -> None:
    assert migrate.head_revision() == revisions.REVISIONS[-1] == SCHEMA_REVISION


def test_known_revisions() -> None:
    """An older revision asks for an upgrade, an unknown one for a newer spane_py."""
    first, head = revisions.REVISIONS[0], revisions.REVISIONS[-1]
    assert migrate.mismatch("spane", head) is None
    assert "run `spane db upgrade`" in (migrate.mismatch("spane", first) or "")
    assert "upgrade spane_py" in (migrate.mismatch("spane", "9999") or "")
