"""Workflow definitions: models, graph checks, content hash."""

from spane_py.definitions.graph import WorkflowGraph, compile_workflow, content_hash
from spane_py.definitions.models import (
    BackoffPolicy,
    NodeDefinition,
    RetryDecision,
    RetryPolicy,
    ScheduleTrigger,
    WebhookTrigger,
    WorkflowDefinition,
)

__all__ = [
    "BackoffPolicy",
    "NodeDefinition",
    "RetryDecision",
    "RetryPolicy",
    "ScheduleTrigger",
    "WebhookTrigger",
    "WorkflowDefinition",
    "WorkflowGraph",
    "compile_workflow",
    "content_hash",
]
