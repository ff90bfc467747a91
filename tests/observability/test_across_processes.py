"""Observability across processes: a worker process (``spane worker --metrics-port``)
runs the nodes; the test's engine, which runs none, sees the worker's events on the
stream, scrapes the worker's metrics, and finds the worker's spans in the trace it
derives on its own."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from spane_py import NodeRegistry, WorkflowEngine
from spane_py.observability import trace_ids
from spane_py.stores.postgres.store import PostgresExecutionStore
from tests.observability._support import (
    CHAIN,
    collect_until_settled,
    names,
    node,
    register_types,
    workflow,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
CHILD = workflow("child", node("c1", "echo"))
PARENT = workflow(
    "parent", node("a", "echo"), node("sub", "sub-workflow", "a", config={"workflowId": "child"})
)

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        body: bytes = response.read()
        return body.decode()


@pytest.fixture
def metrics_port() -> int:
    return free_port()


@pytest.fixture
def worker(
    redis_url: str,
    database_url: str,
    pg_schema: str,
    key_prefix: str,
    tmp_path: Path,
    metrics_port: int,
) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SPANE_", "OBS_")) and k not in ("REDIS_URL", "DATABASE_URL")
    }
    spans = tmp_path / "spans.jsonl"
    env.update(
        REDIS_URL=redis_url,
        DATABASE_URL=database_url,
        SPANE_KEY_PREFIX=key_prefix,
        SPANE_DB_SCHEMA=pg_schema,
        SPANE_LOG_LEVEL="WARNING",
        SPANE_METRICS_ADDR="127.0.0.1",
        OBS_SPANS_FILE=str(spans),
        PYTHONUNBUFFERED="1",
    )
    log = tmp_path / "worker.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "spane_py.cli", "worker", "tests.observability.app:make_engine",
             "--metrics-port", str(metrics_port)],
            cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:  # ready once its metrics answer: it serves them after connecting
            if proc.poll() is not None:
                raise AssertionError(f"worker exited: {log.read_text(errors='replace')}")
            try:
                scrape(metrics_port)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield proc, spans
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        assert "Traceback" not in log.read_text(errors="replace"), log.read_text()


@pytest.fixture
async def producer(
    database_url: str, pg_schema: str, redis_url: str, key_prefix: str
) -> AsyncIterator[WorkflowEngine]:
    """The test's engine: registers, enqueues, subscribes; runs no worker."""
    store = PostgresExecutionStore(
        database_url, schema=pg_schema, apply_migrations=False, min_pool_size=1, max_pool_size=4
    )
    registry = NodeRegistry()
    register_types(registry)
    engine = WorkflowEngine(registry, store, redis_url=redis_url, key_prefix=key_prefix)
    async with engine:
        try:
            yield engine
        finally:
            await engine.purge()


async def test_a_subscriber_sees_events_from_a_worker_process(
    producer: WorkflowEngine,
    worker: tuple[subprocess.Popen[bytes], Path],
    metrics_port: int,
) -> None:
    for definition in (CHAIN, CHILD, PARENT):
        await producer.register_workflow(definition)
    async with await producer.subscribe(workflow_id="chain") as sub:
        eid = await producer.enqueue_workflow("chain", 1)
        seen = await collect_until_settled(sub, eid, timeout=30)
        if ("execution.started", None) not in names(seen):  # still on its way
            seen.append(await asyncio.wait_for(anext(sub), 5))
    # Nodes ran in the worker process only: their events crossed over through Redis, in
    # order. (execution.started came from this process: it may arrive a little after the
    # worker's first events, see the stream module.)
    from_worker = [n for n in names(seen) if n != ("execution.started", None)]
    assert from_worker == [
        ("node.started", "a"),
        ("node.completed", "a"),
        ("node.started", "b"),
        ("node.completed", "b"),
        ("execution.completed", None),
    ]
    assert ("execution.started", None) in names(seen)

    # The worker's own counters, on its port; enqueues are counted where they happen.
    text = await asyncio.to_thread(scrape, metrics_port)
    assert 'spane_workflows_completed_total{workflow_id="chain"} 1.0' in text
    assert (
        'spane_nodes_executed_total{node_type="echo",status="succeeded",workflow_id="chain"} 2.0'
    ) in text
    assert 'spane_workflows_enqueued_total{workflow_id="chain"}' not in text
    assert 'spane_workflows_enqueued_total{workflow_id="chain"} 1.0' in (
        await producer.metrics_text()
    )


async def test_the_workers_spans_land_in_the_trace_derived_from_the_execution(
    producer: WorkflowEngine, worker: tuple[subprocess.Popen[bytes], Path]
) -> None:
    _proc, spans_file = worker
    for definition in (CHILD, PARENT):
        await producer.register_workflow(definition)
    eid = await producer.enqueue_workflow("parent", 1)
    state = await producer.wait_for_execution(eid, timeout=30)
    assert state.status == "completed"
    (child,) = (await producer.get_trace(eid)).children

    def load() -> list[dict[str, object]]:
        if not spans_file.exists():
            return []
        return [json.loads(line) for line in spans_file.read_text().splitlines()]

    deadline = time.monotonic() + 10
    while len(spans := load()) < 5:  # a, sub, c1, child's and parent's execution spans
        assert time.monotonic() < deadline, spans
        await asyncio.sleep(0.05)
    assert {s["trace_id"] for s in spans} == {uuid.UUID(eid).int}
    by_name = {s["name"]: s for s in spans}
    stored = {s.node_id: s.span_id for s in (await producer.get_trace(eid)).spans}
    # Computed here, in another process, from what the store says: the same ids.
    assert by_name["sub"]["span_id"] == trace_ids.record_span_id(stored["sub"])
    assert by_name["sub"]["parent_id"] == trace_ids.execution_span_id(eid)
    assert by_name["child"]["span_id"] == trace_ids.execution_span_id(child.execution_id)
    assert by_name["child"]["parent_id"] == by_name["sub"]["span_id"]
    assert by_name["c1"]["parent_id"] == trace_ids.execution_span_id(child.execution_id)
