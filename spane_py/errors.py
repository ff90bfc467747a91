"""Every error spane_py raises on purpose.

    SpaneError
    ├── ConfigurationError
    ├── WorkflowValidationError
    │   └── NodeNotRegisteredError
    ├── WorkflowNotFoundError
    ├── ExecutionNotFoundError
    ├── SerializationError
    ├── InvalidEnqueueOptionsError
    ├── InvalidInputError           (HTTP 422)
    ├── NodeExecutionError
    │   ├── NodeTimeoutError
    │   ├── NonRetryableError
    │   ├── RateLimitError
    │   └── CircuitBreakerOpenError
    ├── ExecutionTimeoutError
    ├── ExecutionWaitTimeoutError
    ├── MaxDepthExceededError
    ├── InvalidExecutionStateError
    ├── ResumeTokenError
    ├── DlqItemNotFoundError
    ├── ArtifactNotFoundError
    ├── InvalidTriggerError
    ├── ScheduleNotFoundError
    ├── WebhookNotFoundError        (HTTP 404)
    ├── WebhookSignatureError       (HTTP 401)
    ├── WebhookPayloadError         (HTTP 400)
    │   └── WebhookPayloadTooLargeError (HTTP 413)
    ├── StatePersistenceError
    │   └── SchemaVersionError
    └── QueueError
        └── WorkerStoppedError

Each class's docstring is its default message. Every error carries the SPANE fields
(``code``, ``workflow_id``, ``execution_id``, ``node_id``, ``timestamp``); driver errors
(redis, asyncpg) are wrapped at the store and queue boundaries with ``__cause__`` kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar


class SpaneError(Exception):
    """spane_py error."""

    code: ClassVar[str] = "UNKNOWN_ERROR"

    def __init__(
        self,
        message: str | None = None,
        *,
        workflow_id: str | None = None,
        execution_id: str | None = None,
        node_id: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        self.message = message or (type(self).__doc__ or "").strip()
        self.workflow_id = workflow_id
        self.execution_id = execution_id
        self.node_id = node_id
        self.details = details or {}
        self.timestamp = datetime.now(UTC)
        super().__init__(self.message)

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "workflow_id": self.workflow_id,
            "execution_id": self.execution_id,
            "node_id": self.node_id,
            "details": self.details,
            "timestamp": self.timestamp.isoformat(),
        }


class ConfigurationError(SpaneError):
    """The engine is configured wrongly."""

    code = "INVALID_CONFIG"


class IssueKind(StrEnum):
    """What is wrong, for each ``ValidationIssue`` of a ``WorkflowValidationError``."""

    INVALID_JSON = "invalid_json"  # text that is not JSON, or JSON that is not an object
    TOO_LARGE = "too_large"  # over a size, node-count or nesting limit (reported alone)
    INVALID_FIELD = "invalid_field"  # a field of the wrong type or value, or an unknown one
    NO_NODES = "no_nodes"
    DUPLICATE_NODE_ID = "duplicate_node_id"
    SELF_REFERENCE = "self_reference"  # a node listing itself in its inputs or outputs
    UNKNOWN_REFERENCE = "unknown_reference"  # an edge to or from a node that does not exist
    DUPLICATE_REFERENCE = "duplicate_reference"  # the same node listed twice
    EDGE_MISMATCH = "edge_mismatch"  # both sides written, and they disagree
    CYCLE = "cycle"
    UNKNOWN_ENTRY_NODE = "unknown_entry_node"
    NODE_NOT_REGISTERED = "node_not_registered"  # no executor for the type in this process
    INVALID_CONFIG = "invalid_config"  # a node's config does not match its type's model


@dataclass(frozen=True, slots=True)
class ValidationIssue:
    """One problem found in a workflow definition: what (``kind``) and where.

    ``node_id``: the node it is about; ``edge``: ``(parent, child)`` when it is about an
    edge (for a cycle, the edge that closes it); ``path``: the field, inside the node when
    ``node_id`` is set (``("config", "url")``), else inside the definition (``("id",)``).
    """

    message: str
    node_id: str | None = None
    path: tuple[str, ...] = ()
    kind: IssueKind = IssueKind.INVALID_FIELD
    edge: tuple[str, str] | None = None

    def __str__(self) -> str:
        return self.message

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": str(self.kind),
            "message": self.message,
            "node_id": self.node_id,
            "edge": list(self.edge) if self.edge is not None else None,
            "path": list(self.path),
        }


MAX_ISSUES_IN_MESSAGE = 10


class WorkflowValidationError(SpaneError):
    """The workflow definition is invalid.

    ``issues`` lists every problem found, each a ``ValidationIssue`` (kind and location);
    ``details`` carries them as ``"problems"`` (dicts) and ``"issues"`` (their messages).
    """

    code = "WORKFLOW_VALIDATION_FAILED"

    def __init__(
        self,
        message: str | None = None,
        *,
        issues: list[ValidationIssue] | None = None,
        workflow_id: str | None = None,
        node_id: str | None = None,
    ) -> None:
        self.issues = list(issues or [])
        if message is None and self.issues:
            head = f"workflow {workflow_id!r} is invalid" if workflow_id else "workflow is invalid"
            shown = [i.message for i in self.issues[:MAX_ISSUES_IN_MESSAGE]]
            more = len(self.issues) - len(shown)
            message = head + ": " + "; ".join(shown)
            if more:
                message += f"; and {more} more problem{'s' if more > 1 else ''} (see .issues)"
        super().__init__(
            message,
            workflow_id=workflow_id,
            node_id=node_id,
            details={
                "issues": [i.message for i in self.issues],
                "problems": [i.to_dict() for i in self.issues],
            },
        )


class NodeNotRegisteredError(WorkflowValidationError):
    """A node uses a type that has no registered executor."""

    code = "NODE_NOT_REGISTERED"


def invalid_workflow(
    issues: list[ValidationIssue], workflow_id: str | None = None
) -> WorkflowValidationError:
    """The error for a definition with these problems: ``NodeNotRegisteredError`` when
    every one is an unregistered node type, else ``WorkflowValidationError``."""
    if issues and all(i.kind == IssueKind.NODE_NOT_REGISTERED for i in issues):
        return NodeNotRegisteredError(issues=issues, workflow_id=workflow_id)
    return WorkflowValidationError(issues=issues, workflow_id=workflow_id)


class WorkflowNotFoundError(SpaneError):
    """The workflow is not registered."""

    code = "WORKFLOW_NOT_FOUND"


class ExecutionNotFoundError(SpaneError):
    """The execution does not exist."""

    code = "EXECUTION_NOT_FOUND"


class SerializationError(SpaneError):
    """A value is not JSON-serializable."""

    code = "SERIALIZATION_FAILED"


class InvalidEnqueueOptionsError(SpaneError):
    """An enqueue option is out of range."""

    code = "INVALID_ENQUEUE_OPTIONS"


class InvalidInputError(SpaneError):
    """An argument cannot be used: text the stores cannot hold (a NUL character, a lone
    surrogate).

    ``details["field"]`` names the argument (``execution_id``, ``change_notes``, ...).
    """

    code = "INVALID_INPUT"
    http_status: ClassVar[int] = 422


class NodeExecutionError(SpaneError):
    """A node failed."""

    code = "NODE_EXECUTION_FAILED"


class NodeTimeoutError(NodeExecutionError):
    """A node ran past its timeout."""

    code = "NODE_TIMEOUT"


class NonRetryableError(NodeExecutionError):
    """A node failed in a way that retrying cannot fix."""

    code = "NODE_NON_RETRYABLE"


class RateLimitError(NodeExecutionError):
    """The service the node calls is rate limited: run the node again later.

    Raised by ``ctx.rate_limit(ms)`` inside an executor (SPANE's ``ctx.rateLimit``): the node
    is deferred by ``retry_after_ms`` without counting an attempt, and its node type is held
    back for that long in every worker process.
    """

    code = "RATE_LIMIT_EXCEEDED"

    def __init__(
        self,
        message: str | None = None,
        *,
        retry_after_ms: float,
        workflow_id: str | None = None,
        execution_id: str | None = None,
        node_id: str | None = None,
    ) -> None:
        self.retry_after_ms = retry_after_ms
        super().__init__(
            message or f"rate limited: retry in {retry_after_ms:g} ms",
            workflow_id=workflow_id,
            execution_id=execution_id,
            node_id=node_id,
            details={"retry_after_ms": retry_after_ms},
        )


class CircuitBreakerOpenError(NodeExecutionError):
    """The circuit breaker of the node's type is open: the service was not called."""

    code = "CIRCUIT_BREAKER_OPEN"


class ExecutionTimeoutError(SpaneError):
    """The execution ran past its timeout."""

    code = "EXECUTION_TIMEOUT"


class ExecutionWaitTimeoutError(SpaneError, TimeoutError):
    """The execution did not finish within the time waited for it."""

    code = "EXECUTION_WAIT_TIMEOUT"


class MaxDepthExceededError(SpaneError):
    """Sub-workflows are nested deeper than allowed."""

    code = "EXECUTION_MAX_DEPTH_EXCEEDED"


class InvalidExecutionStateError(SpaneError):
    """The execution is not in a state that allows this operation."""

    code = "INVALID_EXECUTION_STATE"


class ResumeTokenError(SpaneError):
    """The resume token is unknown, expired, used or revoked.

    ``details["reason"]`` says which: unknown, expired, used, revoked or not_waiting.
    """

    code = "RESUME_TOKEN_INVALID"


class DlqItemNotFoundError(SpaneError):
    """No dead-letter item has this id."""

    code = "DLQ_ITEM_NOT_FOUND"


class ArtifactNotFoundError(SpaneError):
    """The execution has no artifact of this name."""

    code = "ARTIFACT_NOT_FOUND"


class InvalidTriggerError(SpaneError):
    """A workflow's triggers cannot be registered (a duplicate, or a webhook path and
    method bound to another workflow)."""

    code = "INVALID_TRIGGER"


class ScheduleNotFoundError(SpaneError):
    """No schedule has this id."""

    code = "SCHEDULE_NOT_FOUND"


class WebhookNotFoundError(SpaneError):
    """No active workflow is bound to this webhook path and method."""

    code = "WEBHOOK_NOT_FOUND"
    http_status: ClassVar[int] = 404


class WebhookSignatureError(SpaneError):
    """The webhook's signature is missing or wrong; nothing was started.

    ``details["reason"]`` says which: missing, malformed or mismatch.
    """

    code = "WEBHOOK_SIGNATURE_INVALID"
    http_status: ClassVar[int] = 401


class WebhookPayloadError(SpaneError):
    """The webhook's body is not JSON; nothing was started."""

    code = "WEBHOOK_PAYLOAD_INVALID"
    http_status: ClassVar[int] = 400


class WebhookPayloadTooLargeError(WebhookPayloadError):
    """The webhook's body is over the payload limit; it was not read on, nothing was
    started."""

    code = "PAYLOAD_TOO_LARGE"
    http_status: ClassVar[int] = 413


class StatePersistenceError(SpaneError):
    """The state store failed."""

    code = "STATE_PERSISTENCE_FAILED"


class SchemaVersionError(StatePersistenceError):
    """The database schema does not match this version of spane_py."""

    code = "SCHEMA_VERSION_MISMATCH"


class QueueError(SpaneError):
    """The job queue (Redis) failed."""

    code = "QUEUE_ERROR"


class WorkerStoppedError(QueueError):
    """A critical side task of the worker (lease renewal) kept failing: the worker stopped."""

    code = "WORKER_STOPPED"
