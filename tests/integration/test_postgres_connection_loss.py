"""PostgreSQL connections lost while executions run: everything still completes, and no node
result is applied twice.

Two ways of losing a connection:

* the server ends the store's sessions (``pg_terminate_backend``, as a failover or an
  administrator does), over and over while nodes run;
* a connection is cut right after a write was sent, so the write commits but its answer
  never arrives (a proxy between the store and the server drops it): the store must notice
  that the write it retries is its own, already applied, and go on (enqueue the children).

Only the store's own sessions are ended (their server pids, from the pool's
``pool: connection opened (pid N)`` log), never other clients of a shared server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
import pytest

from spane_py import ExecutionContext, NodeRegistry, WorkflowEngine
from spane_py.errors import ExecutionWaitTimeoutError
from spane_py.stores.postgres.store import PostgresExecutionStore

BRANCHES = 10


def wide_diamond(workflow_id: str = "loss-diamond") -> dict[str, Any]:
    names = [f"b{i}" for i in range(BRANCHES)]
    return {
        "id": workflow_id,
        "nodes": [
            {"id": "root", "type": "work", "outputs": names},
            *({"id": n, "type": "work", "outputs": ["join"]} for n in names),
            {"id": "join", "type": "join"},
        ],
    }


def recording_registry(runs: list[tuple[str, str, int]], sleep_ms: float = 0) -> NodeRegistry:
    """Executors that append (execution_id, node_id, attempt) to ``runs`` when they run."""

    async def work(ctx: ExecutionContext) -> str:
        if sleep_ms:
            await asyncio.sleep(random.uniform(0, sleep_ms) / 1000)
        runs.append((ctx.execution_id, ctx.node_id, ctx.attempt))
        return ctx.node_id

    async def join(ctx: ExecutionContext) -> int:
        runs.append((ctx.execution_id, ctx.node_id, ctx.attempt))
        return len(ctx.input_data)

    reg = NodeRegistry()
    reg.register("work", work)
    reg.register("join", join)
    return reg


def opened_pids(records: list[logging.LogRecord]) -> set[int]:
    """Server pids of the connections the store's pool opened."""
    return {
        int(r.args[0])  # type: ignore[index]
        for r in records
        if r.name == "spane_py.db" and r.msg.startswith("pool: connection opened")
    }


@pytest.mark.slow
@pytest.mark.chaos
async def test_sessions_terminated_by_the_server_while_executions_run(
    database_url: str,
    pg_schema: str,
    redis_url: str,
    key_prefix: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="spane_py.db")
    runs: list[tuple[str, str, int]] = []
    store = PostgresExecutionStore(
        database_url, schema=pg_schema, apply_migrations=False, min_pool_size=2, max_pool_size=8
    )
    engine = WorkflowEngine(
        recording_registry(runs, sleep_ms=20),
        store,
        redis_url=redis_url,
        key_prefix=key_prefix,
        poll_delay=0.2,
        # A write whose answer was lost is recovered by the sweeper at worst (see the next
        # test): keep that short here, this test is about double-applying.
        sweep_interval_seconds=1,
        stale_after_seconds=2,
    )
    admin = await asyncpg.connect(database_url)
    terminated = 0
    waits: list[asyncio.Task[Any]] = []
    try:
        async with engine:
            try:
                await engine.register_workflow(wide_diamond())
                await engine.start_workers(20)
                ids = await engine.enqueue_bulk("loss-diamond", list(range(60)))
                waits = [
                    asyncio.ensure_future(engine.wait_for_execution(e, timeout=60)) for e in ids
                ]
                rounds = 0
                while not all(w.done() for w in waits) and rounds < 40:
                    await asyncio.sleep(0.1)
                    terminated += await admin.fetchval(
                        "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) "
                        "FROM pg_stat_activity WHERE application_name = 'spane_py' "
                        "AND datname = current_database() AND pid = ANY($1::int[])",
                        list(opened_pids(caplog.records)),
                    )
                    rounds += 1
                states = [await w for w in waits]
            finally:
                for w in waits:
                    w.cancel()
                await asyncio.gather(*waits, return_exceptions=True)
                await engine.stop_workers(grace_seconds=1)
                await engine.purge()
    finally:
        await admin.close()

    retried = [
        r for r in caplog.records if r.name == "spane_py.db" and "retrying" in r.getMessage()
    ]
    assert terminated >= 5, terminated
    assert retried, "no operation ran into a lost connection: the test proved nothing"
    # A lost connection is retried inside the store: no job of a worker failed for it.
    failed_jobs = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert not failed_jobs, failed_jobs[:5]
    assert [s.status for s in states] == ["completed"] * len(ids)
    assert all(s.node_results["join"].data == BRANCHES for s in states)
    # Every node ran once, at its first attempt, and was recorded so: nothing was applied
    # twice and no attempt was counted twice.
    counted = Counter((eid, node) for eid, node, _ in runs)
    assert len(counted) == len(ids) * (BRANCHES + 2)
    assert set(counted.values()) == {1}
    assert {attempt for _, _, attempt in runs} == {1}
    assert {r.attempts for s in states for r in s.node_results.values()} == {1}
    print(f"\n{terminated} sessions terminated, {len(retried)} retries logged")


# A proxy that loses the answer to a write ---------------------------------------------------


# The message that ends every answer of the server (protocol 3): "Z", length 5, then the
# transaction status.
READY_FOR_QUERY = b"Z\x00\x00\x00\x05"


