"""Worker pools across OS processes (issue 15): ``spane worker`` processes that consume
different queues, on one PostgreSQL and one Redis. Which process ran a node is read from the
executors' own record (``tests/multiprocess/pools_app.py``: each line names the pid).

- each node type runs only on its pool's workers;
- a queue no live worker consumes keeps its nodes waiting, visible to the producer
  (``list_queues``: unserved), and they run once a worker for it starts;
- a plain ``def`` node that blocks its thread does not stall the async nodes of its worker.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from spane_py import ExecutionStatus, NodeRegistry, WorkflowEngine
from spane_py.stores.postgres.store import PostgresExecutionStore
from tests.multiprocess._checks import wait_until
from tests.multiprocess.conftest import Workers
from tests.multiprocess.pools_app import read_record

pytestmark = [pytest.mark.slow]

APP = "tests.multiprocess.pools_app:make_engine"

PIPELINE: dict[str, Any] = {
    "id": "mp-pipeline",
    "nodes": [
        {"id": "prepare", "type": "pool_cpu"},
        {"id": "render", "type": "pool_gpu", "inputs": ["prepare"]},
        {"id": "publish", "type": "pool_cpu", "inputs": ["render"]},
    ],
}


@pytest.fixture
async def producer(
    database_url: str, pg_schema: str, redis_url: str, key_prefix: str
) -> AsyncIterator[WorkflowEngine]:
    """The test's engine: it enqueues and reads, runs no worker, and has no executor
    (``producer_only``); it knows where ``pool_gpu`` runs (``route``) for the entry nodes
    it sends."""
    registry = NodeRegistry()
    registry.route("pool_gpu", "gpu")
    store = PostgresExecutionStore(
        database_url, schema=pg_schema, apply_migrations=False, min_pool_size=1, max_pool_size=4
    )
    engine = WorkflowEngine(
        registry, store, redis_url=redis_url, key_prefix=key_prefix, producer_only=True
    )
    async with engine:
        yield engine


async def _register(producer: WorkflowEngine) -> None:
    await producer.register_workflow(PIPELINE)


async def _completed(producer: WorkflowEngine, ids: list[str], timeout: float) -> None:
    for execution_id in ids:
        state = await producer.wait_for_execution(execution_id, timeout=timeout)
        assert state.status is ExecutionStatus.COMPLETED, state


async def test_each_node_type_runs_only_on_its_pools_workers(
    producer: WorkflowEngine, workers: Workers, record_path: Path
) -> None:
    await _register(producer)
    general = workers.start(2, app=APP, concurrency=8, SPANE_QUEUES="default")
    gpu = workers.start(1, app=APP, concurrency=4, SPANE_QUEUES="gpu")
    await workers.wait_ready(general + gpu)

    ids = [await producer.enqueue_workflow("mp-pipeline", i) for i in range(12)]
    await _completed(producer, ids, timeout=60)

    runs = read_record(str(record_path))
    gpu_pids = {w.pid for w in gpu}
    general_pids = {w.pid for w in general}
    assert Counter(kind for _, _, _, kind in runs) == {"cpu": 24, "gpu": 12}
    for node_id, _, pid, kind in runs:
        assert pid in (gpu_pids if kind == "gpu" else general_pids), (node_id, pid, kind)
    assert not workers.errors()


async def test_a_queue_without_workers_waits_visibly_then_runs(
    producer: WorkflowEngine, workers: Workers, record_path: Path
) -> None:
    await _register(producer)
    general = workers.start(1, app=APP, concurrency=8, SPANE_QUEUES="default")
    await workers.wait_ready(general)
    ids = [await producer.enqueue_workflow("mp-pipeline", i) for i in range(3)]

    async def renders_wait() -> bool:
        queues = {q.name: q for q in await producer.list_queues()}
        return "gpu" in queues and queues["gpu"].queued == 3

    await wait_until(renders_wait, timeout=60, what="three render jobs waiting on queue gpu")
    queues = {q.name: q for q in await producer.list_queues()}
    assert queues["gpu"].unserved
    assert queues["default"].workers == 1
    for execution_id in ids:
        assert (await producer.get_execution(execution_id)).status is ExecutionStatus.RUNNING
    assert {kind for _, _, _, kind in read_record(str(record_path))} == {"cpu"}

    gpu = workers.start(1, app=APP, concurrency=4, SPANE_QUEUES="gpu")
    await workers.wait_ready(gpu)
    await _completed(producer, ids, timeout=60)
    assert not any(q.unserved for q in await producer.list_queues())
    assert not workers.errors()


async def test_a_blocking_def_node_does_not_stall_the_async_ones(
    producer: WorkflowEngine, workers: Workers, record_path: Path, tmp_path: Path
) -> None:
    hold = tmp_path / "hold"
    hold.touch()
    await producer.register_workflow(
        {
            "id": "mp-blocking",
            "nodes": [{"id": "block", "type": "pool_blocking", "config": {"holdWhile": str(hold)}}],
        }
    )
    await producer.register_workflow({"id": "mp-quick", "nodes": [{"id": "q", "type": "pool_cpu"}]})
    [worker] = workers.start(1, app=APP, concurrency=60, SPANE_QUEUES="default")
    await workers.wait_ready([worker])

    blocked = await producer.enqueue_workflow("mp-blocking", None)

    async def blocking() -> bool:
        return any(kind == "blocking-start" for *_, kind in read_record(str(record_path)))

    await wait_until(blocking, timeout=30, what="the def node blocking its thread")
    # 50 async nodes in the same worker process finish while the def node still blocks:
    # the file that releases it is removed only after they all completed.
    quick = [await producer.enqueue_workflow("mp-quick", i) for i in range(50)]
    await _completed(producer, quick, timeout=60)
    kinds = [kind for *_, kind in read_record(str(record_path))]
    assert "blocking-end" not in kinds
    assert kinds.count("cpu") == 50
    assert {pid for _, _, pid, _ in read_record(str(record_path))} == {worker.pid}

    hold.unlink()
    await _completed(producer, [blocked], timeout=30)
    assert not workers.errors()
