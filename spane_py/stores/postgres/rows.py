"""Rows -> records: one mapper per record the PostgreSQL store reads, by column name.

Each mapper reads the columns its statements in sql.py select, by the names asyncpg gives
them (a cast keeps the column's name: ``execution_id::text`` is ``execution_id``). The one
exception is a snapshot's nodes: an anonymous ``ROW(...)`` composite, which asyncpg decodes
as a tuple without names. Its values are in the order of ``sql.NODE_FIELDS``, the list the
statement's ``ROW(...)`` is built from, and are named from it here before mapping.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from spane_py import _json
from spane_py.definitions.models import STORED, WorkflowDefinition
from spane_py.records import (
    ArtifactRecord,
    DlqRecord,
    EventRecord,
    ExecutionRecord,
    ExecutionSnapshot,
    LogRecord,
    NodeRecord,
    PendingNode,
    ResumeTokenRecord,
    ScheduleRecord,
    SpanRecord,
    WebhookRecord,
    WorkflowVersionRecord,
)
from spane_py.state import ExecutionStatus, NodeStatus
from spane_py.stores.postgres import sql


class Row(Protocol):
    """A row read by column name: an ``asyncpg.Record``, or a dict."""

    def __getitem__(self, column: str, /) -> Any: ...


def execution(row: Row) -> ExecutionRecord:
    """``sql.EXECUTION_COLUMNS``."""
    return ExecutionRecord(
        execution_id=row["execution_id"],
        workflow_id=row["workflow_id"],
        workflow_version=row["workflow_version"],
        status=ExecutionStatus(row["status"]),
        initial_data=row["initial_data"],
        metadata=_json.loads(row["metadata"]),
        parent_execution_id=row["parent_execution_id"],
        parent_node_id=row["parent_node_id"],
        depth=row["depth"],
        priority=row["priority"],
        idempotency_key=row["idempotency_key"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        completed_at=row["completed_at"],
        error=row["error"],
        concurrency_key=row["concurrency_key"],
        output=row["output"],
    )


def node(row: Row) -> NodeRecord:
    """``sql.NODE_READ_COLUMNS``."""
    next_nodes = row["next_nodes"]
    return NodeRecord(
        node_id=row["node_id"],
        status=NodeStatus(row["status"]),
        generation=row["generation"],
        attempts=row["attempts"],
        output=row["output"],
        error=row["error"],
        next_nodes=tuple(next_nodes) if next_nodes is not None else None,
        skipped=row["skipped"],
        queued_at=row["queued_at"],
        started_at=row["started_at"],
        completed_at=row["completed_at"],
        wake_at=row["wake_at"],
        wait=row["wait"],
        wait_child=row["wait_child"],
    )


def composite_node(values: Sequence[Any]) -> NodeRecord:
    """A node of a snapshot: the unnamed values of ``ROW(sql.NODE_READ_COLUMNS)``, in the
    order of ``sql.NODE_FIELDS``."""
    return node(dict(zip(sql.NODE_FIELDS, values, strict=True)))


def snapshot(row: Row) -> ExecutionSnapshot:
    """``sql.SNAPSHOT``: an execution's columns, its ``revision`` and its ``nodes``."""
    nodes = (composite_node(values) for values in row["nodes"])
    return ExecutionSnapshot(execution(row), {n.node_id: n for n in nodes}, row["revision"])


def pending_node(row: Row) -> PendingNode:
    """``sql_backlog.PENDING_NODES``."""
    return PendingNode(
        execution_id=row["execution_id"],
        workflow_id=row["workflow_id"],
        workflow_version=row["workflow_version"],
        node_id=row["node_id"],
        generation=row["generation"],
        priority=row["priority"],
    )


def version(row: Row) -> WorkflowVersionRecord:
    """``sql._VERSION_COLUMNS``."""
    return WorkflowVersionRecord(
        workflow_id=row["workflow_id"],
        version=row["version"],
        definition=WorkflowDefinition.model_validate_json(row["definition"], context=STORED),
        content_hash=row["content_hash"],
        created_at=row["created_at"],
        change_notes=row["change_notes"],
        active=row["active"],
    )


def dlq(row: Row) -> DlqRecord:
    """``sql._DLQ_COLUMNS``."""
    return DlqRecord(
        dlq_id=row["dlq_id"],
        execution_id=row["execution_id"],
        workflow_id=row["workflow_id"],
        node_id=row["node_id"],
        job=_json.loads(row["job"]),
        error=row["error"],
        traceback=row["traceback"],
        attempts=row["attempts"],
        failed_at=row["failed_at"],
        retried_at=row["retried_at"],
    )


def token(row: Row) -> ResumeTokenRecord:
    """``sql._TOKEN_COLUMNS``."""
    return ResumeTokenRecord(
        token=row["token"],
        execution_id=row["execution_id"],
        node_id=row["node_id"],
        generation=row["generation"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        used_at=row["used_at"],
        revoked_at=row["revoked_at"],
    )


def span(row: Row) -> SpanRecord:
    """``sql.GET_SPANS``."""
    return SpanRecord(
        span_id=row["span_id"],
        execution_id=row["execution_id"],
        node_id=row["node_id"],
        name=row["name"],
        attempt=row["attempt"],
        status=row["status"],
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        worker_id=row["worker_id"],
        error=row["error"],
        traceback=row["traceback"],
        attributes=_json.loads(row["attributes"]),
    )


def log(row: Row) -> LogRecord:
    """``sql.GET_LOGS``."""
    return LogRecord(
        execution_id=row["execution_id"],
        node_id=row["node_id"],
        level=row["level"],
        message=row["message"],
        fields=_json.loads(row["fields"]),
        timestamp=row["logged_at"],
    )


def schedule(row: Row) -> ScheduleRecord:
    """``sql._SCHEDULE_COLUMNS``."""
    return ScheduleRecord(
        schedule_id=row["schedule_id"],
        workflow_id=row["workflow_id"],
        cron=row["cron"],
        timezone=row["timezone"],
        created_at=row["created_at"],
        missed=row["missed"],
        paused=row["paused"],
        last_tick=row["last_tick"],
    )


def webhook(row: Row) -> WebhookRecord:
    """``sql._WEBHOOK_COLUMNS``."""
    return WebhookRecord(
        path=row["path"],
        method=row["method"],
        workflow_id=row["workflow_id"],
        secret=row["secret"],
        created_at=row["created_at"],
    )


def artifact(row: Row) -> ArtifactRecord:
    """``sql_artifacts._COLUMNS``."""
    return ArtifactRecord(
        execution_id=row["execution_id"],
        name=row["name"],
        node_id=row["node_id"],
        content_type=row["content_type"],
        size=row["size"],
        created_at=row["created_at"],
    )


def event(row: Row) -> EventRecord:
    """``sql_events._SELECT``."""
    return EventRecord(
        type=row["type"],
        at=row["at"],
        execution_id=row["execution_id"],
        workflow_id=row["workflow_id"],
        node_id=row["node_id"],
        fields=_json.loads(row["fields"]),
    )
