"""spane_py: an async-first distributed workflow engine on arq workers."""

import importlib

from spane_py.context import ExecutionContext
from spane_py.definitions.models import (
    BackoffPolicy,
    NodeDefinition,
    RetryPolicy,
    ScheduleTrigger,
    WebhookTrigger,
    WorkflowDefinition,
)
from spane_py.dsl import Workflow
from spane_py.engine.control import BulkResult
from spane_py.engine.engine import RegisteredWorkflow, WorkflowEngine
from spane_py.errors import (
    CircuitBreakerOpenError,
    ConfigurationError,
    DlqItemNotFoundError,
    ExecutionNotFoundError,
    ExecutionTimeoutError,
    ExecutionWaitTimeoutError,
    InvalidEnqueueOptionsError,
    InvalidExecutionStateError,
    InvalidInputError,
    InvalidTriggerError,
    MaxDepthExceededError,
    NodeExecutionError,
    NodeNotRegisteredError,
    NodeTimeoutError,
    NonRetryableError,
    QueueError,
    RateLimitError,
    ResumeTokenError,
    ScheduleNotFoundError,
    SchemaVersionError,
    SerializationError,
    SpaneError,
    StatePersistenceError,
    WebhookNotFoundError,
    WebhookPayloadError,
    WebhookPayloadTooLargeError,
    WebhookSignatureError,
    WorkflowNotFoundError,
    WorkflowValidationError,
)
from spane_py.limits import Limits
from spane_py.observability.stream import EngineEvent, EventSubscription
from spane_py.registry import NodeExecutor, NodeRegistry
from spane_py.results import ExecutionResult, error_result, skipped_result, success_result
from spane_py.state import (
    ExecutionState,
    ExecutionStatus,
    ExecutionTrace,
    LogView,
    NodeResult,
    NodeStatus,
    SpanView,
)
from spane_py.stores.base import ExecutionStore
from spane_py.stores.memory import InMemoryExecutionStore
from spane_py.traffic.policies import CircuitBreakerPolicy, RateLimit

__version__ = "0.1.0"

# Needs the ``postgres`` extra (asyncpg, SQLAlchemy, Alembic): imported on first use.
_LAZY = {"PostgresExecutionStore": "spane_py.stores.postgres.store"}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'spane_py' has no attribute {name!r}")
    try:
        value = getattr(importlib.import_module(module), name)
    except ImportError as exc:
        raise ImportError(
            f"{name} needs the postgres extra: pip install 'spane-py[postgres]' ({exc})"
        ) from exc
    globals()[name] = value
    return value


__all__ = [
    "BackoffPolicy",
    "BulkResult",
    "CircuitBreakerOpenError",
    "CircuitBreakerPolicy",
    "ConfigurationError",
    "DlqItemNotFoundError",
    "EngineEvent",
    "EventSubscription",
    "ExecutionContext",
    "ExecutionNotFoundError",
    "ExecutionResult",
    "ExecutionState",
    "ExecutionStatus",
    "ExecutionStore",
    "ExecutionTimeoutError",
    "ExecutionTrace",
    "ExecutionWaitTimeoutError",
    "InMemoryExecutionStore",
    "InvalidEnqueueOptionsError",
    "InvalidExecutionStateError",
    "InvalidInputError",
    "InvalidTriggerError",
    "Limits",
    "LogView",
    "MaxDepthExceededError",
    "NodeDefinition",
    "NodeExecutionError",
    "NodeExecutor",
    "NodeNotRegisteredError",
    "NodeRegistry",
    "NodeResult",
    "NodeStatus",
    "NodeTimeoutError",
    "NonRetryableError",
    "PostgresExecutionStore",
    "QueueError",
    "RateLimit",
    "RateLimitError",
    "RegisteredWorkflow",
    "ResumeTokenError",
    "RetryPolicy",
    "ScheduleNotFoundError",
    "ScheduleTrigger",
    "SchemaVersionError",
    "SerializationError",
    "SpanView",
    "SpaneError",
    "StatePersistenceError",
    "WebhookNotFoundError",
    "WebhookPayloadError",
    "WebhookPayloadTooLargeError",
    "WebhookSignatureError",
    "WebhookTrigger",
    "Workflow",
    "WorkflowDefinition",
    "WorkflowEngine",
    "WorkflowNotFoundError",
    "WorkflowValidationError",
    "__version__",
    "error_result",
    "skipped_result",
    "success_result",
]
