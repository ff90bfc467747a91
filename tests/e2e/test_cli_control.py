"""``spane executions pause|resume|cancel|retry|replay``, ``spane tokens``, ``spane workflows``
and ``spane schedules`` against a PostgreSQL schema and a key prefix of the test's own.

An engine in this process prepares the state (executions waiting for a token, one failed,
two versions of a workflow, a schedule) and stops its workers; then the commands run as
subprocesses, those that do not depend on one another at the same time."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections.abc import AsyncIterator
from typing import Any

import pytest

from spane_py import ExecutionContext, NodeRegistry, WorkflowEngine
from spane_py.state import ExecutionStatus
from tests.e2e.conftest import Run, pg_env

WAIT = {
    "id": "ctl-wait",
    "nodes": [
        {"id": "a", "type": "ctl_ok", "outputs": ["approve"]},
        {"id": "approve", "type": "wait", "config": {"timeoutSeconds": 3600}},
    ],
}
FAIL = {"id": "ctl-fail", "nodes": [{"id": "x", "type": "ctl_boom"}]}
CRON = {
    "id": "ctl-cron",
    "nodes": [{"id": "c", "type": "ctl_ok"}],
    "triggers": [{"type": "schedule", "config": {"cron": "0 0 1 1 *", "timezone": "UTC"}}],
}
UNKNOWN = "ffffffff-0000-7000-8000-000000000000"


async def ctl_ok(ctx: ExecutionContext) -> Any:
    return ctx.input_data


async def ctl_boom(ctx: ExecutionContext) -> Any:
    raise RuntimeError("the carrier is down")


@pytest.fixture
async def engine(
    database_url: str, pg_schema: str, redis_url: str, key_prefix: str
) -> AsyncIterator[WorkflowEngine]:
    from spane_py.stores.postgres.store import PostgresExecutionStore

    registry = NodeRegistry()
    registry.register("ctl_ok", ctl_ok)
    registry.register("ctl_boom", ctl_boom)
    store = PostgresExecutionStore(database_url, schema=pg_schema, apply_migrations=False)
    eng = WorkflowEngine(
        registry, store, redis_url=redis_url, key_prefix=key_prefix, poll_delay=0.1
    )
    await eng.start()
    try:
        yield eng
    finally:
        await eng.close(grace_seconds=0.5)


async def run_all(spane: Run, env: dict[str, str], *commands: tuple[str, ...]) -> list[Any]:
    """Run the commands at once; their results in order."""
    return list(await asyncio.gather(*(asyncio.to_thread(spane, *c, env=env) for c in commands)))


def out(proc: subprocess.CompletedProcess[str], code: int = 0) -> Any:
    """The JSON a command printed, after checking its exit code."""
    assert proc.returncode == code, proc.stdout + proc.stderr
    return json.loads(proc.stdout)


async def test_control_commands(
    spane: Run,
    cli_env: dict[str, str],
    database_url: str,
    pg_schema: str,
    engine: WorkflowEngine,
) -> None:
    env = pg_env(cli_env, database_url, pg_schema)
    await engine.register_workflow(WAIT)
    await engine.register_workflow({**WAIT, "name": "approval"})  # version 2
    await engine.register_workflow(FAIL)
    await engine.register_workflow(CRON)
    await engine.start_workers(4)
    waiting = [await engine.enqueue_workflow("ctl-wait", {"n": n}) for n in range(3)]
    failed = await engine.enqueue_workflow("ctl-fail")
    assert (await engine.wait_for_execution(failed, timeout=30)).status is ExecutionStatus.FAILED
    tokens: dict[str, str] = {}
    for _ in range(300):
        for eid in waiting:
            found = await engine.list_resume_tokens(eid)
            if found:
                tokens[eid] = found[0].token
        if len(tokens) == len(waiting):
            break
        await asyncio.sleep(0.05)
    assert len(tokens) == len(waiting)
    await engine.stop_workers(grace_seconds=1.0)  # the commands' jobs stay in Redis
    w1, w2, w3 = waiting
    assert await engine.pause_execution(w1)
    shared = os.path.commonprefix([*waiting, failed])  # noqa: RUF071 (ids minted in one run share a start)
    assert shared

    (paused, cancelled, retried, replayed, ambiguous, no_target, bad_data, listed_tokens,
     workflows, shown, table, versions, missing, schedules) = await run_all(
        spane, env,
        ("executions", "pause", w1, w2[:13], UNKNOWN[:8], "--json"),
        ("executions", "cancel", w3, "--reason", "not needed", "--json"),
        ("executions", "retry", failed, "--json"),
        ("executions", "replay", failed[:18], "--json"),
        ("executions", "cancel", shared),
        ("executions", "pause"),
        ("tokens", "resume", tokens[w1], "--data", "{bad"),
        ("tokens", "list", "--execution", w1[:13], "--all", "--json"),
        ("workflows", "list", "--json"),
        ("workflows", "show", "ctl-wait", "--version", "1", "--json"),
        ("workflows", "show", "ctl-wait"),
        ("workflows", "versions", "ctl-wait", "--json"),
        ("workflows", "show", "ctl-nope"),
        ("schedules", "list", "--json"),
    )  # fmt: skip

    # Several ids, a prefix among them: each changed, unchanged or an error (exit 1).
    assert out(paused, 1) == {
        "action": "pause",
        "changed": [w2],
        "unchanged": [w1],
        "errors": {UNKNOWN[:8]: "no execution has an id that starts with 'ffffffff'"},
    }
    assert "error: could not pause 1 of 3 executions" in paused.stderr
    assert out(cancelled) == {"action": "cancel", "changed": [w3], "unchanged": [], "errors": {}}
    state = await engine.get_execution(w3)
    assert (state.status, state.error) == (ExecutionStatus.CANCELLED, "not needed")
    assert out(retried)["changed"] == [failed]
    assert (await engine.get_execution(failed)).status is ExecutionStatus.RUNNING
    replay = out(replayed)
    assert replay["changed"] == [failed]
    again = await engine.get_execution(replay["replayed"][failed])
    assert again.metadata["replayed_from"] == failed
    assert ambiguous.returncode == 2, ambiguous.stderr
    assert f"{shared!r} is the start of more than one execution id" in ambiguous.stderr
    assert ambiguous.stdout == ""
    assert no_target.returncode == 2
    assert "say which executions to pause" in no_target.stderr
    assert bad_data.returncode == 2
    assert "--data is not valid JSON" in bad_data.stderr

    [token] = out(listed_tokens)
    assert token["token"] == tokens[w1]
    assert (token["execution_id"], token["node_id"], token["state"]) == (w1, "approve", "active")

    assert {(w["workflow_id"], w["version"]) for w in out(workflows)} == {
        ("ctl-wait", 2),
        ("ctl-fail", 1),
        ("ctl-cron", 1),
    }
    first = out(shown)
    assert (first["version"], first["name"], first["node_count"]) == (1, "ctl-wait", 2)
    assert [n["id"] for n in first["definition"]["nodes"]] == ["a", "approve"]
    assert table.returncode == 0, table.stderr
    assert "ctl-wait v2 (approval)" in table.stdout
    approve = next(line for line in table.stdout.splitlines() if line.startswith("approve"))
    assert approve.split()[:3] == ["approve", "wait", "a"]
    assert [(v["version"], v["name"]) for v in out(versions)] == [
        (1, "ctl-wait"),
        (2, "approval"),
    ]
    assert missing.returncode == 1
    assert "workflow 'ctl-nope' is not registered" in missing.stderr
    [schedule] = out(schedules)
    assert (schedule["workflow_id"], schedule["cron"], schedule["paused"]) == (
        "ctl-cron",
        "0 0 1 1 *",
        False,
    )
    sid = schedule["schedule_id"]

    # A filter that selects more than one needs --yes.
    refused, schedule_paused = await run_all(
        spane, env,
        ("executions", "resume", "--workflow", "ctl-wait", "--status", "paused"),
        ("schedules", "pause", sid, "--json"),
    )  # fmt: skip
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "the filter selects 2 executions; pass --yes to resume them" in refused.stderr
    assert w1 in refused.stderr
    assert w2 in refused.stderr
    assert (await engine.get_execution(w1)).status is ExecutionStatus.PAUSED
    assert out(schedule_paused) == {"schedule_id": sid, "paused": True, "changed": True}

    resumed, schedule_resumed = await run_all(
        spane, env,
        ("executions", "resume", "--workflow", "ctl-wait", "--status", "paused", "--yes",
         "--json"),
        ("schedules", "resume", sid),
    )  # fmt: skip
    result = out(resumed)
    assert sorted(result["changed"]) == sorted([w1, w2])
    assert (result["unchanged"], result["errors"]) == ([], {})
    assert (await engine.get_execution(w1)).status is ExecutionStatus.RUNNING
    assert schedule_resumed.returncode == 0, schedule_resumed.stderr
    assert f"schedule {sid}: resumed" in schedule_resumed.stdout
    assert not (await engine.list_schedules())[0].paused

    approved, revoked = await run_all(
        spane, env,
        ("tokens", "resume", tokens[w1], "--data", '{"approved": true}', "--json"),
        ("tokens", "revoke", tokens[w2], "--json"),
    )  # fmt: skip
    assert out(approved) == {"execution_id": w1, "resumed": True}
    state = await engine.get_execution(w1)
    assert state.node_results["approve"].data == {"approved": True}
    assert out(revoked) == {"execution_id": w2, "node_id": "approve", "changed": True}
    [record] = await engine.list_resume_tokens(w2, active_only=False)
    assert record.revoked_at is not None

    used = spane("tokens", "resume", tokens[w1], env=env)
    assert used.returncode == 1
    assert used.stderr.startswith("error: "), used.stderr
