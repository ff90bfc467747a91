"""The worker application of the worker-pool tests: ``spane worker
tests.multiprocess.pools_app:make_engine`` (``--queues`` or ``SPANE_QUEUES`` picks the pool).

Node types, each recording ``<node_id> <execution_id> <pid> <type>`` to ``MP_RECORD_FILE``
when it runs (``FileRecord``'s one-write lines):

=================  ==========================================================================
``pool_cpu``       the default queue; returns its pid
``pool_gpu``       queue ``gpu``; returns its pid
``pool_blocking``  a plain ``def`` on the default queue: it blocks its thread in
                   ``time.sleep(0.2)`` steps while the file ``config["holdWhile"]`` exists
                   (at most ``HOLD_LIMIT_S``), then returns its pid
=================  ==========================================================================
"""

from __future__ import annotations

import os
import time
from typing import Any

from spane_py import ExecutionContext, NodeRegistry, WorkflowEngine
from spane_py.stores.postgres.store import PostgresExecutionStore

HOLD_LIMIT_S = 60.0


class Record:
    def __init__(self, path: str) -> None:
        self.path = path

    def __call__(self, ctx: ExecutionContext, kind: str) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            line = f"{ctx.node_id} {ctx.execution_id} {os.getpid()} {kind}\n"
            os.write(fd, line.encode())  # one write(2): O_APPEND keeps it whole
        finally:
            os.close(fd)


def read_record(path: str) -> list[tuple[str, str, int, str]]:
    """The lines of a record: (node_id, execution_id, pid, kind)."""
    if not os.path.exists(path):
        return []
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            node_id, execution_id, pid, kind = line.split()
            out.append((node_id, execution_id, int(pid), kind))
    return out


def build_registry(record: Record) -> NodeRegistry:
    registry = NodeRegistry()

    async def cpu(ctx: ExecutionContext) -> Any:
        record(ctx, "cpu")
        return os.getpid()

    async def gpu(ctx: ExecutionContext) -> Any:
        record(ctx, "gpu")
        return os.getpid()

    def blocking(ctx: ExecutionContext) -> Any:
        record(ctx, "blocking-start")
        hold = str(ctx.node_config.get("holdWhile", ""))
        deadline = time.monotonic() + HOLD_LIMIT_S
        while hold and os.path.exists(hold) and time.monotonic() < deadline:
            time.sleep(0.2)  # blocks this thread, never the event loop
        record(ctx, "blocking-end")
        return os.getpid()

    registry.register("pool_cpu", cpu)
    registry.register("pool_gpu", gpu, queue="gpu")
    registry.register("pool_blocking", blocking)
    return registry


async def make_engine() -> WorkflowEngine:
    """The ``spane worker`` factory (started; ``<MP_READY_DIR>/<pid>`` then says so)."""
    env = os.environ
    store = PostgresExecutionStore(
        env["DATABASE_URL"],
        schema=env["SPANE_DB_SCHEMA"],
        apply_migrations=False,
        min_pool_size=1,
        max_pool_size=10,
    )
    engine = WorkflowEngine(
        build_registry(Record(env["MP_RECORD_FILE"])),
        store,
        redis_url=env["REDIS_URL"],
        key_prefix=env["SPANE_KEY_PREFIX"],
        poll_delay=0.2,
    )
    await engine.start()
    ready_dir = env.get("MP_READY_DIR")
    if ready_dir:
        fd = os.open(os.path.join(ready_dir, str(os.getpid())), os.O_WRONLY | os.O_CREAT, 0o644)
        os.close(fd)
    return engine
