"""Alembic migrations of spane_py's PostgreSQL schema (installed as ``spane_py.migrations``).

The schema is ``spane_py/stores/postgres/tables.py``; these revisions build it, and
``tests/migrations`` checks that a database built from them matches the tables exactly.
Run them with ``spane db upgrade`` or ``spane_py.stores.postgres.migrate.upgrade()``.

Adding a revision, from the repository root (the ``[tool.alembic]`` section of
``pyproject.toml`` points the ``alembic`` command here; ``DATABASE_URL`` names a database
at the current head)::

    .venv/bin/alembic revision --autogenerate --rev-id 0002 -m "what changed"

then review the file (plain ``op.*`` calls; never import ``tables.py`` from a revision, the
tables move on while a revision stays frozen), and add the new id to ``REVISIONS`` in
``spane_py/stores/postgres/revisions.py`` (what the store checks a database against; a test
fails until it matches). ``-x schema=NAME`` picks a schema other than ``spane``.
"""
