"""Fixtures of the chaos tests: worker processes of ``tests.chaos.app`` (through the
multi-process harness), a private Redis server a test may flush or restart, a TCP proxy in
front of PostgreSQL a test may cut, and an audit of the store's writes.

The shared Redis and PostgreSQL servers are never stopped or flushed: a test that breaks
Redis gets a redis-server of its own, and a test that breaks PostgreSQL breaks only the
proxy its workers connect through.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
import pytest
import redis

from spane_py import WorkflowEngine
from spane_py.stores.postgres.store import PostgresExecutionStore
from tests.chaos.app import EventRecord, build_registry
from tests.multiprocess.conftest import (  # noqa: F401  (fixtures used by the chaos tests)
    _purge_prefix,
    db,
    record_path,
    worker_env,
    workers,
)

CHAOS_APP = "tests.chaos.app:make_engine"

MakeProducer = Callable[..., Awaitable[WorkflowEngine]]


@pytest.fixture
async def make_producer(
    database_url: str, pg_schema: str, redis_url: str, key_prefix: str
) -> AsyncIterator[MakeProducer]:
    """``await make_producer(redis_url=...)``: the test's own engine (registers workflows,
    enqueues; runs no worker), on the test's Redis unless told otherwise. Closed at the end."""
    engines: list[WorkflowEngine] = []

    async def make(*, redis_url: str = redis_url) -> WorkflowEngine:
        store = PostgresExecutionStore(
            database_url,
            schema=pg_schema,
            apply_migrations=False,
            min_pool_size=1,
            max_pool_size=4,
        )
        engine = WorkflowEngine(
            build_registry(EventRecord(os.devnull)),
            store,
            redis_url=redis_url,
            key_prefix=key_prefix,
        )
        await engine.start()
        engines.append(engine)
        return engine

    try:
        yield make
    finally:
        for engine in engines:
            await engine.close()


# The audit: every write that makes a node succeeded (or changes a succeeded node's output)
# and every write that settles an execution adds a row, whoever wrote it. "Applied once" is
# then counted in PostgreSQL itself, independently of the engine's bookkeeping.
_AUDIT_SQL = """
CREATE TABLE {s}.chaos_applied (
    id bigserial PRIMARY KEY,
    kind text NOT NULL,
    execution_id uuid NOT NULL,
    node_id text,
    status text NOT NULL,
    token text,
    at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE FUNCTION {s}.chaos_audit_node() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status = 'succeeded' AND (TG_OP = 'INSERT' OR OLD.status IS DISTINCT FROM NEW.status
                                     OR OLD.output IS DISTINCT FROM NEW.output) THEN
        INSERT INTO {s}.chaos_applied (kind, execution_id, node_id, status, token)
        VALUES ('node', NEW.execution_id, NEW.node_id, NEW.status, NEW.output #>> '{{}}');
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER chaos_audit_node AFTER INSERT OR UPDATE ON {s}.node_results
    FOR EACH ROW EXECUTE FUNCTION {s}.chaos_audit_node();
CREATE FUNCTION {s}.chaos_audit_execution() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status IN ('completed', 'failed', 'cancelled')
       AND (TG_OP = 'INSERT' OR OLD.status IS DISTINCT FROM NEW.status) THEN
        INSERT INTO {s}.chaos_applied (kind, execution_id, status)
        VALUES ('execution', NEW.execution_id, NEW.status);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER chaos_audit_execution AFTER INSERT OR UPDATE ON {s}.executions
    FOR EACH ROW EXECUTE FUNCTION {s}.chaos_audit_execution();
"""


class Audit:
    def __init__(self, conn: asyncpg.Connection, schema: str) -> None:
        self.db = conn
        self.schema = schema

    async def install(self) -> None:
        await self.db.execute(_AUDIT_SQL.format(s=self.schema))

    async def node_applications(self) -> dict[tuple[str, str], list[str]]:
        """(execution_id, node_id) -> the tokens written as its succeeded result, in order."""
        rows = await self.db.fetch(
            f"SELECT execution_id::text, node_id, token FROM {self.schema}.chaos_applied "
            "WHERE kind = 'node' ORDER BY id"
        )
        out: dict[tuple[str, str], list[str]] = {}
        for r in rows:
            out.setdefault((r[0], r[1]), []).append(r[2])
        return out

    async def settlements(self) -> dict[str, list[str]]:
        """execution_id -> the terminal statuses written for it, in order."""
        rows = await self.db.fetch(
            f"SELECT execution_id::text, status FROM {self.schema}.chaos_applied "
            "WHERE kind = 'execution' ORDER BY id"
        )
        out: dict[str, list[str]] = {}
        for r in rows:
            out.setdefault(r[0], []).append(r[1])
        return out


