"""The embedded Redis: starts, serves, stops, and never outlives its parent process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import redis

from spane_py.embedded import EmbeddedRedis


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"


def test_start_serve_stop() -> None:
    server = EmbeddedRedis()
    url = server.start()
    assert url.startswith("unix://")
    assert server.start() == url  # idempotent
    client = redis.Redis.from_url(url)
    try:
        assert client.ping()
        assert client.config_get("save")["save"] == ""  # nothing written to disk
    finally:
        client.close()
    pid = server.pid
    assert pid is not None
    server.stop()
    assert not server.running
    assert not _alive(pid)
    assert not os.path.exists(url.removeprefix("unix://"))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux")
def test_server_dies_with_a_killed_parent() -> None:
    code = (
        "from spane_py.embedded import EmbeddedRedis; import time\n"
        "s = EmbeddedRedis(); s.start(); print(s.pid, flush=True); time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    assert _alive(child)
    parent.send_signal(signal.SIGKILL)
    parent.wait(timeout=10)
    parent.stdout.close()
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)


# A stand-in for redis-server that binds its socket (so the file exists) and only starts
# accepting connections after a pause: what Redis does for a moment on a busy machine.
_SLOW_SERVER = r"""#!{python}
import socket, sys, time
args = sys.argv[1:]
path = args[args.index("--unixsocket") + 1]
sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
sock.bind(path)
time.sleep(0.6)
sock.listen(8)
while True:
    conn, _ = sock.accept()
    while data := conn.recv(4096):  # one reply per command: PONG to PING, OK to the rest
        for command in data.split(b"*")[1:] if data.startswith(b"*") else [data]:
            conn.sendall(b"+PONG\r\n" if b"PING" in command.upper() else b"+OK\r\n")
    conn.close()
"""


def test_ready_means_it_answered_ping(tmp_path: object) -> None:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    binary = tmp_path / "slow-redis-server"
    binary.write_text(_SLOW_SERVER.format(python=sys.executable))
    binary.chmod(0o755)
    server = EmbeddedRedis(binary=str(binary))
    url = server.start()
    try:
        # The socket file existed 0.6 s before the server accepted: start() waited for PONG.
        client = redis.Redis.from_url(url, socket_connect_timeout=1)
        try:
            assert client.ping()
        finally:
            client.close()
    finally:
        server.stop()


def test_parallel_starts_all_answer_at_once() -> None:
    """Four processes start servers side by side, each pings the moment start() returns."""
    code = (
        "import redis\n"
        "from spane_py.embedded import EmbeddedRedis\n"
        "for _ in range(10):\n"
        "    s = EmbeddedRedis(); url = s.start()\n"
        "    c = redis.Redis.from_url(url); assert c.ping(); c.close(); s.stop()\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    failures = []
    for proc in procs:
        _, err = proc.communicate(timeout=100)
        if proc.returncode != 0:
            failures.append(err[-800:])
    assert not failures, failures


_PG_SURVIVES = r"""
import asyncio
import subprocess
import sys

import asyncpg


async def _ping(url, checkpoint=False):
    conn = await asyncpg.connect(url, timeout=20)
    try:
        if checkpoint:  # the server opens its files again: what died with PANIC before
            await conn.execute("CHECKPOINT")
        return await conn.fetchval("SELECT 1")
    finally:
        await conn.close()


def test_embedded_pg_outlives_another_pytest_run(database_url, tmp_path):
    assert "spane-test-pg-" in database_url, database_url
    assert asyncio.run(_ping(database_url)) == 1
    # Another pytest run by the same user: it takes a tmp_path too, which resets the mode
    # of pytest's temporary root to 0700.
    other = tmp_path / "other"
    other.mkdir()
    (other / "test_other.py").write_text("def test_x(tmp_path):\n    assert tmp_path.exists()\n")
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-c", "/dev/null",
         "--rootdir", str(other), str(other)],
        check=True, capture_output=True, timeout=120,
    )
    assert asyncio.run(_ping(database_url, checkpoint=True)) == 1
"""


@pytest.mark.slow
def test_test_suites_embedded_postgres_survives_other_pytest_runs(tmp_path: object) -> None:
    """tests/conftest.py's embedded PostgreSQL (no DATABASE_URL) keeps working while another
    pytest run by the same user starts: its data lives outside pytest's temporary root."""
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    inner = tmp_path / "inner"
    inner.mkdir()
    (inner / "test_inner.py").write_text(_PG_SURVIVES)
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "tests.conftest",
            "-c",
            "/dev/null",
            "--rootdir",
            str(inner),
            "-W",
            "ignore",
            str(inner),
        ],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=170,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "1 passed" in proc.stdout
