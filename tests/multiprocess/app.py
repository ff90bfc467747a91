"""The worker application of the multi-process tests: ``spane worker
tests.multiprocess.app:make_engine``.

Only node executors are registered here, never a workflow: a worker process loads the
pinned definition from PostgreSQL the first time it sees an execution of it.

Every executor run appends one line to a record (``MP_RECORD_FILE``, opened with
``O_APPEND`` so that lines written by several processes never mix)::

    <node_id> <execution_id> <token> <pid> <attempt>

and returns ``token``, a value unique to that run. The store keeps the token of the run whose
result was committed, so a test can tell, independently of the engine's bookkeeping, how
many times each node really ran and which run counted.

Environment (all set by the test that starts the process):

=======================  ================================================================
``REDIS_URL``            Redis of the test
``DATABASE_URL``         PostgreSQL of the test
``SPANE_KEY_PREFIX``     the test's key prefix
``SPANE_DB_SCHEMA``      the test's schema (already migrated: ``apply_migrations=False``)
``MP_RECORD_FILE``       where runs are recorded
``MP_SLEEP_MS``          ``lo,hi``: a branch node sleeps a random time in this range (0,0)
``MP_LEASE_SECONDS``     ``WorkflowEngine(lease_seconds=...)`` (30)
``MP_SWEEP_SECONDS``     ``sweep_interval_seconds`` (15)
``MP_STALE_SECONDS``     ``stale_after_seconds`` (30)
``MP_POOL_SIZE``         the store's ``max_pool_size`` (10)
``MP_SHUTDOWN_GRACE``    ``shutdown_grace`` (5)
``MP_SCHEDULE_GRACE``    ``schedule_grace_seconds`` (10)
``MP_READY_DIR``         where a started worker says so (see ``make_engine``)
``MP_RATE_LIMIT``        ``max,per_seconds``: ``mp_limited``'s rate limit (``10,1``)
``MP_BREAKER``           ``threshold,window_s,open_s,probes,on_open``: ``mp_service``'s
                         circuit breaker (``3,10,1,1,wait``)
=======================  ================================================================

Node types (``build_registry``): ``mp_root``, ``mp_branch`` and ``mp_join`` for the wide
diamond; for the control-flow tests (``test_control_across_processes.py``), whose behaviour
is driven by files named in the node's config, so a test can steer a worker process:

============  ===========================================================================
``mp_echo``   returns ``{"run": <token>, "input": <its input>}``
``mp_hold``   waits while the file ``config["holdWhile"]`` exists, then records and returns
              its token
``mp_flaky``  records the run, then fails (``RuntimeError``) while the file
              ``config["failWhile"]`` exists; returns its token otherwise
``mp_gate``   records the run, then waits while the file named by its input's
              ``customer`` exists in the directory ``config["holdDir"]``; returns its
              input (the concurrency key tests: one customer held, the others not)
============  ===========================================================================

and for the traffic tests (``test_traffic_across_processes.py``), whose tokens end in
``@<time.time() of the call>`` so a test can measure when the service was called:

==============  =========================================================================
``mp_limited``  rate limited (``MP_RATE_LIMIT``); records and returns its token
``mp_service``  behind a circuit breaker (``MP_BREAKER``); records the call, then fails
                (``RuntimeError``) while the file ``config["failWhile"]`` exists
==============  =========================================================================
"""

from __future__ import annotations

import asyncio
import os
import random
import time
import uuid
from collections.abc import Callable
from typing import Any

from spane_py import (
    CircuitBreakerPolicy,
    ExecutionContext,
    NodeRegistry,
    RateLimit,
    WorkflowEngine,
)
from spane_py.stores.postgres.store import PostgresExecutionStore

BRANCHES = 20
WORKFLOW_ID = "mp-wide-diamond"
HOLD_LIMIT_S = 60.0  # an mp_hold node gives up (fails) after this long
RATE_LIMIT = RateLimit(10, 1.0)
BREAKER = CircuitBreakerPolicy(
    failure_threshold=3, window_seconds=10, open_seconds=1.0, half_open_probes=1, on_open="wait"
)

Record = Callable[[ExecutionContext, str], None]


def wide_diamond(branches: int = BRANCHES, workflow_id: str = WORKFLOW_ID) -> dict[str, Any]:
    """One root, ``branches`` parallel nodes, one join."""
    names = [f"b{i:02d}" for i in range(branches)]
    return {
        "id": workflow_id,
        "name": workflow_id,
        "nodes": [
            {"id": "root", "type": "mp_root", "outputs": names},
            *({"id": n, "type": "mp_branch", "outputs": ["join"]} for n in names),
            {"id": "join", "type": "mp_join"},
        ],
    }


