"""OpenTelemetry export (the ``otel`` extra): node attempts and executions as OTel spans.

``enable(tracer_provider)`` installs an event sink that turns two events into spans of
that provider (its processors and exporters do the rest):

* ``node.span`` — one attempt of one node ended (a retried node gives one span per
  attempt), exported right when the attempt ends, by the worker that ran it; a delay,
  wait or sub-workflow node's span covers its wait (``spane.waited``, ``spane.wait``),
  exported by whoever ended the wait (the worker, or the process that used its resume
  token or stopped its execution);
* ``execution.span`` — an execution completed, failed or was cancelled: the span that
  stands for the whole execution, the parent of its node spans.

No trace context travels with jobs: the ids are derived (``trace_ids``), so every worker
process puts an execution's spans in the same trace, under the same parent, without
asking anyone. The trace id of an execution is its UUID; a sub-workflow's execution
carries a W3C ``traceparent`` in its metadata naming its parent's trace and the span of
the sub-workflow node's attempt that started it, so the child execution's span hangs under
that node's span. A ``traceparent`` given in an execution's metadata at enqueue time puts
it in the caller's trace the same way; one whose flags say "not sampled" exports nothing.

Tracing is process-wide (OpenTelemetry's providers are): one exporter at a time.
Sampling at the root does not carry over to node spans recorded later by other workers:
every node span of a sampled parent is recorded.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TracerProvider,
)

from spane_py.observability import events, trace_ids

if TYPE_CHECKING:  # records only read here: observability depends on no other layer
    from spane_py.records import ExecutionRecord, SpanRecord

logger = logging.getLogger("spane_py.otel")

TRACER_NAME = "spane_py"
_ERROR_STATUSES = frozenset({"failed", "retrying"})


class _DerivedIds(IdGenerator):
    """Hands out the id it was told to, once; asks the provider's generator otherwise."""

    def __init__(self, fallback: IdGenerator) -> None:
        self.fallback = fallback
        self.trace_id: int | None = None
        self.span_id: int | None = None

    def generate_trace_id(self) -> int:
        value, self.trace_id = self.trace_id, None
        return value if value is not None else self.fallback.generate_trace_id()

    def generate_span_id(self) -> int:
        value, self.span_id = self.span_id, None
        return value if value is not None else self.fallback.generate_span_id()


