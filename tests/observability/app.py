"""The worker application of ``test_across_processes.py``: ``spane worker
tests.observability.app:make_engine``.

Environment: ``REDIS_URL``, ``DATABASE_URL``, ``SPANE_KEY_PREFIX``, ``SPANE_DB_SCHEMA``
(already migrated) as for any worker; ``OBS_SPANS_FILE``: when set, the worker exports its
OpenTelemetry spans there, one JSON object per line (trace id, span id, parent id, name,
attributes), for the test to read.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

from spane_py import NodeRegistry, WorkflowEngine
from spane_py.settings import SpaneSettings
from tests.observability._support import register_types


class JsonLinesExporter(SpanExporter):
    def __init__(self, path: str) -> None:
        self.path = path
        self.lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = []
        for s in spans:
            assert s.context is not None
            lines.append(
                json.dumps(
                    {
                        "trace_id": s.context.trace_id,
                        "span_id": s.context.span_id,
                        "parent_id": s.parent.span_id if s.parent is not None else None,
                        "name": s.name,
                        "attributes": dict(s.attributes or {}),
                    }
                )
            )
        with self.lock, open(self.path, "a", encoding="utf-8") as f:
            f.write("".join(line + "\n" for line in lines))
        return SpanExportResult.SUCCESS


def make_engine() -> WorkflowEngine:
    registry = NodeRegistry()
    register_types(registry)
    tracing: object = False
    spans = os.environ.get("OBS_SPANS_FILE")
    if spans:
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(JsonLinesExporter(spans)))
        tracing = provider
    kwargs = SpaneSettings().engine_kwargs()
    kwargs["poll_delay"] = 0.05
    return WorkflowEngine(registry, tracing=tracing, **kwargs)
