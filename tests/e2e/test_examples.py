"""The examples run, print what the docs say, and are the docs' code, verbatim: every
```python block of README.md and docs/*.md is one of them."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tests.e2e.conftest import REPO_ROOT, Run, pg_env, run_process

EXAMPLES = REPO_ROOT / "examples"
DOCS = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]


def run_example(name: str, env: dict[str, str]) -> str:
    # Examples use the default key prefix: each runs on its own embedded Redis (their
    # zero-setup promise), never on a shared server where it would leave keys behind.
    env = {k: v for k, v in env.items() if k != "REDIS_URL"}
    proc = run_process([sys.executable, str(EXAMPLES / name)], env=env, timeout=90)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_quickstart_runs(cli_env: dict[str, str]) -> None:
    lines = run_example("quickstart.py", cli_env).splitlines()
    assert lines[0] == "execution completed"
    rows = {line.split()[0]: line.split(maxsplit=3)[1:] for line in lines[1:]}
    assert set(rows) == {
        "validate",
        "create_account",
        "fraud_check",
        "decide",
        "welcome_pro",
        "welcome_free",
    }
    assert rows["create_account"][:2] == ["succeeded", "attempts=2"]  # retried once
    assert rows["welcome_pro"] == ["succeeded", "attempts=1", "'Welcome to Pro, account 42!'"]
    assert rows["welcome_free"][0] == "skipped"


def test_json_workflow_runs(cli_env: dict[str, str]) -> None:
    out = run_example("json_workflow.py", cli_env)
    assert out.splitlines() == [
        "v1 price 80: completed, ran ['quote', 'check', 'buy']",
        "  buy at 80 EUR",
        "v1 price 120: completed, ran ['quote', 'check', 'wait']",
        "  wait at 120 EUR",
        "versions: 1 -> 2 (again: 2)",
        "v2 price 120: buy at 120 EUR",
    ]


def test_postgres_store_example_keeps_the_execution(
    cli_env: dict[str, str], database_url: str, fresh_schema: str
) -> None:
    # fresh_schema does not exist yet: apply_migrations=True creates it.
    lines = run_example("postgres_store.py", pg_env(cli_env, database_url, fresh_schema))
    first, *rest = lines.splitlines()
    assert re.fullmatch(r"ran [0-9a-f]{8}\.\.\.: completed", first), first
    assert rest == [
        "read back: completed, v1",
        # jsonb keeps 0, False and "" as they are, not the order of the keys
        "build returned {'age': 0, 'name': 'Ada', 'note': '', 'tags': [], 'admin': False}",
    ]


def _start_worker(
    env: dict[str, str], log: Path, app: str = "examples.postgres_app:create_engine"
) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "spane_py.cli", "worker", app, "--concurrency", "4"],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip


def _wait_ready(workers: list[subprocess.Popen[bytes]], logs: list[Path]) -> None:
    deadline = time.monotonic() + 60
    while not all("key prefix" in log.read_text(errors="replace") for log in logs):
        for proc, log in zip(workers, logs, strict=True):
            assert proc.poll() is None, f"a worker exited:\n{log.read_text(errors='replace')}"
        assert time.monotonic() < deadline, "the workers did not start"
        time.sleep(0.1)


def test_postgres_workers_example(
    spane: Run, cli_env: dict[str, str], database_url: str, fresh_schema: str, tmp_path: Path
) -> None:
    """What docs/deploying.md says: `spane db upgrade`, two `spane worker` processes, then
    `python examples/postgres_enqueue.py` from a third process."""
    env = pg_env(cli_env, database_url, fresh_schema)
    upgrade = spane("db", "upgrade", env=env)
    assert upgrade.returncode == 0, upgrade.stdout + upgrade.stderr
    logs = [tmp_path / f"worker-{i}.log" for i in range(2)]
    workers = [_start_worker(env, log) for log in logs]
    try:
        _wait_ready(workers, logs)
        proc = run_process([sys.executable, str(EXAMPLES / "postgres_enqueue.py")], env=env)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert proc.stdout.splitlines() == [
            "A-1: completed, total 60.00",
            "A-2: completed, total 146.00",
            "A-3: completed, total 118.80",
        ]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
        for worker in workers:
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
    for worker, log in zip(workers, logs, strict=True):
        text = log.read_text(errors="replace")
        assert worker.returncode == 0, text
        assert "Traceback" not in text


def test_restock_producer_enqueues_what_only_its_workers_can_run(
    spane: Run, cli_env: dict[str, str], database_url: str, fresh_schema: str, tmp_path: Path
) -> None:
    """What docs/deploying.md says of producers of JSON workflows: the producer registers
    examples/restock.json with an empty registry (producer_only=True) and enqueues; a
    `spane worker` holding the executors runs the executions."""
    env = pg_env(cli_env, database_url, fresh_schema)
    upgrade = spane("db", "upgrade", env=env)
    assert upgrade.returncode == 0, upgrade.stdout + upgrade.stderr
    log = tmp_path / "worker.log"
    worker = _start_worker(env, log, "examples.restock_worker:create_engine")
    try:
        _wait_ready([worker], [log])
        proc = run_process([sys.executable, str(EXAMPLES / "restock_producer.py")], env=env)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert proc.stdout.splitlines() == [
            "completed: bolt-m4: ordered 15 from ACME",
            "completed: nut-m4: enough in stock",
        ]
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
    text = log.read_text(errors="replace")
    assert worker.returncode == 0, text
    assert "Traceback" not in text


def test_control_example_waits_retries_and_completes(cli_env: dict[str, str]) -> None:
    lines = run_example("control.py", cli_env).splitlines()
    assert lines[0] == "waiting at 'approve'"
    assert re.fullmatch(
        r"failed: node 'ship' failed: sub-workflow 'shipping' \(execution [0-9a-f-]{36}\) "
        r"failed: node 'book' failed: ConnectionError: carrier API unreachable",
        lines[1],
    ), lines[1]
    assert lines[2:] == [
        "after retry: completed, ship -> 'booked: label for A-1'",
        "dead letters: [('order', 'ship'), ('shipping', 'book')]",
    ]


def test_concurrency_keys_example_runs_one_sync_per_customer(cli_env: dict[str, str]) -> None:
    lines = run_example("concurrency_keys.py", cli_env).splitlines()
    assert lines == [
        'acme#1 is queued, key "acme"',  # acme#0 holds acme's slot
        "acme: ['acme#0', 'acme#1', 'acme#2'], at most 1 at once",
        "globex: ['globex#0', 'globex#1', 'globex#2'], at most 1 at once",
        "refused: workflow 'sync' limits concurrency per 'input.customer', and the "
        "execution's input has no value there",
    ]


def test_triggers_example_fires_a_schedule_and_checks_signatures(cli_env: dict[str, str]) -> None:
    lines = run_example("triggers.py", cli_env).splitlines()
    assert lines[0] == "schedule '*/2 * * * * *' (Europe/Berlin), missed: skip"
    first, second = (
        re.fullmatch(r"schedule: completed, report of (\S+)", line) for line in lines[1:3]
    )
    assert first, lines
    assert second, lines
    ticks = [datetime.fromisoformat(m.group(1)) for m in (first, second)]
    assert ticks[1] - ticks[0] == timedelta(seconds=2)
    assert ticks[0].second % 2 == 0
    assert lines[3:] == [
        "webhook: completed, 'order 42 accepted'",
        "replayed: the first execution",
        "forged: refused (401, mismatch), nothing started",
    ]


def test_traffic_example_limits_holds_and_breaks(cli_env: dict[str, str]) -> None:
    lines = run_example("traffic.py", cli_env).splitlines()
    assert lines == [
        "geocode: 5 at once, the rest in 2 s",  # 5 more, one every 0.2 s after 1 s
        "sms: sent to +49 30 1234, held 0.3 s, attempts 1",
        "payments breaker open after 2 failures: checkout waits",
        "checkout completed: 'charged 42 EUR' after 3 attempts",
        "payments breaker closed",
    ]


def test_testing_time_example_skips_two_weeks(cli_env: dict[str, str]) -> None:
    lines = run_example("testing_time.py", cli_env).splitlines()
    assert lines == [
        "execution completed: charged ada@example.com on attempt 2",
        "skipped 14 days 1 hour(s)",  # the trial, then the retry's backoff
    ]


def test_worker_pools_example_routes_and_waits_for_its_pool(cli_env: dict[str, str]) -> None:
    lines = run_example("worker_pools.py", cli_env).splitlines()
    assert lines == [
        "an unrestricted worker would consume: default, gpu",
        "queue default: 0 waiting, 1 worker(s)",
        "queue gpu: 1 waiting, 0 worker(s)  <- nobody consumes it",
        "execution completed: mailed thumb-cat.png",
    ]


def test_observability_example_streams_counts_and_traces(cli_env: dict[str, str]) -> None:
    lines = run_example("observability.py", cli_env).splitlines()
    assert lines == [
        "execution.started    -      running",
        "node.started         fetch  running",
        "node.retrying        fetch  retrying",
        "node.started         fetch  running",
        "node.completed       fetch  succeeded",
        "node.started         total  running",
        "node.completed       total  succeeded",
        "execution.completed  -      completed",
        'spane_workflows_completed_total{workflow_id="order"} 1.0',
        'spane_nodes_executed_total{node_type="fetch",status="retrying",workflow_id="order"} 1.0',
        'spane_nodes_executed_total{node_type="fetch",status="succeeded",workflow_id="order"} 1.0',
        'spane_nodes_executed_total{node_type="total",status="succeeded",workflow_id="order"} 1.0',
        "4 spans, 1 trace:",
        "  order UNSET",
        "  fetch ERROR",
        "  fetch UNSET",
        "  total UNSET",
    ]


def test_artifacts_example_passes_a_reference_downstream(cli_env: dict[str, str]) -> None:
    lines = run_example("artifacts.py", cli_env).splitlines()
    assert lines == [
        "completed: {'month': '2026-11', 'days': 30, 'orders': 4650}",
        "export returned a reference to 'orders.csv'",
        "  orders.csv text/csv          452 bytes, export",
        "  summary    application/json   43 bytes, summarize",
        "summary: {'month': '2026-11', 'days': 30, 'orders': 4650}",
    ]


def test_postgres_enqueue_example_needs_a_shared_database(cli_env: dict[str, str]) -> None:
    proc = run_process([sys.executable, str(EXAMPLES / "postgres_enqueue.py")], env=cli_env)
    assert proc.returncode == 1
    assert "set DATABASE_URL and REDIS_URL" in proc.stderr


# The docs show the examples verbatim, and nothing else -------------------------------

SHOWN = {
    "README.md": ["quickstart.py", "json_workflow.py", "postgres_app.py"],
    "deploying.md": [
        "postgres_app.py",
        "postgres_enqueue.py",
        "restock_worker.py",
        "restock_producer.py",
    ],
    "stores.md": ["postgres_store.py"],
    "control.md": ["control.py", "concurrency_keys.py"],
    "triggers.md": ["triggers.py"],
    "traffic.md": ["traffic.py"],
    "observability.md": ["observability.py"],
    "artifacts.md": ["artifacts.py"],
    "retention.md": ["retention.py"],
}


@pytest.mark.parametrize(
    ("doc", "name"), [(doc, name) for doc, names in SHOWN.items() for name in names]
)
def test_docs_show_the_example_verbatim(doc: str, name: str) -> None:
    path = REPO_ROOT / doc if doc == "README.md" else REPO_ROOT / "docs" / doc
    text = path.read_text(encoding="utf-8")
    code = (EXAMPLES / name).read_text(encoding="utf-8")
    assert f"```python\n{code}```\n" in text, f"{doc} does not show examples/{name} as is"


def test_deploying_shows_the_restock_definition_verbatim() -> None:
    text = (REPO_ROOT / "docs" / "deploying.md").read_text(encoding="utf-8")
    definition = (EXAMPLES / "restock.json").read_text(encoding="utf-8")
    assert f"```json\n{definition}```\n" in text


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_every_python_block_of_the_docs_is_an_example(path: Path) -> None:
    examples = {p.read_text(encoding="utf-8") for p in EXAMPLES.glob("*.py")}
    blocks = re.findall(r"```python\n(.*?)```\n", path.read_text(encoding="utf-8"), re.S)
    for block in blocks:
        assert block in examples, f"{path.name} shows Python code that is no example:\n{block}"


def test_retention_example_prunes_by_setting(cli_env: dict[str, str]) -> None:
    lines = run_example("retention.py", cli_env).splitlines()
    assert lines == [
        "day 1: deleted 0 execution(s), 6 left",
        "day 7: deleted 3 execution(s), 3 left",  # the engine's 7 days: orders
        "day 30: deleted 3 execution(s), 0 left",  # audits' own 30 days
    ]
