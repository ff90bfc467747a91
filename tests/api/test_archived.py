"""GET /api/executions/{id} of an execution retention archived and deleted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from spane_py import WorkflowEngine
from spane_py.archive import Archive
from spane_py.engine.pruning import prune_older_than


async def test_an_archived_execution_reads_back(
    running: WorkflowEngine, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    state = await running.run_workflow("greet", "hi", timeout=20)
    eid = state.execution_id
    running.archive = Archive(tmp_path / "archive")
    later = datetime.now(UTC) + timedelta(days=2)
    result = await prune_older_than(
        running.store, timedelta(days=1), later, archive=running.archive
    )
    assert result.executions == 1

    got = await client.get(f"/api/executions/{eid}")
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["archived"] is True
    assert body["execution"]["execution_id"] == eid
    assert body["execution"]["output"] == "HI"
    assert [(n["node_id"], n["output"]) for n in body["nodes"]] == [
        ("hello", "hi"),
        ("shout", "HI"),
    ]
    assert [line["message"] for line in body["logs"]] == ["echoing"]

    missing = await client.get("/api/executions/01234567-89ab-7cde-8f01-23456789abcd")
    assert missing.status_code == 404