@pytest.fixture
async def audit(database_url: str, pg_schema: str) -> AsyncIterator[Audit]:
    """The audit, installed in the test's schema (dropped with it)."""
    conn = await asyncpg.connect(database_url)
    try:
        found = Audit(conn, pg_schema)
        await found.install()
        yield found
    finally:
        await conn.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """A redis-server of the test's own (TCP, localhost, nothing saved to disk)."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            from spane_py.embedded import redis_server_binary

            binary = redis_server_binary()
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        log = open(self.workdir / f"redis-{self.starts}.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + 10
        while True:
            try:
                with redis.Redis.from_url(self.url) as client:
                    client.ping()
                return
            except redis.ConnectionError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL: everything in it is gone."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def flushall(self) -> None:
        with redis.Redis.from_url(self.url) as client:
            client.flushall()


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    with tempfile.TemporaryDirectory(prefix="chaos-redis-") as workdir:
        server = RedisServer(Path(workdir))
        server.start()
        try:
            yield server
        finally:
            server.kill()


class PgProxy:
    """A TCP proxy to PostgreSQL, run by a thread of its own (its event loop keeps relaying
    whatever the test's loop does). ``cut()``: every connection through it is reset and the
    port refuses new ones; ``stall()``: bytes stop flowing both ways and new connections
    hang (a network partition); ``restore()``: back to normal."""

    def __init__(self, target: tuple[str, int] | str) -> None:
        self.target = target  # (host, port), or a unix socket's path
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server: asyncio.Server | None = None
        self.conns: set[asyncio.StreamWriter] = set()
        self.flowing: asyncio.Event | None = None
        self.connections = 0

    def start(self) -> None:
        self.thread.start()
        self._call(self._start_async())

    def _call(self, coro: Awaitable[None]) -> None:
        asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=10)  # type: ignore[arg-type]

    async def _start_async(self) -> None:
        if self.flowing is None:
            self.flowing = asyncio.Event()
            self.flowing.set()
        self.server = await asyncio.start_server(
            self._handle, "127.0.0.1", self.port, reuse_address=True
        )

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert self.flowing is not None
        self.conns.add(writer)
        self.connections += 1
        try:
            await self.flowing.wait()
            if isinstance(self.target, str):
                up_reader, up_writer = await asyncio.open_unix_connection(self.target)
            else:
                up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            self.conns.discard(writer)
            return
        self.conns.add(up_writer)
        await asyncio.gather(
            self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True
        )
        for w in (writer, up_writer):
            w.transport.abort()
            self.conns.discard(w)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert self.flowing is not None
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                if not self.flowing.is_set():
                    await self.flowing.wait()
                writer.write(data)
                await writer.drain()
        finally:
            writer.transport.abort()  # one side gone: the other goes too

    def cut(self) -> None:
        async def go() -> None:
            assert self.server is not None
            self.server.close()  # no longer listening: connects are refused
            for w in list(self.conns):
                w.transport.abort()
            self.conns.clear()

        self._call(go())

    def stall(self) -> None:
        async def go() -> None:
            assert self.flowing is not None
            self.flowing.clear()

        self._call(go())

    def restore(self) -> None:
        async def go() -> None:
            assert self.flowing is not None
            assert self.server is not None
            if not self.server.is_serving():
                await self._start_async()
            self.flowing.set()

        self._call(go())

    def close(self) -> None:
        async def go() -> None:
            if self.server is not None:
                self.server.close()
            for w in list(self.conns):
                w.transport.abort()

        with contextlib.suppress(Exception):
            self._call(go())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        if not self.thread.is_alive():
            self.loop.close()


@pytest.fixture
def pg_proxy(database_url: str) -> Iterator[tuple[PgProxy, str]]:
    """The proxy, and ``database_url`` rewritten to go through it (a unix-socket URL, as the
    embedded server's, becomes a TCP one)."""
    parts = urlsplit(database_url)
    query = dict(parse_qsl(parts.query))
    socket_dir = query.pop("host", None)
    target: tuple[str, int] | str
    if socket_dir and socket_dir.startswith("/"):
        target = f"{socket_dir}/.s.PGSQL.{parts.port or 5432}"
    else:
        target = (parts.hostname or "127.0.0.1", parts.port or 5432)
    proxy = PgProxy(target)
    proxy.start()
    userinfo = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
    url = urlunsplit(
        parts._replace(netloc=f"{userinfo}127.0.0.1:{proxy.port}", query=urlencode(query))
    )
    try:
        yield proxy, url
    finally:
        proxy.close()


def rss_kb(pid: int) -> int:
    """A process's resident set (``VmRSS`` of ``/proc/<pid>/status``), in kB."""
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")
