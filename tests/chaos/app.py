"""The worker application of the chaos tests: ``spane worker tests.chaos.app:make_engine``.

Only node executors are registered here; a worker loads each pinned definition from
PostgreSQL. Every executor run appends two lines to a shared record file (``MP_RECORD_FILE``,
``O_APPEND``, one ``write(2)`` per line, so lines of several processes never mix)::

    start <node_id> <execution_id> <token> <pid> <attempt> <unix time>
    end   <node_id> <execution_id> <token> <pid> <attempt> <unix time>

and returns ``token``, unique to that run. The store keeps the token of the run whose result
was committed. A ``start`` without its ``end`` is a run cut off (SIGKILL, cancellation). The
times are ``time.time()`` of one machine: comparable with each other and with the test's.

Node type ``ch_step`` (its ``config``):

``sleepMs``    ``[lo, hi]``: sleeps a random time in this range (default: none)
``holdInput``  true: the node's input is ``{"hold": <path>}``; it waits while that file
               exists (at most ``HOLD_LIMIT_S``), then ends. Lets a test keep a run going
               until it has killed its worker, and let the next run through at once.
``exitProcess`` true: a poison node — after its ``start`` line (and its sleep), it ends its
               worker's process at once (``os._exit(1)``), every run.

Environment: as ``tests/multiprocess/app.py`` (``REDIS_URL``, ``DATABASE_URL``,
``SPANE_KEY_PREFIX``, ``SPANE_DB_SCHEMA``, ``MP_RECORD_FILE``, ``MP_READY_DIR``,
``MP_LEASE_SECONDS``, ``MP_SWEEP_SECONDS``, ``MP_STALE_SECONDS``, ``MP_POOL_SIZE``,
``MP_SHUTDOWN_GRACE``), plus ``CH_RETRY_FOR_SECONDS``, the store's ``retry_for_seconds``
(30), and ``CH_MAX_LOST``, the engine's ``max_lost_deliveries`` (5).
"""

from __future__ import annotations

import asyncio
import os
import random
import time
import uuid
from dataclasses import dataclass
from typing import Any

from spane_py import ExecutionContext, NodeRegistry, WorkflowEngine
from spane_py.stores.postgres.store import PostgresExecutionStore

HOLD_LIMIT_S = 60.0


def chain(workflow_id: str, length: int, **config: Any) -> dict[str, Any]:
    """``n0 -> n1 -> ...``, every node a ``ch_step`` with ``config``."""
    names = [f"n{i}" for i in range(length)]
    return {
        "id": workflow_id,
        "name": workflow_id,
        "nodes": [
            {
                "id": name,
                "type": "ch_step",
                "config": config,
                "outputs": names[i + 1 : i + 2],
            }
            for i, name in enumerate(names)
        ],
    }


def held(workflow_id: str, then: int = 0) -> dict[str, Any]:
    """A node ``hold`` that runs while the file named by its input exists, followed by a
    chain of ``then`` plain nodes ``t0 -> t1 -> ...``."""
    names = [f"t{i}" for i in range(then)]
    return {
        "id": workflow_id,
        "name": workflow_id,
        "nodes": [
            {"id": "hold", "type": "ch_step", "config": {"holdInput": True}, "outputs": names[:1]},
            *(
                {"id": name, "type": "ch_step", "outputs": names[i + 1 : i + 2]}
                for i, name in enumerate(names)
            ),
        ],
    }


class EventRecord:
    """Appends one line per event to a file shared by every process of a test."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None

    def __call__(self, event: str, ctx: ExecutionContext, token: str) -> None:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        line = (
            f"{event} {ctx.node_id} {ctx.execution_id} {token} {os.getpid()} {ctx.attempt} "
            f"{time.time():.6f}\n"
        )
        os.write(self._fd, line.encode())


def build_registry(record: EventRecord) -> NodeRegistry:
    async def step(ctx: ExecutionContext) -> str:
        token = f"{os.getpid()}-{uuid.uuid4().hex[:16]}"
        record("start", ctx, token)
        config = ctx.node_config
        sleep = config.get("sleepMs")
        if sleep:
            await asyncio.sleep(random.uniform(sleep[0], sleep[1]) / 1000)
        if config.get("exitProcess"):
            os._exit(1)
        if config.get("holdInput"):
            gate = ctx.input_data["hold"]
            deadline = time.monotonic() + HOLD_LIMIT_S
            while _exists(gate):
                if time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.02)
        record("end", ctx, token)
        return token

    registry = NodeRegistry()
    registry.register("ch_step", step)
    return registry


def _exists(path: str) -> bool:
    """A flag file of a test (a stat on a local file: not worth a thread)."""
    return os.path.exists(path)


@dataclass(frozen=True)
class Event:
    event: str
    node_id: str
    execution_id: str
    token: str
    pid: int
    attempt: int
    at: float


def read_events(path: str) -> list[Event]:
    if not os.path.exists(path):
        return []
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            event, node_id, eid, token, pid, attempt, at = line.split()
            out.append(Event(event, node_id, eid, token, int(pid), int(attempt), float(at)))
    return out


def build_engine() -> WorkflowEngine:
    env = os.environ
    store = PostgresExecutionStore(
        env["DATABASE_URL"],
        schema=env["SPANE_DB_SCHEMA"],
        apply_migrations=False,
        min_pool_size=1,
        max_pool_size=int(env.get("MP_POOL_SIZE", "10")),
        retry_for_seconds=float(env.get("CH_RETRY_FOR_SECONDS", "30")),
    )
    return WorkflowEngine(
        build_registry(EventRecord(env["MP_RECORD_FILE"])),
        store,
        redis_url=env["REDIS_URL"],
        key_prefix=env["SPANE_KEY_PREFIX"],
        poll_delay=0.2,
        lease_seconds=float(env.get("MP_LEASE_SECONDS", "30")),
        sweep_interval_seconds=float(env.get("MP_SWEEP_SECONDS", "15")),
        stale_after_seconds=float(env.get("MP_STALE_SECONDS", "30")),
        shutdown_grace=float(env.get("MP_SHUTDOWN_GRACE", "5")),
        max_lost_deliveries=int(env.get("CH_MAX_LOST", "5")),
    )


async def make_engine() -> WorkflowEngine:
    """The ``spane worker`` factory: the started engine; then ``<MP_READY_DIR>/<pid>``
    exists, so a test can wait for its workers."""
    engine = build_engine()
    await engine.start()
    ready_dir = os.environ.get("MP_READY_DIR")
    if ready_dir:
        fd = os.open(os.path.join(ready_dir, str(os.getpid())), os.O_WRONLY | os.O_CREAT, 0o644)
        os.close(fd)
    return engine
