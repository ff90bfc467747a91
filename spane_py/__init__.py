"""spane_py: an async-first distributed workflow engine on arq workers.

The public names below are imported on first use (PEP 562), so that importing one module of
the package (``spane_py.engine.planner``, say) loads only what that module needs; errors are
imported at once (they are small and every layer raises them).
"""

import importlib
import typing

from spane_py.errors import (
    ArtifactNotFoundError,
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
    WorkerStoppedError,
    WorkflowNotFoundError,
    WorkflowValidationError,
)

if typing.TYPE_CHECKING:
    from spane_py.api.app import create_app
    from spane_py.artifacts import ArtifactRef
    from spane_py.clock import Clock, SkippingClock, SystemClock
    from spane_py.context import ExecutionContext
    from spane_py.definitions.models import (
        BackoffPolicy,
        ConcurrencyLimit,
        NodeDefinition,
        RetryPolicy,
        ScheduleTrigger,
        WebhookTrigger,
        WorkflowDefinition,
    )
    from spane_py.dsl import Workflow
    from spane_py.engine.cache import CacheStats
    from spane_py.engine.control import BulkResult
    from spane_py.engine.engine import RegisteredWorkflow, WorkflowEngine
    from spane_py.engine.queue_view import QueueInfo
    from spane_py.limits import Limits
    from spane_py.observability.stream import EngineEvent, EventSubscription
    from spane_py.queue.client import QueueStats
    from spane_py.queue.presence import LiveWorker
    from spane_py.records import (
        DlqRecord,
        EventRecord,
        ExecutionPage,
        ResumeTokenRecord,
        WebhookRecord,
        WorkflowVersionRecord,
    )
    from spane_py.registry import NodeExecutor, NodeRegistry
    from spane_py.results import ExecutionResult, error_result, skipped_result, success_result
    from spane_py.retention import Retention
    from spane_py.settings import SpaneSettings
    from spane_py.state import (
        Artifact,
        ArtifactInfo,
        ExecutionState,
        ExecutionStatus,
        ExecutionTrace,
        LogView,
        NodeResult,
        NodeStatus,
        SpanView,
    )
    from spane_py.stores.base import ExecutionStore
    from spane_py.stores.base_retention import PruneResult
    from spane_py.stores.memory import InMemoryExecutionStore
    from spane_py.stores.postgres.store import PostgresExecutionStore
    from spane_py.traffic.breakers import BreakerState
    from spane_py.traffic.policies import CircuitBreakerPolicy, RateLimit
    from spane_py.triggers.scheduler import ScheduleInfo
    from spane_py.triggers.signatures import sign as sign_webhook

__version__ = "0.1.0"