def build_registry(
    record: Record,
    *,
    sleep_ms: tuple[float, float] = (0.0, 0.0),
    branches: int = BRANCHES,
    rate_limit: RateLimit = RATE_LIMIT,
    breaker: CircuitBreakerPolicy = BREAKER,
) -> NodeRegistry:
    """The executors: each records its run and returns the run's token."""

    def token() -> str:
        return f"{os.getpid()}-{uuid.uuid4().hex[:16]}"

    def timed_token() -> str:
        return f"{token()}@{time.time():.6f}"

    async def root(ctx: ExecutionContext) -> str:
        run = token()
        record(ctx, run)
        return run

    async def branch(ctx: ExecutionContext) -> str:
        lo, hi = sleep_ms
        if hi > 0:
            await asyncio.sleep(random.uniform(lo, hi) / 1000)
        run = token()
        record(ctx, run)
        return run

    async def join(ctx: ExecutionContext) -> str:
        # Every branch's committed token arrives, keyed by branch.
        data = ctx.input_data
        if not isinstance(data, dict) or len(data) != branches:
            raise ValueError(f"the join got {data!r:.200}, not {branches} branch results")
        run = token()
        record(ctx, run)
        return run

    async def echo(ctx: ExecutionContext) -> dict[str, Any]:
        run = token()
        record(ctx, run)
        return {"run": run, "input": ctx.input_data}

    async def hold(ctx: ExecutionContext) -> str:
        gate = ctx.node_config["holdWhile"]
        deadline = time.monotonic() + HOLD_LIMIT_S
        while _exists(gate):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{gate} still exists after {HOLD_LIMIT_S} s")
            await asyncio.sleep(0.02)
        run = token()
        record(ctx, run)
        return run

    async def gate(ctx: ExecutionContext) -> Any:
        record(ctx, token())  # on arrival: when the execution started
        held = os.path.join(ctx.node_config["holdDir"], str(ctx.input_data["customer"]))
        deadline = time.monotonic() + HOLD_LIMIT_S
        while _exists(held):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{held} still exists after {HOLD_LIMIT_S} s")
            await asyncio.sleep(0.02)
        return ctx.input_data

    async def flaky(ctx: ExecutionContext) -> str:
        run = token()
        record(ctx, run)  # failed runs count too
        if _exists(ctx.node_config["failWhile"]):
            raise RuntimeError(f"flaky: {ctx.node_config['failWhile']} exists")
        return run

    async def limited(ctx: ExecutionContext) -> str:
        run = timed_token()
        record(ctx, run)
        return run

    async def service(ctx: ExecutionContext) -> str:
        run = timed_token()
        record(ctx, run)  # failed calls count too
        if _exists(ctx.node_config["failWhile"]):
            raise RuntimeError(f"service: {ctx.node_config['failWhile']} exists")
        return run

    reg = NodeRegistry()
    reg.register("mp_root", root)
    reg.register("mp_branch", branch)
    reg.register("mp_join", join)
    reg.register("mp_echo", echo)
    reg.register("mp_hold", hold)
    reg.register("mp_flaky", flaky)
    reg.register("mp_gate", gate)
    reg.register("mp_limited", limited, rate_limit=rate_limit)
    reg.register("mp_service", service, circuit_breaker=breaker)
    return reg


def _exists(path: str) -> bool:
    """A flag file of a test (a stat on a local file: not worth a thread)."""
    return os.path.exists(path)


class FileRecord:
    """Appends one line per run to a file shared by every process of a test."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None

    def __call__(self, ctx: ExecutionContext, run: str) -> None:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        line = f"{ctx.node_id} {ctx.execution_id} {run} {os.getpid()} {ctx.attempt}\n"
        os.write(self._fd, line.encode())  # one write(2): O_APPEND keeps it whole

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def read_record(path: str) -> list[tuple[str, str, str, int, int]]:
    """The lines of a record: (node_id, execution_id, token, pid, attempt)."""
    if not os.path.exists(path):
        return []
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            node_id, execution_id, run, pid, attempt = line.split()
            out.append((node_id, execution_id, run, int(pid), int(attempt)))
    return out


def _sleep_range(text: str) -> tuple[float, float]:
    lo, _, hi = text.partition(",")
    return float(lo), float(hi or lo)


def _rate_limit(text: str | None) -> RateLimit:
    if not text:
        return RATE_LIMIT
    max_calls, per = text.split(",")
    return RateLimit(int(max_calls), float(per))


def _breaker(text: str | None) -> CircuitBreakerPolicy:
    if not text:
        return BREAKER
    threshold, window, open_s, probes, on_open = text.split(",")
    return CircuitBreakerPolicy(
        int(threshold),
        float(window),
        float(open_s),
        int(probes),
        "fail" if on_open == "fail" else "wait",
    )


def build_engine() -> WorkflowEngine:
    """The engine the environment describes (not started)."""
    env = os.environ
    store = PostgresExecutionStore(
        env["DATABASE_URL"],
        schema=env["SPANE_DB_SCHEMA"],
        apply_migrations=False,
        min_pool_size=1,
        max_pool_size=int(env.get("MP_POOL_SIZE", "10")),
    )
    registry = build_registry(
        FileRecord(env["MP_RECORD_FILE"]),
        sleep_ms=_sleep_range(env.get("MP_SLEEP_MS", "0,0")),
        rate_limit=_rate_limit(env.get("MP_RATE_LIMIT")),
        breaker=_breaker(env.get("MP_BREAKER")),
    )
    return WorkflowEngine(
        registry,
        store,
        redis_url=env["REDIS_URL"],
        key_prefix=env["SPANE_KEY_PREFIX"],
        poll_delay=0.2,
        lease_seconds=float(env.get("MP_LEASE_SECONDS", "30")),
        sweep_interval_seconds=float(env.get("MP_SWEEP_SECONDS", "15")),
        stale_after_seconds=float(env.get("MP_STALE_SECONDS", "30")),
        shutdown_grace=float(env.get("MP_SHUTDOWN_GRACE", "5")),
        schedule_grace_seconds=float(env.get("MP_SCHEDULE_GRACE", "10")),
    )


async def make_engine() -> WorkflowEngine:
    """The ``spane worker`` factory: the engine, started (connected to Redis and
    PostgreSQL), after which ``<MP_READY_DIR>/<pid>`` is created so that a test can wait for
    its workers without reading their logs."""
    engine = build_engine()
    await engine.start()  # `spane worker` starts it again: a no-op
    ready_dir = os.environ.get("MP_READY_DIR")
    if ready_dir:
        fd = os.open(os.path.join(ready_dir, str(os.getpid())), os.O_WRONLY | os.O_CREAT, 0o644)
        os.close(fd)
    return engine
