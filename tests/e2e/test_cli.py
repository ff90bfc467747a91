"""``spane`` as a user runs it: a subprocess per command."""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from spane_py import __version__
from spane_py.demo import DEMO_NODES
from tests.e2e.conftest import REPO_ROOT, Run


def test_version(spane: Run) -> None:
    proc = spane("--version", timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"spane {__version__}"


def test_help_lists_the_commands(spane: Run) -> None:
    proc = spane("--help", timeout=30)
    assert proc.returncode == 0, proc.stderr
    for command in ("demo", "worker", "run"):
        assert command in proc.stdout


# spane demo --------------------------------------------------------------------------


@pytest.mark.slow
def test_demo_with_zero_setup_starts_an_embedded_redis(spane: Run, cli_env: dict[str, str]) -> None:
    env = {k: v for k, v in cli_env.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    proc = spane("demo", env=env, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "embedded" in out
    for node in DEMO_NODES:
        assert node in out, f"node {node!r} missing from:\n{out}"
    assert "completed" in out
    assert "1/1 executions completed" in out
    assert "skipped" in out  # the branch not taken (review, for the first sample order)
    assert "chose approve" in out


def test_demo_runs_several_executions_down_both_branches(spane: Run) -> None:
    proc = spane("demo", "--executions", "4", "--show", "2", timeout=90)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "chose approve" in out
    assert "chose review" in out
    assert "2 more executions not shown" in out
    assert "4/4 executions completed" in out


def test_demo_prints_ascii_when_the_terminal_is_not_unicode(
    spane: Run, cli_env: dict[str, str]
) -> None:
    proc = spane("demo", env={**cli_env, "PYTHONIOENCODING": "ascii"}, timeout=90)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.isascii()
    assert "1/1 executions completed" in proc.stdout


def test_demo_rejects_a_bad_count(spane: Run) -> None:
    proc = spane("demo", "--executions", "0", timeout=30)
    assert proc.returncode == 2


# spane worker ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("app", "message"),
    [
        ("no_colon", "APP must look like 'module:attribute'"),
        ("tests.e2e.app:", "APP must look like 'module:attribute'"),
        ("bad-module:engine", "APP must look like 'module:attribute'"),
        ("tests.e2e.no_such_module:engine", "cannot import module 'tests.e2e.no_such_module'"),
        ("tests.e2e.app:missing", "'tests.e2e.app' has no attribute 'missing'"),
        ("tests.e2e.app:engine.nope", "'tests.e2e.app.engine' has no attribute 'nope'"),
        ("tests.e2e.app:not_an_engine", "is a str, not a WorkflowEngine"),
        ("tests.e2e.app:bad_factory", "returned 42 (int), not a WorkflowEngine"),
        ("tests.e2e.app:failing_factory", "failed: RuntimeError: no database today"),
        ("tests.e2e.broken_app:engine", "importing module 'tests.e2e.broken_app' failed"),
    ],
)
def test_worker_with_a_bad_app_exits_2_naming_the_problem(
    spane: Run, app: str, message: str
) -> None:
    proc = spane("worker", app, "--burst", timeout=30)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "error:" in proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("app", ["tests.e2e.app:engine", "tests.e2e.app:sync_factory"])
def test_worker_burst_starts_and_exits_cleanly(spane: Run, app: str, key_prefix: str) -> None:
    proc = spane("worker", app, "--burst", "--concurrency", "2", timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"spane worker {app}: key prefix '{key_prefix}', concurrency 2, burst" in proc.stderr
    assert f"spane worker {app} stopped" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_worker_takes_its_concurrency_from_the_environment(
    spane: Run, cli_env: dict[str, str]
) -> None:
    env = {**cli_env, "SPANE_CONCURRENCY": "7"}
    proc = spane("worker", "tests.e2e.app:create_engine", "--burst", env=env, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "concurrency 7, burst" in proc.stderr


def test_worker_refuses_a_bad_setting(spane: Run, cli_env: dict[str, str]) -> None:
    env = {**cli_env, "SPANE_CONCURRENCY": "many"}
    proc = spane("worker", "tests.e2e.app:engine", "--burst", env=env, timeout=30)
    assert proc.returncode == 2
    assert "SPANE_CONCURRENCY" in proc.stderr


# spane run ---------------------------------------------------------------------------


def test_run_prints_the_execution_tree(spane: Run) -> None:
    data = json.dumps({"name": "Ada", "loud": True})
    proc = spane("run", "tests.e2e.app:create_engine", "e2e-greet", "--data", data)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "completed" in out
    assert "e2e-greet" in out
    for node in ("hello", "decide", "shout", "whisper"):
        assert node in out
    assert '"HELLO ADA!"' in out
    assert "chose shout" in out
    assert "skipped" in out


def test_run_json_prints_the_final_state(spane: Run) -> None:
    proc = spane(
        "run", "tests.e2e.app:create_engine", "e2e-greet", "--data", '{"name": "Bo"}', "--json"
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    state = json.loads(proc.stdout)
    assert state["status"] == "completed"
    assert state["workflow_id"] == "e2e-greet"
    assert state["initial_data"] == {"name": "Bo"}
    nodes = state["node_results"]
    assert nodes["whisper"]["status"] == "succeeded"
    assert nodes["whisper"]["data"] == "hello bo..."
    assert nodes["shout"]["status"] == "skipped"


def test_run_of_a_failing_execution_exits_1(spane: Run) -> None:
    proc = spane(
        "run", "tests.e2e.app:create_engine", "e2e-greet", "--data", '"not an object"', "--json"
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    state = json.loads(proc.stdout)
    assert state["status"] == "failed"
    assert state["node_results"]["hello"]["status"] == "failed"


def test_run_with_bad_json_data_exits_2(spane: Run) -> None:
    proc = spane(
        "run", "tests.e2e.app:create_engine", "e2e-greet", "--data", "{name: Ada}", timeout=30
    )
    assert proc.returncode == 2
    assert "--data is not valid JSON" in proc.stderr


def test_run_of_an_unknown_workflow_exits_2(spane: Run) -> None:
    proc = spane("run", "tests.e2e.app:create_engine", "no-such-workflow", timeout=30)
    assert proc.returncode == 2
    assert "workflow 'no-such-workflow' is not registered" in proc.stderr


def test_run_times_out_with_exit_1(spane: Run) -> None:
    proc = spane(
        "run", "tests.e2e.app:create_engine", "e2e-slow", "--timeout", "0.3", "--json", timeout=60
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "is still running after 0.3 s" in proc.stderr
    assert json.loads(proc.stdout)["status"] == "running"


def test_the_console_script_is_installed() -> None:
    # `pip install -e .` puts `spane` next to the interpreter; `make` relies on it.
    script = Path(sys.executable).parent / "spane"
    if not script.exists():
        pytest.skip("spane_py is not installed in this interpreter's environment")
    assert os.access(script, os.X_OK)


def _catches(pid: int, sig: signal.Signals) -> bool | None:
    """Whether process ``pid`` has a handler installed for ``sig`` (``SigCgt`` in
    ``/proc/<pid>/status``); None where that cannot be read (not Linux)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (sig - 1) & 1)
    return None


def _wait_for_signal_handlers(pid: int, deadline: float) -> None:
    """Until the worker handles SIGTERM. Python handles SIGINT from the start (with
    KeyboardInterrupt); the worker installs its SIGINT handler, then its SIGTERM one, in one
    go, so SIGTERM's stands for both."""
    while not (caught := _catches(pid, signal.SIGTERM)):
        if caught is None:  # no /proc: the handlers come within a moment of the line
            time.sleep(1.0)
            return
        assert time.monotonic() < deadline, "the worker never installed its signal handlers"
        time.sleep(0.02)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_worker_stops_cleanly_on_a_signal(cli_env: dict[str, str], sig: signal.Signals) -> None:
    with subprocess.Popen(
        [sys.executable, "-m", "spane_py.cli", "worker", "tests.e2e.app:engine"],
        cwd=REPO_ROOT,
        env=cli_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    ) as proc:
        try:
            assert proc.stderr is not None
            seen = b""
            deadline = time.monotonic() + 30
            while b"key prefix" not in seen:
                assert time.monotonic() < deadline, f"the worker did not start:\n{seen!r}"
                ready, _, _ = select.select([proc.stderr], [], [], 0.5)
                if ready:
                    chunk = os.read(proc.stderr.fileno(), 65536)
                    assert chunk, f"the worker exited early ({proc.poll()}):\n{seen!r}"
                    seen += chunk
            # The worker installs its signal handlers just after that line.
            _wait_for_signal_handlers(proc.pid, time.monotonic() + 30)
            proc.send_signal(sig)
            rest = proc.communicate(timeout=30)[1]
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    err = (seen + rest).decode()
    assert proc.returncode == 0, err
    assert "spane worker tests.e2e.app:engine stopped" in err
    assert "Traceback" not in err


def test_worker_without_redis_exits_1(spane: Run, cli_env: dict[str, str]) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**cli_env, "REDIS_URL": f"redis://127.0.0.1:{port}/0"}
    proc = spane("worker", "tests.e2e.app:engine", "--burst", env=env, timeout=60)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "error:" in proc.stderr
    assert "Traceback" not in proc.stderr
