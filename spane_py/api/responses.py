"""Store records and engine objects -> the API's response models."""

from __future__ import annotations

from datetime import datetime

from spane_py import _json
from spane_py.api import models
from spane_py.definitions.graph import WorkflowGraph
from spane_py.engine import planner
from spane_py.engine.queue_view import QueueInfo
from spane_py.queue.presence import LiveWorker
from spane_py.records import (
    DlqRecord,
    ExecutionRecord,
    ExecutionSnapshot,
    ResumeTokenRecord,
    WorkflowVersionRecord,
)
from spane_py.state import NodeStatus


def workflow_summary(record: WorkflowVersionRecord) -> models.WorkflowSummary:
    d = record.definition
    return models.WorkflowSummary(
        workflow_id=record.workflow_id,
        version=record.version,
        name=d.name,
        description=d.description,
        content_hash=record.content_hash,
        created_at=record.created_at,
        change_notes=record.change_notes,
        active=record.active,
        node_count=len(d.nodes),
    )


# What the API shows in place of a webhook trigger's secret.
REDACTED = "***"


def workflow_version(record: WorkflowVersionRecord) -> models.WorkflowVersion:
    """The version with its definition in the SPANE shape; webhook secrets are never
    shown (``REDACTED``)."""
    definition = record.definition.to_spane_json()
    for trigger in definition.get("triggers", []):
        config = trigger.get("config", {})
        if config.get("secret") is not None:
            config["secret"] = REDACTED
    return models.WorkflowVersion(**workflow_summary(record).model_dump(), definition=definition)


def execution_summary(record: ExecutionRecord) -> models.ExecutionSummary:
    started = record.started_at
    duration = None
    if started is not None and record.completed_at is not None:
        duration = (record.completed_at - started).total_seconds() * 1000.0
    return models.ExecutionSummary(
        execution_id=record.execution_id,
        workflow_id=record.workflow_id,
        workflow_version=record.workflow_version,
        status=record.status,
        created_at=record.created_at,
        started_at=started,
        completed_at=record.completed_at,
        duration_ms=duration,
        error=record.error,
        parent_execution_id=record.parent_execution_id,
        depth=record.depth,
        priority=record.priority,
        metadata=dict(record.metadata),
        output=None if record.output is None else _json.loads(record.output),
    )


def execution_graph(graph: WorkflowGraph, snapshot: ExecutionSnapshot) -> models.ExecutionGraph:
    """Each node of the DAG (in topological order) with its status and, once it started,
    the input it got under SPANE's data-passing rules (the planner's own function)."""
    nodes = dict(snapshot.nodes)
    out = []
    for node_id in graph.order:
        node = graph.nodes[node_id]
        record = nodes.get(node_id)
        status = record.status if record is not None else NodeStatus.PENDING
        started = record is not None and (
            record.started_at is not None or record.status.is_terminal
        )
        out.append(
            models.GraphNode(
                id=node_id,
                type=node.type,
                name=node.name,
                parents=list(graph.parents[node_id]),
                children=list(graph.children[node_id]),
                status=status.value,
                input=(
                    planner.node_input(graph, node_id, snapshot.execution, nodes)
                    if started and status is not NodeStatus.SKIPPED
                    else None
                ),
            )
        )
    return models.ExecutionGraph(
        workflow_id=graph.workflow_id,
        version=snapshot.execution.workflow_version,
        entry_nodes=list(graph.entry_nodes),
        nodes=out,
    )


def resume_token(record: ResumeTokenRecord, now: datetime) -> models.ResumeToken:
    return models.ResumeToken(
        token=record.token,
        execution_id=record.execution_id,
        node_id=record.node_id,
        state=record.state(now),  # active, used, revoked or expired
        created_at=record.created_at,
        expires_at=record.expires_at,
        used_at=record.used_at,
        revoked_at=record.revoked_at,
    )


def dlq_item(record: DlqRecord) -> models.DlqItem:
    assert record.dlq_id is not None  # a stored item has its id
    return models.DlqItem(
        dlq_id=record.dlq_id,
        execution_id=record.execution_id,
        workflow_id=record.workflow_id,
        node_id=record.node_id,
        error=record.error,
        attempts=record.attempts,
        failed_at=record.failed_at,
        traceback=record.traceback,
        retried_at=record.retried_at,
        job=dict(record.job),
    )


def live_worker(w: LiveWorker) -> models.LiveWorker:
    return models.LiveWorker(
        worker_id=w.worker_id,
        seconds_since_beat=w.seconds_since_beat,
        queues=list(w.queues),
        concurrency=w.concurrency,
        host=w.host,
        pid=w.pid,
        started_at=w.started_at,
        running=w.running,
    )


def queue_info(q: QueueInfo) -> models.QueueInfo:
    return models.QueueInfo(
        name=q.name,
        queued=q.queued,
        running=q.running,
        oldest_waiting_s=q.oldest_waiting_s,
        workers=q.workers,
        unserved=q.unserved,
    )


__all__ = [
    "dlq_item",
    "execution_graph",
    "execution_summary",
    "live_worker",
    "queue_info",
    "resume_token",
    "workflow_summary",
    "workflow_version",
]
