"""``spane api``: serves the API and the dashboard, runs a worker in its process when
asked, honours SPANE_API_TOKEN, stops cleanly on a signal, and refuses a bad APP."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import REPO_ROOT, Run

TOKEN = "cli-test-token"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def served(cli_env: dict[str, str], tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """``spane api`` with the dashboard test app and a worker, on a free port: (url, log)."""
    port = _free_port()
    log = tmp_path / "api.log"
    env = {**cli_env, "SPANE_API_TOKEN": TOKEN, "SPANE_LOG_LEVEL": "INFO"}
    args = [sys.executable, "-m", "spane_py.cli", "api", "--app",
            "tests.e2e.dashboard_app:create_engine", "--port", str(port),
            "--worker-concurrency", "2"]  # fmt: skip
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            args, cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, f"spane api exited:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"spane api did not start:\n{log.read_text()}"
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        yield url, log
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        text = log.read_text()
        assert proc.returncode == 0, text
        assert "spane api stopped" in text
        assert "Traceback" not in text
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_api_serves_runs_and_stops(served: tuple[str, Path]) -> None:
    url, log = served
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=url, timeout=10) as client:
        assert client.get("/api/workflows").status_code == 401
        workflows = client.get("/api/workflows", headers=auth).json()
        assert {w["workflow_id"] for w in workflows} == {"daily-report", "flaky-sync"}
        res = client.post("/api/workflows/daily-report/executions", json={}, headers=auth)
        assert res.status_code == 201, res.text
        execution_id = res.json()["execution_id"]
        deadline = time.monotonic() + 30
        while True:
            state = client.get(f"/api/executions/{execution_id}", headers=auth).json()
            if state["status"] == "completed":
                break
            assert time.monotonic() < deadline, state
            time.sleep(0.1)
        assert state["node_results"]["publish"]["data"] == "3 rows, total 16"
        health = client.get("/healthz").json()
        assert health["status"] == "ok"
        assert health["workers"]["live"] == 1
        assert "<title>spane · executions</title>" in client.get("/").text
        metrics = client.get("/metrics", headers=auth).text
        assert 'spane_workflows_completed_total{workflow_id="daily-report"} 1.0' in metrics
        assert client.get("/openapi.json").json()["info"]["title"] == "spane_py"
    assert "auth on" in log.read_text()


def test_api_streams_events_live(served: tuple[str, Path]) -> None:
    url, _ = served
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with (
        httpx.Client(base_url=url, timeout=30) as client,
        client.stream("GET", "/api/events", headers=auth) as stream,
    ):
        assert stream.status_code == 200
        res = client.post("/api/workflows/daily-report/executions", json={}, headers=auth)
        execution_id = res.json()["execution_id"]
        seen: list[str] = []
        for line in stream.iter_lines():
            if line.startswith("event:"):
                seen.append(line.split(":", 1)[1].strip())
            if (
                line.startswith("data:")
                and execution_id in line
                and (seen and seen[-1] == "execution.completed")
            ):
                break
    assert seen[0] == "execution.started"  # nothing lost between subscribing and the start
    assert "node.completed" in seen
    assert seen[-1] == "execution.completed"


def test_api_with_a_bad_app_exits_2(spane: Run) -> None:
    proc = spane("api", "--app", "no_such_module:engine", "--port", "0", timeout=60)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "cannot import module 'no_such_module'" in proc.stderr


def test_api_without_redis_exits_1(spane: Run, cli_env: dict[str, str]) -> None:
    env = {**cli_env, "REDIS_URL": f"redis://127.0.0.1:{_free_port()}/0"}
    proc = spane("api", "--port", "0", env=env, timeout=60)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "cannot reach Redis" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_help_lists_api(spane: Run) -> None:
    proc = spane("api", "--help", timeout=30)
    assert proc.returncode == 0, proc.stderr
    for option in ("--app", "--host", "--port", "--worker-concurrency", "--store"):
        assert option in proc.stdout
