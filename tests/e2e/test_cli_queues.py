"""``spane queues``, ``spane workers`` and ``spane worker --queues``, as subprocesses, on the
test's Redis and key prefix; the workers they report run in this process."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from spane_py import ExecutionContext, NodeRegistry, WorkflowEngine
from tests.e2e.conftest import Run
from tests.integration._support import wait_until


async def _engine(redis_url: str, key_prefix: str) -> WorkflowEngine:
    registry = NodeRegistry()

    async def run(ctx: ExecutionContext) -> Any:
        return ctx.input_data

    registry.register("cpu", run)
    registry.register("gpu", run, queue="gpu")
    engine = WorkflowEngine(registry, redis_url=redis_url, key_prefix=key_prefix, poll_delay=0.2)
    await engine.start()
    await engine.register_workflow(
        {
            "id": "render",
            "nodes": [{"id": "a", "type": "cpu"}, {"id": "b", "type": "gpu", "inputs": ["a"]}],
        }
    )
    return engine


async def test_queues_and_workers_report_an_unserved_queue(
    spane: Run, redis_url: str, key_prefix: str
) -> None:
    engine = await _engine(redis_url, key_prefix)
    try:
        await engine.start_workers(2, queues=["default"])
        await engine.enqueue_workflow("render", 1)

        async def waiting() -> bool:
            return any(q.name == "gpu" and q.queued for q in await engine.list_queues())

        await wait_until(waiting, timeout=10, what="a job waiting on queue gpu")
        proc = await asyncio.to_thread(spane, "queues", "--json")
        assert proc.returncode == 0, proc.stderr
        queues = {q["name"]: q for q in json.loads(proc.stdout)}
        assert queues["gpu"]["queued"] == 1
        assert queues["gpu"]["unserved"] is True
        assert queues["default"]["workers"] == 1

        table = await asyncio.to_thread(spane, "queues")
        assert table.returncode == 0, table.stderr
        assert "no worker!" in table.stdout
        assert "gpu" in table.stdout

        proc = await asyncio.to_thread(spane, "workers", "--json")
        assert proc.returncode == 0, proc.stderr
        [worker] = json.loads(proc.stdout)
        assert worker["queues"] == ["default"]
        assert worker["concurrency"] == 2
        table = await asyncio.to_thread(spane, "workers")
        assert table.returncode == 0, table.stderr
        assert worker["worker_id"] in table.stdout
    finally:
        await engine.purge()
        await engine.close()


def test_queues_needs_redis(spane: Run, cli_env: dict[str, str]) -> None:
    env = {k: v for k, v in cli_env.items() if k != "REDIS_URL"}
    proc = spane("queues", env=env, timeout=30)
    assert proc.returncode == 2
    assert "set REDIS_URL" in proc.stderr


def test_worker_refuses_bad_queue_names(spane: Run) -> None:
    proc = spane("worker", "tests.e2e.app:engine", "--queues", "gpu,not ok", timeout=30)
    assert proc.returncode == 2
    assert "'not ok' is not valid" in proc.stderr
    proc = spane("worker", "tests.e2e.app:engine", "--queues", " , ", timeout=30)
    assert proc.returncode == 2
    assert "names no queue" in proc.stderr
