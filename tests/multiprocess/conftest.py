"""Fixtures of the multi-process tests: worker processes (``spane worker
tests.multiprocess.app:make_engine``) on the test's Redis, PostgreSQL schema and key prefix.

Each worker runs in a process group of its own, its output goes to a log file under the
test's temporary directory, and every worker still alive at the end of the test is killed
(SIGKILL to the group) and reaped. The test's Redis keys are deleted afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
import redis

from spane_py import WorkflowEngine
from spane_py.stores.postgres.store import PostgresExecutionStore
from tests.multiprocess.app import FileRecord, build_registry

REPO_ROOT = Path(__file__).resolve().parents[2]
APP = "tests.multiprocess.app:make_engine"


@dataclass
class WorkerProcess:
    proc: subprocess.Popen[bytes]
    log: Path
    generation: int
    ready_dir: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def ready(self) -> bool:
        return (self.ready_dir / str(self.pid)).exists()


class Workers:
    """Starts, signals and reaps worker processes."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.ready_dir = logs / "ready"
        self.ready_dir.mkdir()
        self.env["MP_READY_DIR"] = str(self.ready_dir)
        self.started: list[WorkerProcess] = []

    def start(
        self,
        count: int,
        *,
        concurrency: int = 20,
        generation: int = 1,
        app: str = APP,
        **env: str,
    ) -> list[WorkerProcess]:
        """Start ``count`` ``spane worker <app>`` processes; ``env`` adds to their
        environment."""
        out = []
        for _ in range(count):
            log = self.logs / f"worker-{len(self.started)}.log"
            with open(log, "wb") as f:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "spane_py.cli", "worker", app,
                     "--concurrency", str(concurrency)],
                    cwd=REPO_ROOT,
                    env={**self.env, **env},
                    stdin=subprocess.DEVNULL,
                    stdout=f,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own process group: killpg reaches all of it
                )  # fmt: skip
            worker = WorkerProcess(proc, log, generation, self.ready_dir)
            self.started.append(worker)
            out.append(worker)
        return out

    async def wait_ready(self, workers: list[WorkerProcess], timeout: float = 60.0) -> None:
        """Until each worker has connected to Redis and PostgreSQL and runs its loop."""
        deadline = time.monotonic() + timeout
        while not all(w.ready() for w in workers):
            for w in workers:
                if w.proc.poll() is not None:
                    raise AssertionError(
                        f"worker {w.pid} exited with {w.proc.returncode}:\n{self.tail(w)}"
                    )
            if time.monotonic() > deadline:
                raise AssertionError(f"workers not ready after {timeout} s:\n{self.tails()}")
            await asyncio.sleep(0.05)

    def signal(self, workers: list[WorkerProcess], sig: int) -> None:
        for w in workers:
            if w.proc.poll() is None:
                os.killpg(w.pid, sig)

    async def wait_exit(self, workers: list[WorkerProcess], timeout: float = 30.0) -> list[int]:
        deadline = time.monotonic() + timeout
        while any(w.proc.poll() is None for w in workers):
            if time.monotonic() > deadline:
                raise AssertionError(f"workers still running after {timeout} s")
            await asyncio.sleep(0.02)
        return [w.proc.returncode for w in workers]

    def kill_all(self) -> None:
        for w in self.started:
            if w.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(w.pid, signal.SIGKILL)
            w.proc.wait(timeout=30)

    def tail(self, worker: WorkerProcess, lines: int = 30) -> str:
        text = worker.log.read_text(encoding="utf-8", errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def tails(self) -> str:
        return "\n".join(f"--- worker {w.pid}:\n{self.tail(w)}" for w in self.started)

    def errors(self) -> list[str]:
        """Lines of the worker logs at ERROR level or with a traceback."""
        found = []
        for w in self.started:
            for line in w.log.read_text(encoding="utf-8", errors="replace").splitlines():
                if "ERROR" in line or "Traceback" in line or "CRITICAL" in line:
                    found.append(f"{w.pid}: {line}")
        return found


@pytest.fixture
def record_path(tmp_path: Path) -> Path:
    return tmp_path / "runs.txt"


@pytest.fixture
def worker_env(
    redis_url: str, database_url: str, pg_schema: str, key_prefix: str, record_path: Path
) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SPANE_", "MP_")) and k not in ("REDIS_URL", "DATABASE_URL")
    }
    env.update(
        REDIS_URL=redis_url,
        DATABASE_URL=database_url,
        SPANE_KEY_PREFIX=key_prefix,
        SPANE_DB_SCHEMA=pg_schema,
        SPANE_LOG_LEVEL="WARNING",  # INFO logs every node: real, but slow on a small box
        MP_RECORD_FILE=str(record_path),
        PYTHONUNBUFFERED="1",
    )
    return env


@pytest.fixture
def workers(worker_env: dict[str, str], tmp_path: Path) -> Iterator[Workers]:
    manager = Workers(worker_env, tmp_path)
    try:
        yield manager
    finally:
        manager.kill_all()


@pytest.fixture(autouse=True)
def _purge_prefix(redis_url: str, key_prefix: str) -> Iterator[None]:
    yield
    client = redis.Redis.from_url(redis_url)
    try:
        for pattern in (f"{key_prefix}:*", f"arq:*:{key_prefix}:*"):
            keys = list(client.scan_iter(match=pattern, count=500))
            if keys:
                client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
async def producer(
    database_url: str, pg_schema: str, redis_url: str, key_prefix: str
) -> AsyncIterator[WorkflowEngine]:
    """The test's own engine: registers workflows and enqueues; it runs no worker."""
    store = PostgresExecutionStore(
        database_url, schema=pg_schema, apply_migrations=False, min_pool_size=1, max_pool_size=4
    )
    record = FileRecord(os.devnull)
    engine = WorkflowEngine(
        build_registry(record), store, redis_url=redis_url, key_prefix=key_prefix
    )
    async with engine:
        yield engine
    record.close()


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A plain connection for the test's own queries (outside the store)."""
    conn = await asyncpg.connect(database_url)
    try:
        yield conn
    finally:
        await conn.close()
