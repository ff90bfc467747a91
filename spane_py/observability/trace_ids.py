"""Trace and span ids derived from what they identify, with no OpenTelemetry import.

Every worker process must agree on an execution's trace without talking to the others,
so the ids are computed, not generated: the trace id of an execution is its UUID (128
bits), its root span id a hash of its id, and the span id of a node attempt a hash of the
attempt's key (the ``SpanRecord.span_id`` the runner writes). A sub-workflow's execution
joins its parent's trace through a W3C ``traceparent`` in its metadata, written when the
sub-workflow node creates it; a caller may set one the same way to put an execution in
its own trace.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

TRACEPARENT = "traceparent"  # the metadata key, named as the W3C header
_TRACEPARENT_RE = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


@dataclass(frozen=True, slots=True)
class TraceParent:
    trace_id: int
    span_id: int
    sampled: bool = True

    def header(self) -> str:
        """The W3C ``traceparent`` value (version 00)."""
        return f"00-{self.trace_id:032x}-{self.span_id:016x}-{int(self.sampled):02x}"


def parse_traceparent(value: object) -> TraceParent | None:
    """A valid W3C ``traceparent`` (all-zero ids are invalid), else None."""
    if not isinstance(value, str):
        return None
    match = _TRACEPARENT_RE.match(value.strip().lower())
    if match is None:
        return None
    trace_id, span_id = int(match[1], 16), int(match[2], 16)
    if not trace_id or not span_id:
        return None
    return TraceParent(trace_id, span_id, sampled=bool(int(match[3], 16) & 1))


def execution_trace_id(execution_id: str) -> int:
    """The trace id of an execution started on its own: its UUID."""
    try:
        value = uuid.UUID(execution_id).int
    except ValueError:
        value = 0
    return value or _hash(execution_id, 16)


def execution_span_id(execution_id: str) -> int:
    """The id of the span that stands for the whole execution (the parent of its nodes)."""
    return _hash(f"execution:{execution_id}", 8)


def attempt_span_id(execution_id: str, node_id: str, generation: int, attempt: int) -> int:
    """The span id of one attempt of one node (``SpanRecord.span_id`` hashed)."""
    return record_span_id(f"{execution_id}:{node_id}:{generation}:{attempt}")


def record_span_id(span_key: str) -> int:
    return _hash(span_key, 8)


def child_traceparent(
    execution_id: str,
    metadata: Mapping[str, Any],
    node_id: str,
    generation: int,
    attempt: int,
) -> str:
    """The ``traceparent`` of a sub-workflow started by that attempt of that node: the
    parent's trace, under the node's span (and the parent's sampling decision)."""
    parent = parse_traceparent(metadata.get(TRACEPARENT))
    return TraceParent(
        parent.trace_id if parent is not None else execution_trace_id(execution_id),
        attempt_span_id(execution_id, node_id, generation, attempt),
        sampled=parent.sampled if parent is not None else True,
    ).header()


def _hash(text: str, size: int) -> int:
    value = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=size).digest(), "big")
    return value or 1  # zero is the invalid id
