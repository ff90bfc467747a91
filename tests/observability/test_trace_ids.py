"""Derived trace and span ids: stable, valid, and W3C ``traceparent`` round trips."""

from __future__ import annotations

import uuid

from spane_py.engine.ids import new_execution_id
from spane_py.observability import trace_ids
from spane_py.observability.trace_ids import TraceParent, parse_traceparent


def test_an_executions_trace_id_is_its_uuid() -> None:
    eid = new_execution_id()
    assert trace_ids.execution_trace_id(eid) == uuid.UUID(eid).int


def test_ids_that_are_not_uuids_still_give_a_valid_trace_id() -> None:
    value = trace_ids.execution_trace_id("not-a-uuid")
    assert 0 < value < 1 << 128
    assert value == trace_ids.execution_trace_id("not-a-uuid")


def test_span_ids_are_derived_and_distinct() -> None:
    eid = new_execution_id()
    ids = {
        trace_ids.execution_span_id(eid),
        trace_ids.attempt_span_id(eid, "a", 0, 1),
        trace_ids.attempt_span_id(eid, "a", 0, 2),
        trace_ids.attempt_span_id(eid, "a", 1, 1),
        trace_ids.attempt_span_id(eid, "b", 0, 1),
    }
    assert len(ids) == 5
    assert all(0 < i < 1 << 64 for i in ids)
    assert trace_ids.attempt_span_id(eid, "a", 0, 1) == trace_ids.record_span_id(f"{eid}:a:0:1")


def test_traceparent_round_trip() -> None:
    parent = TraceParent(0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331)
    assert parent.header() == "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    assert parse_traceparent(parent.header()) == parent
    unsampled = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"
    assert parse_traceparent(unsampled) == TraceParent(parent.trace_id, parent.span_id, False)


def test_invalid_traceparents_are_ignored() -> None:
    for bad in (
        None,
        42,
        "",
        "garbage",
        "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",  # unknown version
        "00-00000000000000000000000000000000-b7ad6b7169203331-01",  # zero trace id
        "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",  # zero span id
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b716920333-01",  # short span id
    ):
        assert parse_traceparent(bad) is None, bad


def test_a_child_joins_its_parents_trace_under_the_nodes_span() -> None:
    eid = new_execution_id()
    header = trace_ids.child_traceparent(eid, {}, "sub", 0, 1)
    parsed = parse_traceparent(header)
    assert parsed == TraceParent(
        uuid.UUID(eid).int, trace_ids.attempt_span_id(eid, "sub", 0, 1), True
    )
    # A grandchild stays in the same trace.
    child_id = new_execution_id()
    grandchild = parse_traceparent(
        trace_ids.child_traceparent(child_id, {"traceparent": header}, "deeper", 2, 3)
    )
    assert grandchild is not None
    assert grandchild.trace_id == uuid.UUID(eid).int
    assert grandchild.span_id == trace_ids.attempt_span_id(child_id, "deeper", 2, 3)
