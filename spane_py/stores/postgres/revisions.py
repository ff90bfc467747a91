"""The revisions of spane_py's migrations (``migrations/versions``), oldest first.

The store checks a database's ``alembic_version`` against the last one when it starts, with one
query and without importing Alembic or SQLAlchemy (a worker never loads them). A new
revision adds its id here: ``tests/migrations/test_revisions.py`` fails until this tuple is
the chain Alembic reads from ``migrations/versions``.
"""

from __future__ import annotations

REVISIONS: tuple[str, ...] = ("0001", "0002", "0003", "0004", "0005", "0006", "0007", "0008")