# Public name -> the module that defines it ("module:attribute" where the name differs),
# imported on first use.
_LAZY = {
    "Artifact": "spane_py.state",
    "ArtifactInfo": "spane_py.state",
    "ArtifactRef": "spane_py.artifacts",
    "Clock": "spane_py.clock",
    "BackoffPolicy": "spane_py.definitions.models",
    "BreakerState": "spane_py.traffic.breakers",
    "BulkResult": "spane_py.engine.control",
    "CacheStats": "spane_py.engine.cache",
    "CircuitBreakerPolicy": "spane_py.traffic.policies",
    "ConcurrencyLimit": "spane_py.definitions.models",
    "create_app": "spane_py.api.app",
    "DlqRecord": "spane_py.records",
    "EngineEvent": "spane_py.observability.stream",
    "error_result": "spane_py.results",
    "EventRecord": "spane_py.records",
    "EventSubscription": "spane_py.observability.stream",
    "ExecutionContext": "spane_py.context",
    "ExecutionPage": "spane_py.records",
    "ExecutionResult": "spane_py.results",
    "ExecutionState": "spane_py.state",
    "ExecutionStatus": "spane_py.state",
    "ExecutionStore": "spane_py.stores.base",
    "ExecutionTrace": "spane_py.state",
    "InMemoryExecutionStore": "spane_py.stores.memory",
    "Limits": "spane_py.limits",
    "LiveWorker": "spane_py.queue.presence",
    "LogView": "spane_py.state",
    "NodeDefinition": "spane_py.definitions.models",
    "NodeExecutor": "spane_py.registry",
    "NodeRegistry": "spane_py.registry",
    "NodeResult": "spane_py.state",
    "NodeStatus": "spane_py.state",
    "PostgresExecutionStore": "spane_py.stores.postgres.store",
    "PruneResult": "spane_py.stores.base_retention",
    "QueueInfo": "spane_py.engine.queue_view",
    "QueueStats": "spane_py.queue.client",
    "RateLimit": "spane_py.traffic.policies",
    "RegisteredWorkflow": "spane_py.engine.engine",
    "ResumeTokenRecord": "spane_py.records",
    "Retention": "spane_py.retention",
    "RetryPolicy": "spane_py.definitions.models",
    "ScheduleInfo": "spane_py.triggers.scheduler",
    "ScheduleTrigger": "spane_py.definitions.models",
    "sign_webhook": "spane_py.triggers.signatures:sign",
    "skipped_result": "spane_py.results",
    "SkippingClock": "spane_py.clock",
    "SpaneSettings": "spane_py.settings",
    "SystemClock": "spane_py.clock",
    "SpanView": "spane_py.state",
    "success_result": "spane_py.results",
    "WebhookRecord": "spane_py.records",
    "WebhookTrigger": "spane_py.definitions.models",
    "Workflow": "spane_py.dsl",
    "WorkflowDefinition": "spane_py.definitions.models",
    "WorkflowEngine": "spane_py.engine.engine",
    "WorkflowVersionRecord": "spane_py.records",
}
# Names whose module needs an extra (postgres: asyncpg; api: FastAPI).
_EXTRAS = {"PostgresExecutionStore": "postgres", "create_app": "api"}


def __getattr__(name: str) -> object:
    where = _LAZY.get(name)
    if where is None:
        raise AttributeError(f"module 'spane_py' has no attribute {name!r}")
    module, _, attribute = where.partition(":")
    try:
        value = getattr(importlib.import_module(module), attribute or name)
    except ImportError as exc:
        extra = _EXTRAS.get(name)
        if extra is None:
            raise
        raise ImportError(
            f"{name} needs the {extra} extra: pip install 'spane-py[{extra}]' ({exc})"
        ) from exc
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "Artifact",
    "ArtifactInfo",
    "ArtifactNotFoundError",
    "ArtifactRef",
    "BackoffPolicy",
    "BreakerState",
    "BulkResult",
    "CacheStats",
    "CircuitBreakerOpenError",
    "CircuitBreakerPolicy",
    "Clock",
    "ConcurrencyLimit",
    "ConfigurationError",
    "DlqItemNotFoundError",
    "DlqRecord",
    "EngineEvent",
    "EventRecord",
    "EventSubscription",
    "ExecutionContext",
    "ExecutionNotFoundError",
    "ExecutionPage",
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
    "LiveWorker",
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
    "PruneResult",
    "QueueError",
    "QueueInfo",
    "QueueStats",
    "RateLimit",
    "RateLimitError",
    "RegisteredWorkflow",
    "ResumeTokenError",
    "ResumeTokenRecord",
    "Retention",
    "RetryPolicy",
    "ScheduleInfo",
    "ScheduleNotFoundError",
    "ScheduleTrigger",
    "SchemaVersionError",
    "SerializationError",
    "SkippingClock",
    "SpanView",
    "SpaneError",
    "SpaneSettings",
    "StatePersistenceError",
    "SystemClock",
    "WebhookNotFoundError",
    "WebhookPayloadError",
    "WebhookPayloadTooLargeError",
    "WebhookRecord",
    "WebhookSignatureError",
    "WebhookTrigger",
    "WorkerStoppedError",
    "Workflow",
    "WorkflowDefinition",
    "WorkflowEngine",
    "WorkflowNotFoundError",
    "WorkflowValidationError",
    "WorkflowVersionRecord",
    "__version__",
    "create_app",
    "error_result",
    "sign_webhook",
    "skipped_result",
    "success_result",
]
