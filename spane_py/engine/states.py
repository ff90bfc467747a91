"""Store records -> the public ``ExecutionState``."""

from __future__ import annotations

from collections.abc import Mapping

from spane_py import _json
from spane_py.context import record_to_result
from spane_py.records import ArtifactRecord, ExecutionRecord, LogRecord, NodeRecord, SpanRecord
from spane_py.state import ArtifactInfo, ExecutionState, LogView, NodeResult, SpanView


def to_state(record: ExecutionRecord, nodes: Mapping[str, NodeRecord]) -> ExecutionState:
    results = {}
    for node_id, rec in nodes.items():
        res = record_to_result(rec)
        results[node_id] = NodeResult(
            node_id=node_id,
            status=rec.status,
            success=res.success,
            data=res.data,
            error=rec.error,
            next_nodes=res.next_nodes if res.next_nodes is None else list(res.next_nodes),
            skipped=rec.skipped,
            attempts=rec.attempts,
            started_at=rec.started_at,
            completed_at=rec.completed_at,
        )
    return ExecutionState(
        execution_id=record.execution_id,
        workflow_id=record.workflow_id,
        workflow_version=record.workflow_version,
        status=record.status,
        node_results=results,
        started_at=record.started_at or record.created_at,
        completed_at=record.completed_at,
        parent_execution_id=record.parent_execution_id,
        depth=record.depth,
        initial_data=_json.loads(record.initial_data),
        metadata=dict(record.metadata),
        error=record.error,
        priority=record.priority,
        output=None if record.output is None else _json.loads(record.output),
    )


def to_span(record: SpanRecord) -> SpanView:
    return SpanView(
        span_id=record.span_id,
        node_id=record.node_id,
        name=record.name,
        attempt=record.attempt,
        status=record.status,
        started_at=record.started_at,
        ended_at=record.ended_at,
        worker_id=record.worker_id,
        error=record.error,
        traceback=record.traceback,
        attributes=dict(record.attributes),
    )


def to_log(record: LogRecord) -> LogView:
    return LogView(
        timestamp=record.timestamp,
        level=record.level,
        message=record.message,
        node_id=record.node_id,
        fields=dict(record.fields),
    )


def to_artifact(record: ArtifactRecord) -> ArtifactInfo:
    return ArtifactInfo(
        execution_id=record.execution_id,
        name=record.name,
        node_id=record.node_id,
        content_type=record.content_type,
        size=record.size,
        created_at=record.created_at,
    )