class SpanExporter:
    """The event sink that turns span events into OpenTelemetry spans."""

    def __init__(self, tracer_provider: TracerProvider) -> None:
        from spane_py import __version__

        if not callable(getattr(tracer_provider, "get_tracer", None)):
            raise TypeError(
                f"tracing needs an opentelemetry-sdk TracerProvider, got {tracer_provider!r}"
            )
        self.tracer = tracer_provider.get_tracer(TRACER_NAME, __version__)
        fallback = getattr(self.tracer, "id_generator", None)
        if not isinstance(fallback, IdGenerator):
            raise TypeError(
                "spane_py's tracing needs an opentelemetry-sdk TracerProvider (its ids are "
                f"derived, which the SDK's tracer allows), got {type(tracer_provider).__name__}"
            )
        if isinstance(fallback, _DerivedIds):  # enabled before on this provider
            fallback = fallback.fallback
        self.ids = _DerivedIds(fallback)
        self.tracer.id_generator = self.ids  # type: ignore[attr-defined]
        self.provider = tracer_provider

    def __call__(self, name: str, fields: Mapping[str, Any]) -> None:
        if name == events.NODE_SPAN:
            span, execution = fields.get("span"), fields.get("execution")
            if span is not None and execution is not None:
                self.node_span(span, execution)
        elif name == events.EXECUTION_SPAN:
            execution = fields.get("execution")
            if execution is not None:
                self.execution_span(execution)

    def node_span(self, span: SpanRecord, execution: ExecutionRecord) -> None:
        eid = execution.execution_id
        parent = trace_ids.parse_traceparent(execution.metadata.get(trace_ids.TRACEPARENT))
        trace_id = parent.trace_id if parent is not None else trace_ids.execution_trace_id(eid)
        sampled = parent.sampled if parent is not None else True
        attributes: dict[str, Any] = {
            "spane.kind": "node",
            "spane.execution_id": eid,
            "spane.workflow_id": execution.workflow_id,
            "spane.workflow_version": execution.workflow_version,
            "spane.node_id": span.node_id,
            "spane.node_type": str(span.attributes.get("type", "")),
            "spane.attempt": span.attempt,
            "spane.status": span.status,
        }
        if span.worker_id:
            attributes["spane.worker_id"] = span.worker_id
        if span.attributes.get("waited"):  # a delay, wait or sub-workflow node's wait
            attributes["spane.waited"] = True
            attributes["spane.wait"] = str(span.attributes.get("wait", ""))
            if "resumed" in span.attributes:
                attributes["spane.resumed"] = bool(span.attributes["resumed"])
        self._export(
            span.name,
            trace_id=trace_id,
            span_id=trace_ids.record_span_id(span.span_id),
            parent_id=trace_ids.execution_span_id(eid),
            sampled=sampled,
            start=span.started_at,
            end=span.ended_at,
            attributes=attributes,
            error=span.error if span.status in _ERROR_STATUSES else None,
            stacktrace=span.traceback,
        )

    def execution_span(self, execution: ExecutionRecord) -> None:
        eid = execution.execution_id
        parent = trace_ids.parse_traceparent(execution.metadata.get(trace_ids.TRACEPARENT))
        attributes: dict[str, Any] = {
            "spane.kind": "execution",
            "spane.execution_id": eid,
            "spane.workflow_id": execution.workflow_id,
            "spane.workflow_version": execution.workflow_version,
            "spane.status": execution.status.value,
            "spane.depth": execution.depth,
        }
        if execution.parent_execution_id is not None:
            attributes["spane.parent_execution_id"] = execution.parent_execution_id
        self._export(
            execution.workflow_id,
            trace_id=parent.trace_id if parent is not None else trace_ids.execution_trace_id(eid),
            span_id=trace_ids.execution_span_id(eid),
            parent_id=parent.span_id if parent is not None else None,
            sampled=parent.sampled if parent is not None else True,
            start=execution.started_at or execution.created_at,
            end=execution.completed_at,
            attributes=attributes,
            error=execution.error if execution.status.value == "failed" else None,
            stacktrace=None,
        )

    def _export(
        self,
        name: str,
        *,
        trace_id: int,
        span_id: int,
        parent_id: int | None,
        sampled: bool,
        start: datetime,
        end: datetime | None,
        attributes: dict[str, Any],
        error: str | None,
        stacktrace: str | None,
    ) -> None:
        flags = TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT)
        context = None
        if parent_id is not None:
            remote = SpanContext(trace_id, parent_id, is_remote=True, trace_flags=flags)
            context = trace.set_span_in_context(NonRecordingSpan(remote))
        elif not sampled:
            return
        self.ids.trace_id, self.ids.span_id = trace_id, span_id
        try:
            otel_span = self.tracer.start_span(
                name,
                context=context,
                kind=SpanKind.INTERNAL,
                attributes=attributes,
                start_time=_ns(start),
            )
        finally:
            self.ids.trace_id = self.ids.span_id = None
        if error is not None:
            otel_span.set_status(Status(StatusCode.ERROR, error))
            event = {"exception.message": error}
            if stacktrace:
                event["exception.stacktrace"] = stacktrace
            otel_span.add_event("exception", event, timestamp=_ns(end or start))
        otel_span.end(end_time=_ns(end) if end is not None else None)


def _ns(at: datetime) -> int:
    return int(at.timestamp() * 1_000_000_000)


_active: SpanExporter | None = None


def enable(tracer_provider: TracerProvider | None = None) -> SpanExporter:
    """Export node attempts and executions as spans of ``tracer_provider`` (default: the
    global one, which must be an opentelemetry-sdk ``TracerProvider``). Replaces an
    exporter enabled before."""
    global _active
    provider = tracer_provider if tracer_provider is not None else trace.get_tracer_provider()
    exporter = SpanExporter(provider)
    disable()
    events.add_sink(exporter)
    _active = exporter
    return exporter


def disable() -> None:
    """Stop exporting spans (no error when tracing was off)."""
    global _active
    if _active is not None:
        events.remove_sink(_active)
        _active = None


def active() -> SpanExporter | None:
    """The exporter enabled in this process, if any."""
    return _active
