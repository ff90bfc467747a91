"""The event history's sink (observability/history.py) against a fake store: events are
written in batches, one write at a time, their fields made storable; a failed write is
tried again, a refused one dropped."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from spane_py.clock import SkippingClock
from spane_py.errors import StatePersistenceError
from spane_py.observability import events, history
from spane_py.observability.history import EventHistory
from spane_py.records import EventRecord


class FakeStore:
    def __init__(self) -> None:
        self.batches: list[list[EventRecord]] = []
        self.writing = 0
        self.most_at_once = 0
        self.fail_with: list[Exception] = []

    async def add_events(self, records: Sequence[EventRecord]) -> None:
        self.writing += 1
        self.most_at_once = max(self.most_at_once, self.writing)
        try:
            await asyncio.sleep(0.005)
            if self.fail_with:
                raise self.fail_with.pop(0)
            self.batches.append(list(records))
        finally:
            self.writing -= 1

    async def get_events(self, **filters: Any) -> list[EventRecord]:
        return [r for batch in self.batches for r in batch]

    @property
    def written(self) -> list[EventRecord]:
        return [r for batch in self.batches for r in batch]


async def test_events_go_out_together_with_their_ids_apart() -> None:
    store = FakeStore()
    sink = EventHistory(store, SkippingClock(), flush_interval=0.01)
    sink(events.EXECUTION_STARTED, {"execution_id": "e1", "workflow_id": "wf"})
    sink(events.NODE_STARTED, {"execution_id": "e1", "workflow_id": "wf", "node_id": "a",
                               "attempt": 1})  # fmt: skip
    sink(events.NODE_SPAN, {"span": object(), "execution": object()})  # a record: left out
    sink(events.NODE_RETRYING, {"execution_id": "e1", "node_id": "a", "error": None,
                                "delay_ms": 10})  # fmt: skip
    await sink.flush()
    assert len(store.batches) == 1
    assert [(r.type, r.execution_id, r.workflow_id, r.node_id, dict(r.fields)) for r in
            store.written] == [
        (events.EXECUTION_STARTED, "e1", "wf", None, {}),
        (events.NODE_STARTED, "e1", "wf", "a", {"attempt": 1}),
        (events.NODE_RETRYING, "e1", None, "a", {"delay_ms": 10}),  # None fields left out
    ]  # fmt: skip
    assert all(r.at.tzinfo is not None for r in store.written)


async def test_a_busy_sink_writes_one_batch_at_a_time() -> None:
    store = FakeStore()
    sink = EventHistory(store, SkippingClock(), flush_interval=0.01, max_batch=10)
    for i in range(95):
        sink(events.NODE_COMPLETED, {"execution_id": "e", "node_id": f"n{i}"})
        if i % 7 == 0:
            await asyncio.sleep(0)
    await sink.close()
    assert [r.node_id for r in store.written] == [f"n{i}" for i in range(95)]
    assert store.most_at_once == 1
    assert len(store.batches) < 95
    sink(events.NODE_COMPLETED, {"execution_id": "e"})  # closed: ignored
    await asyncio.sleep(0.02)
    assert len(store.written) == 95


async def test_fields_are_made_storable() -> None:
    store = FakeStore()
    sink = EventHistory(store, SkippingClock(), flush_interval=0.01)
    when = datetime(2026, 1, 2, tzinfo=UTC)
    sink("x.y", {"error": "a\x00b", "when": when, "obj": object, "big": 2**70, "nan": float("nan"),
                 "ok": "fine", "n": 1.5})  # fmt: skip
    await sink.flush()
    [record] = store.written
    fields = dict(record.fields)
    assert fields["error"] == "a\ufffdb"
    assert fields["when"] == "2026-01-02T00:00:00+00:00"
    assert fields["obj"] == repr(object)
    assert fields["big"] == repr(2**70)
    assert fields["nan"] is None
    assert (fields["ok"], fields["n"]) == ("fine", 1.5)


async def test_a_failed_write_is_tried_again_and_a_refused_one_dropped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(history, "RETRY_AFTER_S", 0.0)
    store = FakeStore()
    store.fail_with = [StatePersistenceError("the database is down")]
    sink = EventHistory(store, SkippingClock(), flush_interval=0.01)
    sink("a.one", {})
    await sink.flush()  # failed: kept
    assert store.written == []
    sink("a.two", {})
    await sink.flush()
    assert [r.type for r in store.written] == ["a.one", "a.two"]

    store.fail_with = [TypeError("not JSON")]
    sink("b.bad", {})
    await sink.flush()
    sink("b.next", {})
    await sink.flush()
    assert [r.type for r in store.written] == ["a.one", "a.two", "b.next"]
