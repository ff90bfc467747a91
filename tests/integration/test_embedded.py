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
