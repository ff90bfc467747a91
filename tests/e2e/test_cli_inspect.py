"""``spane executions``, ``spane trace`` and ``spane dlq`` read what the demo left in
PostgreSQL, in a schema of the test's own."""

from __future__ import annotations

import json

from tests.e2e.conftest import Run, pg_env


def test_executions_trace_and_dlq_commands(
    spane: Run, cli_env: dict[str, str], database_url: str, fresh_schema: str
) -> None:
    env = {**pg_env(cli_env, database_url, fresh_schema), "COLUMNS": "160"}
    demo = spane("demo", "--store", "postgres", "-n", "2", "--show", "0", env=env, timeout=120)
    assert demo.returncode == 0, demo.stdout + demo.stderr

    listed = spane("executions", "list", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert len(rows) == 2
    assert {r["status"] for r in rows} == {"completed"}
    execution_id = rows[0]["execution_id"]

    table = spane("executions", "list", "--status", "completed", env=env)
    assert table.returncode == 0, table.stderr
    assert execution_id[:8] in table.stdout

    shown = spane("executions", "show", execution_id, env=env)
    assert shown.returncode == 0, shown.stderr
    assert "completed" in shown.stdout
    assert execution_id in shown.stdout
    as_json = json.loads(spane("executions", "show", execution_id, "--json", env=env).stdout)
    assert as_json["execution_id"] == execution_id
    nodes = [n for n, r in as_json["node_results"].items() if r["status"] == "succeeded"]

    gantt = spane("trace", execution_id, "--width", "40", env=env)
    assert gantt.returncode == 0, gantt.stderr
    bar_lines = [line for line in gantt.stdout.splitlines() if "█" in line or "#" in line]
    assert len(bar_lines) >= len(nodes)  # one bar per node attempt
    for node_id in nodes:
        assert node_id in gantt.stdout
    traced = json.loads(spane("trace", execution_id, "--json", env=env).stdout)
    assert {s["node_id"] for s in traced["spans"]} >= set(nodes)

    dead = spane("dlq", "list", "--json", env=env)
    assert dead.returncode == 0, dead.stderr
    assert json.loads(dead.stdout) == []
    missing = spane("dlq", "retry", "424242", env=env)
    assert missing.returncode == 1
    assert "no dead-letter item has id 424242" in missing.stderr

    unknown = spane("executions", "show", "00000000-0000-7000-8000-000000000000", env=env)
    assert unknown.returncode == 1
    assert "does not exist" in unknown.stderr


def test_inspect_commands_need_the_postgres_store(spane: Run, cli_env: dict[str, str]) -> None:
    env = {k: v for k, v in cli_env.items() if k != "DATABASE_URL"}
    proc = spane("executions", "list", "--store", "memory", env=env)
    assert proc.returncode == 2
    assert "these commands read the PostgreSQL store" in proc.stderr
