"""An enqueue either creates nothing and raises, or returns the id of an execution that runs.

With Redis down after the store committed, the enqueue returns the id and the entry jobs go
out in the background as soon as Redis answers again: well before the sweeper would send
them (its interval and staleness are an hour here, so it cannot be the one).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator

import pytest

from spane_py import ExecutionContext, InMemoryExecutionStore, NodeRegistry, WorkflowEngine
from spane_py.embedded import redis_server_binary
from spane_py.state import ExecutionStatus
from tests.integration._support import node, wait_until, workflow

HOUR = 3600.0


class RestartableRedis:
    """A redis-server on a fixed TCP port that can be stopped and started again (empty)."""

    def __init__(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.dir = tempfile.mkdtemp(prefix="spane-redis-down-")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", self.dir],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip

    async def ready(self) -> None:
        async def answers() -> bool:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                return False
            writer.close()
            return True

        await wait_until(answers, timeout=30, what="redis-server to accept")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None


@pytest.fixture
def redis_server() -> Iterator[RestartableRedis]:
    server = RestartableRedis()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def engine_on(redis_server: RestartableRedis) -> AsyncIterator[WorkflowEngine]:
    await redis_server.ready()
    registry = NodeRegistry()

    async def double(ctx: ExecutionContext) -> int:
        return int(ctx.input_data or 0) * 2

    registry.register("double", double)
    engine = WorkflowEngine(
        registry,
        InMemoryExecutionStore(),
        redis_url=redis_server.url,
        poll_delay=0.05,
        sweep_interval_seconds=HOUR,
        stale_after_seconds=HOUR,
    )
    await engine.start()
    await engine.register_workflow(workflow("free", node("a", "double")))
    await engine.register_workflow(workflow("capped", node("a", "double"), max_concurrency=1))
    try:
        yield engine
    finally:
        await engine.close(grace_seconds=1.0)


async def test_enqueue_with_redis_down_returns_ids_that_run_when_it_returns(
    engine_on: WorkflowEngine, redis_server: RestartableRedis, caplog: pytest.LogCaptureFixture
) -> None:
    engine = engine_on
    redis_server.stop()
    caplog.set_level(logging.WARNING, logger="spane_py.engine")

    one = await engine.enqueue_workflow("free", 1)  # used to raise QueueError (store committed)
    bulk = await engine.enqueue_bulk("free", [2, 3])
    capped = await engine.enqueue_workflow("capped", 4)
    keyed = await engine.enqueue_workflow("free", 5, idempotency_key="k1")
    # The caller retries with its key: the same execution, nothing new.
    assert await engine.enqueue_workflow("free", 5, idempotency_key="k1") == keyed
    ids = [one, *bulk, capped, keyed]
    assert len(set(ids)) == 5
    assert "Redis refused it" in caplog.text
    states = [await engine.get_execution(i) for i in ids]
    assert all(s is not None for s in states)
    assert await engine.store.get_execution_count() == 5  # no more, no fewer

    redis_server.start()
    await redis_server.ready()
    await engine.start_workers(concurrency=4)
    results = await asyncio.gather(*(engine.wait_for_execution(i, timeout=60) for i in ids))
    assert [r.status for r in results] == [ExecutionStatus.COMPLETED] * 5
    assert sorted(r.node_results["a"].data for r in results) == [2, 4, 6, 8, 10]
    assert engine._parts().resender.pending == 0


async def test_sends_still_refused_at_close_are_left_to_the_sweeper(
    engine_on: WorkflowEngine, redis_server: RestartableRedis, caplog: pytest.LogCaptureFixture
) -> None:
    engine = engine_on
    redis_server.stop()
    caplog.set_level(logging.WARNING, logger="spane_py.engine")
    execution_id = await engine.enqueue_workflow("free", 1)
    await engine.close(grace_seconds=0.2)
    assert "closing with 1 send(s) Redis refused" in caplog.text
    state = await engine.get_execution(execution_id)
    assert state is not None
    assert state.status == ExecutionStatus.RUNNING
