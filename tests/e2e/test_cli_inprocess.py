"""The ``spane`` command run in this process (typer's runner), for cases a subprocess
cannot set up."""

from __future__ import annotations

import os

import pytest
from typer.testing import CliRunner

from spane_py import demo
from spane_py.cli import app


@pytest.fixture
def runner(redis_url: str, key_prefix: str, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    # The same environment cli_env gives subprocesses: this test's Redis and prefix, and no
    # DATABASE_URL (CI sets one: the in-memory store must not become the shared database).
    for name in list(os.environ):
        if name == "DATABASE_URL" or name.startswith("SPANE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("SPANE_KEY_PREFIX", key_prefix)
    return CliRunner()


def test_demo_exits_1_when_an_execution_fails(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No "customer": enrich raises KeyError, and without a retry policy the execution fails.
    monkeypatch.setattr(demo, "SAMPLE_ORDERS", ({"order_id": 1, "amount": 10.0},))
    result = runner.invoke(app, ["demo"])
    assert result.exit_code == 1, result.output
    assert "failed" in result.output
    assert "KeyError" in result.output or "customer" in result.output
    assert "0/1 executions completed (1 failed)" in result.output


def test_demo_succeeds_in_process(runner: CliRunner) -> None:
    result = runner.invoke(app, ["demo", "-n", "2"])
    assert result.exit_code == 0, result.output
    assert "2/2 executions completed" in result.output
