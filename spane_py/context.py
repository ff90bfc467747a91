"""``ExecutionContext``: what a node executor is given."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, NoReturn

import orjson
from pydantic import BaseModel

from spane_py import _json
from spane_py._text import storable, storable_value
from spane_py.artifacts import ArtifactRef, Artifacts, decode, target
from spane_py.definitions.models import NodeDefinition
from spane_py.errors import ConfigurationError, NonRetryableError, RateLimitError
from spane_py.limits import MAX_DELAY_MS
from spane_py.records import LogRecord, NodeRecord
from spane_py.results import ExecutionResult
from spane_py.state import NodeStatus

node_logger = logging.getLogger("spane_py.node")
_UNDECODED: Any = object()  # ``ExecutionContext.initial_data`` not decoded yet

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}


def record_to_result(record: NodeRecord) -> ExecutionResult:
    return ExecutionResult(
        success=record.status in (NodeStatus.SUCCEEDED, NodeStatus.SKIPPED),
        data=record.data,
        error=record.error,
        next_nodes=list(record.next_nodes) if record.next_nodes is not None else None,
        skipped=record.skipped,
    )


def _loggable(fields: dict[str, Any]) -> dict[str, Any]:
    """A log line's fields as the stores can keep them: text PostgreSQL refuses becomes
    U+FFFD, and a value JSON cannot carry (an object, a set) becomes its ``repr``, where it
    used to make the line's write fail (and with it the node's result)."""
    fields = storable_value(fields)
    try:
        orjson.dumps(fields)
    except TypeError:
        try:
            return dict(
                orjson.loads(orjson.dumps(fields, default=repr, option=orjson.OPT_NON_STR_KEYS))
            )
        except TypeError:  # what ``default`` does not reach: an int past 64 bits, say
            return {str(k): storable(repr(v)) for k, v in fields.items()}
    return fields


class ExecutionContext:
    """Everything an executor needs about the node it runs (SPANE's fields, snake_case).

    ``previous_results`` holds the results of the node's parents, ``all_node_results``
    those of every node finished so far; both are decoded on first access.
    ``log(level, message, **fields)`` records a structured log line for the node;
    ``put_artifact``, ``get_artifact`` and ``artifact_ref`` keep and read the execution's
    artifacts (spane_py/artifacts.py).
    """

    __slots__ = (
        "_all",
        "_artifacts",
        "_cancel",
        "_initial",
        "_initial_text",
        "_logs",
        "_parent_ids",
        "_previous",
        "_records",
        "attempt",
        "config",
        "depth",
        "execution_id",
        "input_data",
        "metadata",
        "node",
        "node_config",
        "node_id",
        "parent_execution_id",
        "workflow_id",
        "workflow_version",
    )

    def __init__(
        self,
        *,
        workflow_id: str,
        execution_id: str,
        node: NodeDefinition,
        input_data: Any,
        records: Mapping[str, NodeRecord],
        parent_ids: tuple[str, ...] = (),
        workflow_version: int = 1,
        parent_execution_id: str | None = None,
        depth: int = 0,
        attempt: int = 1,
        metadata: Mapping[str, Any] | None = None,
        config: BaseModel | None = None,
        initial_data: str = "null",
        artifacts: Artifacts | None = None,
    ) -> None:
        self.workflow_id = workflow_id
        self.execution_id = execution_id
        self.node = node
        self.node_id = node.id
        self.node_config: dict[str, Any] = node.config
        self.input_data = input_data
        self.workflow_version = workflow_version
        self.parent_execution_id = parent_execution_id
        self.depth = depth
        self.attempt = attempt
        self.metadata: Mapping[str, Any] = metadata or {}
        self.config = config
        self._records = records
        self._parent_ids = parent_ids
        self._previous: tuple[str, ...] | dict[str, ExecutionResult] = parent_ids
        self._all: dict[str, ExecutionResult] | None = None
        self._logs: list[LogRecord] = []
        self._cancel: asyncio.Event | None = None
        self._initial_text = initial_data  # the execution's input, JSON text
        self._initial: Any = _UNDECODED
        self._artifacts = artifacts

    @property
    def initial_data(self) -> Any:
        """The execution's input (its initial data), the same in every node, however far
        from the entry node (pgflow's ``run``). Decoded on first access."""
        if self._initial is _UNDECODED:
            self._initial = _json.loads(self._initial_text)
        return self._initial

    @property
    def initial_data_json(self) -> str:
        """The execution's input as JSON text (what a nested context is given)."""
        return self._initial_text

    # Artifacts -------------------------------------------------------------------
    async def put_artifact(
        self, name: str, data: Any, *, content_type: str | None = None
    ) -> ArtifactRef:
        """Keep ``data`` as the execution's artifact ``name``, now (replacing one of that
        name): bytes as they are (``content_type``: application/octet-stream unless
        given), any other value as JSON. Returns its ``ArtifactRef``, to return or pass
        downstream instead of the data. Over ``max_artifact_bytes`` the node fails."""
        return await self._artifact_store().put(
            self.execution_id, self.node_id, name, data, content_type
        )

    async def get_artifact(self, name_or_ref: str | Mapping[str, Any]) -> Any:
        """An artifact of this execution by name, or any execution's by ``ArtifactRef``
        (as returned by ``put_artifact``, or the dict it became downstream): its bytes, or
        the value of one put as JSON. ``ArtifactNotFoundError`` when there is none."""
        execution_id, name = target(self.execution_id, name_or_ref)
        record, data = await self._artifact_store().read(execution_id, name)
        return decode(data, record.content_type)

    def artifact_ref(self, name: str) -> ArtifactRef:
        """A reference to this execution's artifact ``name`` (put or to be put)."""
        return ArtifactRef(self.execution_id, name)

    @property
    def artifacts(self) -> Artifacts | None:
        """The artifact store handle (for contexts the engine derives, map items)."""
        return self._artifacts

    def _artifact_store(self) -> Artifacts:
        if self._artifacts is None:
            raise ConfigurationError(
                "this ExecutionContext has no artifact store (the engine's contexts have one)"
            )
        return self._artifacts

    # Cancellation ----------------------------------------------------------------
    @property
    def is_cancelled(self) -> bool:
        """True once the execution was cancelled while this node runs. The executor is
        cancelled (``asyncio.CancelledError``) a moment later; long work can check this
        flag, or ``await ctx.cancelled()``, to stop cleanly first."""
        return self._cancel is not None and self._cancel.is_set()

    async def cancelled(self) -> None:
        """Returns when the execution is cancelled (use with ``asyncio.wait``)."""
        if self._cancel is None:
            self._cancel = asyncio.Event()
        await self._cancel.wait()

    def request_cancel(self) -> None:
        """Set by the engine when the execution is cancelled."""
        if self._cancel is None:
            self._cancel = asyncio.Event()
        self._cancel.set()

    # Rate limits ------------------------------------------------------------------
    def rate_limit(self, ms: float) -> NoReturn:
        """The service said "too many requests, retry in ``ms``": stop here (SPANE's
        ``ctx.rateLimit``). Raises ``RateLimitError``; the engine runs the node again after
        ``ms`` without counting an attempt, and holds every node of this type back for as
        long, in every worker process, instead of letting them hit the service too."""
        if (
            isinstance(ms, bool)
            or not isinstance(ms, int | float)
            or not math.isfinite(ms)
            or not 0 < ms <= MAX_DELAY_MS
        ):
            raise NonRetryableError(
                f"node {self.node_id!r}: ctx.rate_limit(ms) needs a positive, finite number of "
                f"milliseconds, at most {MAX_DELAY_MS} (10 years), got {ms!r}",
                node_id=self.node_id,
                execution_id=self.execution_id,
                workflow_id=self.workflow_id,
            )
        raise RateLimitError(
            f"node {self.node_id!r} is rate limited: retry in {ms:g} ms",
            retry_after_ms=ms,
            node_id=self.node_id,
            execution_id=self.execution_id,
            workflow_id=self.workflow_id,
        )

    @property
    def previous_results(self) -> dict[str, ExecutionResult]:
        """Results of this node's parents that have finished, by node id."""
        if isinstance(self._previous, tuple):
            self._previous = {
                p: record_to_result(self._records[p]) for p in self._previous if p in self._records
            }
        return self._previous

    @property
    def all_node_results(self) -> dict[str, ExecutionResult]:
        """Results of every node of the execution that has finished, by node id."""
        if self._all is None:
            self._all = {
                n: record_to_result(r) for n, r in self._records.items() if r.status.is_terminal
            }
        return self._all

    def log(self, level_or_message: str, message: str | None = None, **fields: Any) -> None:
        """Record a log line: ``ctx.log("info", "fetched", rows=3)`` or ``ctx.log("fetched")``."""
        if message is None:
            level, message = "info", level_or_message
        else:
            level = level_or_message.lower()
            if level not in _LEVELS:
                raise ValueError(f"unknown log level {level_or_message!r}")
        record = LogRecord(
            execution_id=self.execution_id,
            node_id=self.node_id,
            level=level,
            # Text PostgreSQL refuses (a NUL, a lone surrogate) must not lose the line, nor
            # the node's result written with it: such characters become U+FFFD.
            message=storable(str(message)),
            timestamp=datetime.now(UTC),
            fields={"attempt": self.attempt, **_loggable(fields)},
        )
        self._logs.append(record)
        node_logger.log(
            _LEVELS[level],
            "%s [%s/%s] %s",
            self.workflow_id,
            self.execution_id,
            self.node_id,
            message,
            extra={"event": "node.log", "spane_fields": fields},
        )

    @property
    def records(self) -> Mapping[str, NodeRecord]:
        """The node records the results are decoded from (for contexts the engine derives)."""
        return self._records

    @property
    def parent_ids(self) -> tuple[str, ...]:
        return self._parent_ids

    def keep_log(self, record: LogRecord) -> None:
        """Add a log line recorded by a derived context (a map item) to this node's."""
        self._logs.append(record)

    def drain_logs(self) -> list[LogRecord]:
        logs, self._logs = self._logs, []
        return logs

    def __repr__(self) -> str:
        return (
            f"ExecutionContext(workflow_id={self.workflow_id!r}, "
            f"execution_id={self.execution_id!r}, node_id={self.node_id!r}, "
            f"attempt={self.attempt})"
        )
