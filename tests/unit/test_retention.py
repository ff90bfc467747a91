"""Retention settings: durations, the definition's ``retention``, the cutoffs they make."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from spane_py.definitions.graph import compile_workflow
from spane_py.definitions.models import WorkflowDefinition
from spane_py.engine.pruning import PrunePass, plan
from spane_py.retention import Retention, parse_duration
from spane_py.state import ExecutionStatus

NOW = datetime(2026, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("7d", 7 * 86400),
        ("12h", 43200),
        ("30m", 1800),
        ("45s", 45),
        ("90", 90),
        ("2w", 1209600),
        (" 1.5h ", 5400),
        (3600, 3600),
        (0.5, 0.5),
        (DAY, 86400),
    ],
)
def test_durations(text: str | float | timedelta, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("bad", ["", "7y", "d", "-1d", 0, -5, True, "11000d", float("nan"), None])
def test_bad_durations(bad: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)  # type: ignore[arg-type]


def test_retention_by_status() -> None:
    r = Retention(completed="7d", failed=60)
    assert r.for_status(ExecutionStatus.COMPLETED) == 7 * DAY
    assert r.for_status(ExecutionStatus.FAILED) == timedelta(seconds=60)
    assert r.for_status(ExecutionStatus.CANCELLED) is None
    assert r.for_status(ExecutionStatus.RUNNING) is None
    assert not r.keeps_forever
    assert Retention().keeps_forever


def _definition(**extra: object) -> WorkflowDefinition:
    return WorkflowDefinition.model_validate(
        {"id": "wf", "nodes": [{"id": "a", "type": "noop"}], **extra}
    )


def test_a_definition_carries_retention_and_keeps_its_hash_without() -> None:
    plain = _definition()
    assert plain.retention is None
    unset = _definition(retention=None)
    assert compile_workflow(plain).content_hash == compile_workflow(unset).content_hash
    kept = _definition(retention={"completed": "7d", "failed": 3600})
    assert kept.retention is not None
    assert kept.retention.completed == "7d"
    assert compile_workflow(kept).content_hash != compile_workflow(plain).content_hash
    with pytest.raises(ValidationError, match="duration"):
        _definition(retention={"completed": "soon"})
    with pytest.raises(ValidationError):
        _definition(retention={"running": "1d"})


def test_a_workflow_s_own_time_wins_status_by_status() -> None:
    default = Retention(completed="30d", failed="30d")
    own = {"short": Retention(completed="1d"), "other": Retention(cancelled="2d")}
    assert plan(default, own, NOW) == [
        PrunePass(ExecutionStatus.COMPLETED, NOW - DAY, "short"),
        PrunePass(ExecutionStatus.COMPLETED, NOW - 30 * DAY, exclude=("short",)),
        PrunePass(ExecutionStatus.FAILED, NOW - 30 * DAY),
        PrunePass(ExecutionStatus.CANCELLED, NOW - 2 * DAY, "other"),
    ]
    assert plan(None, {}, NOW) == []
