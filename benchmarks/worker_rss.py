"""Memory of a PostgreSQL worker process: VmRSS of ``spane worker`` on
``examples/postgres_app.py``, idle after its start and after it ran executions.

    DATABASE_URL=... REDIS_URL=... python benchmarks/worker_rss.py [--executions 20]

A schema of its own (migrated here, dropped at the end) and a key prefix of its own; this
process enqueues ``invoice`` executions and waits for them, the worker runs them. Goal
(issue 13): at most 60 MiB after the run. ``--importtime FILE`` runs the worker under
``python -X importtime`` and writes what it imported to FILE. Linux only.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

from _common import machine

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "examples"))


def status(pid: int) -> dict[str, float]:
    """VmRSS, VmHWM, RssAnon and RssFile of ``pid``, in MiB."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                out[key] = int(value.split()[0]) / 1024
    return out


def show(label: str, figures: dict[str, float]) -> None:
    text = ", ".join(f"{k} {v:.1f}" for k, v in figures.items())
    print(f"  {label:24} {text} MiB")


async def run_executions(count: int) -> None:
    """Enqueue ``count`` invoice executions (the worker runs them) and wait for them."""
    from postgres_app import invoice

    from spane_py import NodeRegistry, WorkflowEngine
    from spane_py.settings import SpaneSettings

    engine = WorkflowEngine(NodeRegistry(), workflows=[invoice], **SpaneSettings().engine_kwargs())
    async with engine:
        orders = [{"id": f"A-{i}", "lines": [{"price": 1.0, "qty": i}]} for i in range(count)]
        for execution_id in await engine.enqueue_bulk("invoice", orders):
            state = await engine.wait_for_execution(execution_id, timeout=60)
            assert state.status == "completed", state.status


async def drop_schema(url: str, schema: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


def main(executions: int, importtime: str | None) -> None:
    from spane_py.stores.postgres import migrate

    url = os.environ.get("DATABASE_URL")
    if not url or not os.environ.get("REDIS_URL"):
        raise SystemExit("set DATABASE_URL and REDIS_URL")
    schema, prefix = f"rss_{uuid.uuid4().hex[:8]}", f"rss{uuid.uuid4().hex[:8]}"
    asyncio.run(migrate.upgrade(url, schema=schema))
    os.environ.update(SPANE_DB_SCHEMA=schema, SPANE_KEY_PREFIX=prefix)
    spane = Path(sys.executable).with_name("spane")
    python = [sys.executable, *(["-X", "importtime"] if importtime else [])]
    with open(importtime or os.devnull, "w") as stderr:
        worker = subprocess.Popen(
            [*python, str(spane), "worker", "examples.postgres_app:create_engine"],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        try:
            time.sleep(4)  # started and idle
            print(f"worker_rss: {machine()}, {executions} executions of invoice (4 nodes)")
            show("idle after its start", status(worker.pid))
            asyncio.run(run_executions(executions))
            time.sleep(1)
            show("after the executions", status(worker.pid))
        finally:
            worker.terminate()
            worker.wait(10)
            asyncio.run(drop_schema(url, schema))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--executions", type=int, default=20)
    parser.add_argument("--importtime", metavar="FILE", help="write -X importtime's report here")
    args = parser.parse_args()
    main(args.executions, args.importtime)