class AnswerDroppingProxy:
    """A TCP proxy in front of PostgreSQL. While ``armed``, the first client message whose
    bytes contain every one of ``triggers`` is passed to the server, and then the connection
    is cut without passing on the server's answer: the statement runs (and commits), the
    client sees a lost connection."""

    def __init__(self, database_url: str, *triggers: bytes) -> None:
        self.database_url = database_url
        self.triggers = triggers
        self.armed = 0
        self.dropped = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def _upstream(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        parts = urlsplit(self.database_url)
        query = dict(parse_qsl(parts.query))
        port = parts.port or int(query.get("port", 5432))
        if "host" in query:  # a unix socket directory
            return await asyncio.open_unix_connection(f"{query['host']}/.s.PGSQL.{port}")
        return await asyncio.open_connection(parts.hostname or "127.0.0.1", port)

    def url(self) -> str:
        """``database_url`` pointed at the proxy (no TLS: the proxy must read the bytes)."""
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        parts = urlsplit(self.database_url)
        user = parts.netloc.rpartition("@")[0]
        query = [(k, v) for k, v in parse_qsl(parts.query) if k not in ("host", "port")]
        query.append(("sslmode", "disable"))
        netloc = f"{user}@127.0.0.1:{port}" if user else f"127.0.0.1:{port}"
        return urlunsplit(parts._replace(netloc=netloc, query=urlencode(query)))

    async def __aenter__(self) -> AnswerDroppingProxy:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _client(self, c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        self._tasks.add(asyncio.current_task())  # type: ignore[arg-type]
        s_reader, s_writer = await self._upstream()
        cut = asyncio.Event()
        answered = asyncio.Event()  # the server's answer to the cut write came (and was lost)
        try:

            async def to_server() -> None:
                seen = b""
                while data := await c_reader.read(65536):
                    seen = (seen + data)[-200_000:]
                    s_writer.write(data)
                    await s_writer.drain()
                    if self.armed and all(t in seen for t in self.triggers):
                        self.armed -= 1
                        self.dropped += 1
                        cut.set()
                        # The server runs and commits it meanwhile: its answer proves it.
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(answered.wait(), 30)
                        return

            async def to_client() -> None:
                lost = b""
                while data := await s_reader.read(65536):
                    if cut.is_set():  # the answer is lost
                        lost = (lost + data)[-200_000:]
                        if READY_FOR_QUERY in lost:  # the server is done with the write
                            answered.set()
                        continue
                    c_writer.write(data)
                    await c_writer.drain()

            pumps = [asyncio.ensure_future(to_server()), asyncio.ensure_future(to_client())]
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
        finally:
            for writer in (c_writer, s_writer):
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()


@pytest.fixture
async def proxy_for_completion_of_a(database_url: str) -> AsyncIterator[AnswerDroppingProxy]:
    # The guarded write (sql.WRITE_MANY) that records node "a" as succeeded and claims "b".
    triggers = (b'"set_execution"', b'"node_id":"a","status":"succeeded"')
    async with AnswerDroppingProxy(database_url, *triggers) as proxy:
        yield proxy


async def test_a_committed_write_whose_answer_was_lost_is_not_taken_for_someone_elses(
    proxy_for_completion_of_a: AnswerDroppingProxy,
    pg_schema: str,
    redis_url: str,
    key_prefix: str,
) -> None:
    """Node a's result (which claims b) commits, but its answer is lost with the
    connection. The store retries; the retry finds a already succeeded — by its own first
    try. It must carry on as if the write had answered: b's job is sent at once and b runs
    once. (Treated as somebody else's write, b's job is never sent: b waits for the
    sweeper, ``stale_after_seconds`` + up to ``sweep_interval_seconds`` later.)"""
    proxy = proxy_for_completion_of_a
    runs: list[tuple[str, str, int]] = []
    store = PostgresExecutionStore(
        proxy.url(), schema=pg_schema, apply_migrations=False, min_pool_size=1, max_pool_size=4
    )
    engine = WorkflowEngine(
        recording_registry(runs),
        store,
        redis_url=redis_url,
        key_prefix=key_prefix,
        poll_delay=0.2,
        sweep_interval_seconds=15,
        stale_after_seconds=30,
    )
    async with engine:
        await engine.register_workflow(
            {"id": "chain", "nodes": [{"id": "a", "type": "work", "outputs": ["b"]},
                                      {"id": "b", "type": "work"}]}
        )  # fmt: skip
        await engine.start_workers(4)
        proxy.armed = 1
        started = time.monotonic()
        eid = await engine.enqueue_workflow("chain", 1)
        try:
            with contextlib.suppress(ExecutionWaitTimeoutError):
                await engine.wait_for_execution(eid, timeout=5)
            took = time.monotonic() - started
            state = await engine.get_execution(eid)
        finally:
            await engine.stop_workers(grace_seconds=1)
            await engine.purge()
    assert proxy.dropped == 1, "the proxy never cut the write: the test proved nothing"
    nodes = {n: (r.status.value, r.attempts) for n, r in state.node_results.items()}
    assert state.status == "completed", (
        f"{took:.1f} s after it started the execution is {state.status.value}, nodes "
        f"{nodes}: b was claimed by a's committed write, but its job was never sent"
    )
    assert sorted((node, attempt) for _, node, attempt in runs) == [("a", 1), ("b", 1)]
    assert {r.attempts for r in state.node_results.values()} == {1}
