"""Upgrades started at the same moment from several OS processes: one migrates, the others
wait on the advisory lock and find the schema at head."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import asyncpg

from spane_py.stores.postgres import migrate

REPO_ROOT = Path(__file__).resolve().parents[2]
PROCESSES = 4

# Loads everything (imports, the script directory) first, says "ready", then waits for
# "go" on stdin, so that the upgrades really start together.
WORKER = """
import asyncio, json, sys
from spane_py.stores.postgres import migrate

url, schema = sys.argv[1], sys.argv[2]
migrate.head_revision()
print("ready", flush=True)
sys.stdin.readline()
result = asyncio.run(migrate.apply_migrations(url, schema=schema))
print(json.dumps([result.before, result.after]), flush=True)
"""


def _env() -> dict[str, str]:
    return {
        k: v for k, v in os.environ.items() if k != "DATABASE_URL" and not k.startswith("SPANE_")
    }


async def _version_rows(database_url: str, schema: str) -> list[str]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(f"SELECT version_num FROM {schema}.alembic_version")
        return [r["version_num"] for r in rows]
    finally:
        await conn.close()


async def test_concurrent_upgrades_migrate_once(database_url: str, fresh_schema: str) -> None:
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            WORKER,
            database_url,
            fresh_schema,
            cwd=REPO_ROOT,
            env=_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(PROCESSES)
    ]
    try:
        for p in processes:
            assert p.stdout is not None
            line = await asyncio.wait_for(p.stdout.readline(), 60)
            assert line == b"ready\n", line
        for p in processes:  # as close together as the OS allows
            assert p.stdin is not None
            p.stdin.write(b"go\n")
        outputs = await asyncio.wait_for(asyncio.gather(*(p.communicate() for p in processes)), 60)
    finally:
        for p in processes:
            if p.returncode is None:
                p.kill()
                await p.wait()
    head = migrate.head_revision()
    for p, (_, err) in zip(processes, outputs, strict=True):
        assert p.returncode == 0, err.decode()
        assert err == b""
    results = sorted((json.loads(out) for out, _ in outputs), key=str)
    # Exactly one found nothing and migrated; the others waited and found it at head.
    assert results == sorted([[None, head]] + [[head, head]] * (PROCESSES - 1), key=str)
    assert await _version_rows(database_url, fresh_schema) == [head]


async def test_an_upgrade_waits_for_the_lock(database_url: str, fresh_schema: str) -> None:
    holder = await asyncpg.connect(database_url)
    try:
        transaction = holder.transaction()
        await transaction.start()
        await holder.execute(
            "SELECT pg_advisory_xact_lock(hashtext($1), hashtext($2))",
            migrate.LOCK_NAMESPACE,
            fresh_schema,
        )
        upgrade = asyncio.create_task(migrate.upgrade(database_url, schema=fresh_schema))
        waiting = 0
        deadline = asyncio.get_running_loop().time() + 30
        while not waiting:  # until the upgrade is queued on this schema's lock
            assert asyncio.get_running_loop().time() < deadline, "the upgrade never waited"
            assert not upgrade.done(), "the upgrade did not wait for the lock"
            await asyncio.sleep(0.05)
            # Its two keys (the other tests' upgrades may wait on locks of their own).
            waiting = await holder.fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
                "AND classid = hashtext($1)::oid AND objid = hashtext($2)::oid "
                "AND objsubid = 2",
                migrate.LOCK_NAMESPACE,
                fresh_schema,
            )
        assert waiting == 1
        assert not upgrade.done()  # it waits on the lock: nothing more can happen meanwhile
        exists = await holder.fetchval(
            "SELECT count(*) FROM pg_namespace WHERE nspname = $1", fresh_schema
        )
        assert exists == 0  # nothing is created before the lock is granted
        await transaction.commit()
        assert await asyncio.wait_for(upgrade, 30) == migrate.head_revision()
    finally:
        await holder.close()


async def test_other_schemas_do_not_wait(database_url: str, fresh_schema: str) -> None:
    """The lock is per schema: holding another schema's lock does not block this one."""
    holder = await asyncpg.connect(database_url)
    try:
        async with holder.transaction():
            await holder.execute(
                "SELECT pg_advisory_xact_lock(hashtext($1), hashtext($2))",
                migrate.LOCK_NAMESPACE,
                fresh_schema + "_other",
            )
            revision = await asyncio.wait_for(
                migrate.upgrade(database_url, schema=fresh_schema), 30
            )
            assert revision == migrate.head_revision()
    finally:
        await holder.close()
