"""Helpers of the migration tests: fresh (unmigrated) schemas and a catalog snapshot.

``fresh_schema`` names a schema that does not exist yet (the test creates it, usually by
migrating); it is dropped afterwards. ``catalog()`` describes a schema as PostgreSQL sees it
(columns with types, defaults, nullability and identity; constraints; indexes; sequences),
with the schema's own name taken out, so two schemas can be compared with ``==``.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import pytest

from spane_py.stores.postgres.tables import is_partition


def new_schema_name() -> str:
    return f"t_{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def fresh_schema(database_url: str) -> AsyncIterator[str]:
    schema = new_schema_name()
    yield schema
    await drop_schemas(database_url, schema)


@pytest.fixture
async def schemas(database_url: str) -> AsyncIterator[Callable[[], str]]:
    """``schemas()`` returns a new schema name each call; all are dropped afterwards."""
    names: list[str] = []

    def make() -> str:
        names.append(new_schema_name())
        return names[-1]

    yield make
    await drop_schemas(database_url, *names)


async def drop_schemas(database_url: str, *names: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        for name in names:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
    finally:
        await conn.close()


async def catalog(conn: asyncpg.Connection, schema: str) -> dict[str, Any]:
    """Everything about ``schema``'s tables that a migration can get wrong (the partitions
    of partitioned tables left out: they are created at run time, and checked by
    tests/migrations/test_partitions.py)."""

    def strip(text: str | None) -> str | None:
        return None if text is None else text.replace(f"{schema}.", "")

    columns = await conn.fetch(
        """
        SELECT c.relname AS table_name, a.attnum, a.attname,
               format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull,
               pg_get_expr(d.adbin, d.adrelid) AS default, a.attidentity::text,
               a.attgenerated::text
        FROM pg_attribute a
        JOIN pg_class c ON c.oid = a.attrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition
          AND a.attnum > 0 AND NOT a.attisdropped
        ORDER BY c.relname, a.attnum
        """,
        schema,
    )
    constraints = await conn.fetch(
        """
        SELECT c.relname AS table_name, k.conname, k.contype::text,
               pg_get_constraintdef(k.oid) AS definition
        FROM pg_constraint k
        JOIN pg_class c ON c.oid = k.conrelid
        JOIN pg_namespace n ON n.oid = k.connamespace
        WHERE n.nspname = $1 AND NOT c.relispartition
        ORDER BY c.relname, k.conname
        """,
        schema,
    )
    indexes = [  # the partitions' own indexes are left out, as the partitions are
        r
        for r in await conn.fetch(
            "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = $1"
            " ORDER BY tablename, indexname",
            schema,
        )
        if not is_partition(r["tablename"])
    ]
    sequences = await conn.fetch(
        """
        SELECT sequencename, data_type::text, start_value, increment_by, min_value, max_value,
               cycle
        FROM pg_sequences WHERE schemaname = $1 ORDER BY sequencename
        """,
        schema,
    )
    return {
        "columns": [{**dict(r), "default": strip(r["default"])} for r in columns],
        "constraints": [{**dict(r), "definition": strip(r["definition"])} for r in constraints],
        "indexes": [{**dict(r), "indexdef": strip(r["indexdef"])} for r in indexes],
        "sequences": [dict(r) for r in sequences],
    }


def without_table(snapshot: dict[str, Any], table: str) -> dict[str, Any]:
    """``snapshot`` without the rows of ``table`` (e.g. ``alembic_version``)."""
    key = {"columns": "table_name", "constraints": "table_name", "indexes": "tablename"}
    out = {
        part: [row for row in rows if row[key[part]] != table]
        for part, rows in snapshot.items()
        if part in key
    }
    out["sequences"] = snapshot["sequences"]
    return out
