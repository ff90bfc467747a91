"""``events.emit`` hands events to sinks: who receives what (scopes), and a broken sink
never breaks the emitter. No I/O."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from spane_py.observability import events


class Recorder:
    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, name: str, fields: Mapping[str, Any]) -> None:
        self.seen.append((name, dict(fields)))


@pytest.fixture
def sinks() -> Iterator[list[Recorder]]:
    installed: list[Recorder] = []
    yield installed
    for sink in installed:
        events.remove_sink(sink)


def install(sinks: list[Recorder], owner: object | None = None) -> Recorder:
    sink = Recorder()
    events.add_sink(sink, owner=owner)
    sinks.append(sink)
    return sink


def test_a_sink_receives_every_event_with_its_fields(sinks: list[Recorder]) -> None:
    sink = install(sinks)
    events.emit(events.NODE_STARTED, execution_id="e1", node_id="a", attempt=1)
    events.emit(events.EXECUTION_FAILED, logging.WARNING, execution_id="e1", error="x")
    assert sink.seen == [
        ("node.started", {"execution_id": "e1", "node_id": "a", "attempt": 1}),
        ("execution.failed", {"execution_id": "e1", "error": "x"}),
    ]


def test_removed_sinks_receive_nothing(sinks: list[Recorder]) -> None:
    sink = install(sinks)
    events.remove_sink(sink)
    events.remove_sink(sink)  # twice: no error
    events.emit(events.NODE_STARTED, execution_id="e1")
    assert sink.seen == []


def test_scoped_events_reach_only_their_owners_sinks(sinks: list[Recorder]) -> None:
    engine_a, engine_b = object(), object()
    a, b, everything = install(sinks, engine_a), install(sinks, engine_b), install(sinks)
    with events.scope(engine_a):
        events.emit(events.NODE_STARTED, execution_id="from-a")
    with events.scope(engine_b):
        events.emit(events.NODE_STARTED, execution_id="from-b")
    events.emit(events.NODE_STARTED, execution_id="no-scope")  # reaches every sink
    assert [f["execution_id"] for _, f in a.seen] == ["from-a", "no-scope"]
    assert [f["execution_id"] for _, f in b.seen] == ["from-b", "no-scope"]
    assert [f["execution_id"] for _, f in everything.seen] == ["from-a", "from-b", "no-scope"]


async def test_tasks_created_inside_a_scope_keep_it(sinks: list[Recorder]) -> None:
    owner, other = object(), object()
    mine, theirs = install(sinks, owner), install(sinks, other)

    async def job() -> None:
        await asyncio.sleep(0)
        events.emit(events.NODE_COMPLETED, execution_id="e1")

    with events.scope(owner):
        task = asyncio.create_task(job())
    await task
    assert len(mine.seen) == 1
    assert theirs.seen == []


def test_a_failing_sink_is_logged_and_the_others_still_run(
    sinks: list[Recorder], caplog: pytest.LogCaptureFixture
) -> None:
    def broken(name: str, fields: Mapping[str, Any]) -> None:
        raise RuntimeError("sink down")

    events.add_sink(broken)
    try:
        after = install(sinks)
        with caplog.at_level(logging.ERROR, logger="spane_py.events"):
            events.emit(events.NODE_STARTED, execution_id="e1")
    finally:
        events.remove_sink(broken)
    assert len(after.seen) == 1
    assert "sink down" in caplog.text


def test_record_fields_stay_out_of_log_lines(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="spane_py.events"):
        events.emit(events.NODE_SPAN, logging.DEBUG, span="<a long record>", execution="<rec>")
    assert caplog.records[-1].getMessage() == "node.span "
