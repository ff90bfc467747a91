"""``SPANE_RETENTION`` and ``SPANE_RETENTION_INTERVAL``: the environment's retention reaches
``engine_kwargs()`` as a ``Retention`` and an interval; a bad value is refused when the
settings are read, with a message naming the variable and the part that is wrong."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
from pydantic import ValidationError

from spane_py import NodeRegistry, Retention, WorkflowEngine
from spane_py.settings import SpaneSettings


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("SPANE_") or name in ("DATABASE_URL", "REDIS_URL"):
            monkeypatch.delenv(name)


def test_unset_keeps_forever_and_prunes_every_minute() -> None:
    kwargs = SpaneSettings().engine_kwargs(store=False)
    assert "retention" not in kwargs
    assert kwargs["retention_interval_seconds"] == 60.0
    engine = WorkflowEngine(NodeRegistry(), **kwargs)
    assert engine.retention is None
    assert engine.retention_interval_seconds == 60.0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            "completed=7d,failed=30d,cancelled=7d",
            Retention(completed="7d", failed="30d", cancelled="7d"),
        ),
        ("30d", Retention(completed="30d", failed="30d", cancelled="30d")),
        ("failed=2w", Retention(failed=timedelta(weeks=2))),  # the others: kept forever
        (" Completed = 12h , cancelled=90 ", Retention(completed="12h", cancelled=90)),
        ("3600", Retention(completed=3600, failed=3600, cancelled=3600)),
        ("  ", None),  # blank: as if unset
    ],
)
def test_good_values_reach_the_engine(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: Retention | None
) -> None:
    monkeypatch.setenv("SPANE_RETENTION", value)
    kwargs = SpaneSettings().engine_kwargs(store=False)
    assert kwargs.get("retention") == expected
    assert WorkflowEngine(NodeRegistry(), **kwargs).retention == expected


def test_the_interval_reaches_the_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPANE_RETENTION_INTERVAL", "2.5")
    kwargs = SpaneSettings().engine_kwargs(store=False)
    assert kwargs["retention_interval_seconds"] == 2.5
    assert WorkflowEngine(NodeRegistry(), **kwargs).retention_interval_seconds == 2.5


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("done=7d", "unknown status 'done' in 'done=7d': SPANE_RETENTION takes completed, "),
        ("completed=7d,running=1d", "unknown status 'running' in 'running=1d'"),
        ("completed=7d,,failed=30d", "an empty part in 'completed=7d,,failed=30d'"),
        ("completed=7d,", "an empty part in 'completed=7d,'"),
        (",30d", "an empty part in ',30d'"),
        ("completed=7d,completed=8d", "completed is given twice in 'completed=7d,completed=8d'"),
        ("completed=7d,Completed=1d", "completed is given twice"),
        ("completed=7x", "bad duration '7x' in 'completed=7x' (SPANE_RETENTION)"),
        ("failed=", "bad duration '' in 'failed=' (SPANE_RETENTION)"),
        ("cancelled=0", "bad duration '0' in 'cancelled=0' (SPANE_RETENTION): a duration must"),
        ("=7d", "unknown status '' in '=7d'"),
        ("forever", "bad duration 'forever' (SPANE_RETENTION): a duration is text like"),
        ("-5d", "bad duration '-5d' (SPANE_RETENTION)"),
        ("30d,failed=60d", "'30d' has no STATUS= in '30d,failed=60d'"),
        ("completed=7d failed=30d", "bad duration '7d failed=30d' in 'completed=7d failed=30d'"),
        ("completed=20000d", "at most ten years"),
    ],
)
def test_bad_retention_is_refused(
    monkeypatch: pytest.MonkeyPatch, value: str, problem: str
) -> None:
    monkeypatch.setenv("SPANE_RETENTION", value)
    with pytest.raises(ValidationError) as caught:
        SpaneSettings()
    [error] = caught.value.errors()
    assert error["loc"] == ("retention",)  # the command prints it as SPANE_RETENTION
    assert problem in error["msg"]
    assert "SPANE_RETENTION" in error["msg"]


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("0", "greater than 0"),
        ("-1", "greater than 0"),
        ("soon", "valid number"),
        ("inf", "finite number"),
        ("nan", "finite number"),
    ],
)
def test_bad_interval_is_refused(monkeypatch: pytest.MonkeyPatch, value: str, problem: str) -> None:
    monkeypatch.setenv("SPANE_RETENTION_INTERVAL", value)
    with pytest.raises(ValidationError) as caught:
        SpaneSettings()
    [error] = caught.value.errors()
    assert error["loc"] == ("retention_interval",)
    assert problem in error["msg"]
