"""spane_py: an async-first distributed workflow engine on arq workers."""

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
from spane_py.engine.engine import RegisteredWorkflow, WorkflowEngine
from spane_py.errors import (
    ConfigurationError,
    ExecutionNotFoundError,
    ExecutionTimeoutError,
    ExecutionWaitTimeoutError,
    InvalidEnqueueOptionsError,
    MaxDepthExceededError,
    NodeExecutionError,
    NodeNotRegisteredError,
    NodeTimeoutError,
    NonRetryableError,
    QueueError,
    SchemaVersionError,
    SerializationError,
    SpaneError,
    StatePersistenceError,
    WorkflowNotFoundError,
    WorkflowValidationError,
)
from spane_py.registry import NodeExecutor, NodeRegistry
from spane_py.results import ExecutionResult, error_result, skipped_result, success_result
from spane_py.state import ExecutionState, ExecutionStatus, NodeResult, NodeStatus
from spane_py.stores.base import ExecutionStore
from spane_py.stores.memory import InMemoryExecutionStore

__version__ = "0.1.0"

__all__ = [
    "BackoffPolicy",
    "ConfigurationError",
    "ExecutionContext",
    "ExecutionNotFoundError",
    "ExecutionResult",
    "ExecutionState",
    "ExecutionStatus",
    "ExecutionStore",
    "ExecutionTimeoutError",
    "ExecutionWaitTimeoutError",
    "InMemoryExecutionStore",
    "InvalidEnqueueOptionsError",
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
    "QueueError",
    "RegisteredWorkflow",
    "RetryPolicy",
    "ScheduleTrigger",
    "SchemaVersionError",
    "SerializationError",
    "SpaneError",
    "StatePersistenceError",
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
