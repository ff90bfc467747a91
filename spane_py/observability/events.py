"""Stable event names, used the same way in logs, spans, the event stream and metrics.

Every lifecycle point calls ``emit(NAME, **fields)``. ``emit`` logs the event, then hands it
to the sinks installed with ``add_sink`` (the event stream, Prometheus metrics,
OpenTelemetry). With no sink installed it costs one log-level check and one truth test:
it is on the path of every node hop.

Scopes: several engines may share a process (tests do). An engine runs its calls and its
workers inside ``scope(engine)``, and a sink installed with an ``owner`` receives only the
events of its owner's scope, plus events emitted outside any scope; a sink without an
owner receives everything.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from typing import Any, Final

EXECUTION_STARTED: Final = "execution.started"
EXECUTION_COMPLETED: Final = "execution.completed"
EXECUTION_FAILED: Final = "execution.failed"
EXECUTION_CANCELLED: Final = "execution.cancelled"
EXECUTION_PAUSED: Final = "execution.paused"
EXECUTION_RESUMED: Final = "execution.resumed"
EXECUTION_RETRIED: Final = "execution.retried"
EXECUTION_REPLAYED: Final = "execution.replayed"
NODE_STARTED: Final = "node.started"
NODE_COMPLETED: Final = "node.completed"
NODE_FAILED: Final = "node.failed"
NODE_RETRYING: Final = "node.retrying"
NODE_SKIPPED: Final = "node.skipped"
NODE_DROPPED: Final = "node.dropped"
NODE_WAITING: Final = "node.waiting"
NODE_RESUMED: Final = "node.resumed"
# Traffic control (spane_py/traffic): a node deferred by a rate limit (``reason``: global,
# type, blocked or executor), and a node type's circuit breaker changing state or refusing a
# node. Each breaker transition is announced once, by the process that made it.
NODE_RATE_LIMITED: Final = "node.rate_limited"
BREAKER_OPENED: Final = "breaker.opened"
BREAKER_HALF_OPEN: Final = "breaker.half_open"
BREAKER_CLOSED: Final = "breaker.closed"
BREAKER_REJECTED: Final = "breaker.rejected"
DLQ_RETRIED: Final = "dlq.retried"
WORKFLOW_REGISTERED: Final = "workflow.registered"
SCHEDULE_TICK_FIRED: Final = "schedule.tick_fired"
SCHEDULE_TICK_MISSED: Final = "schedule.tick_missed"
SCHEDULE_PAUSED: Final = "schedule.paused"
SCHEDULE_RESUMED: Final = "schedule.resumed"
SCHEDULE_REMOVED: Final = "schedule.removed"
WEBHOOK_ACCEPTED: Final = "webhook.accepted"
WEBHOOK_REJECTED: Final = "webhook.rejected"
WEBHOOK_DUPLICATE: Final = "webhook.duplicate"  # a signed request seen before: nothing started
# Records rather than news: a node attempt ended (``span``: its ``SpanRecord``,
# ``execution``: its ``ExecutionRecord``), an execution settled (``execution``). They feed
# traces and duration metrics; the event stream leaves them out.
NODE_SPAN: Final = "node.span"
EXECUTION_SPAN: Final = "execution.span"

Sink = Callable[[str, Mapping[str, Any]], None]

logger = logging.getLogger("spane_py.events")

# (owner, sink) pairs; a tuple, replaced on change, so emit iterates without copying.
_sinks: tuple[tuple[object | None, Sink], ...] = ()
_scope: ContextVar[object | None] = ContextVar("spane_events_scope", default=None)


def emit(event: str, level: int = logging.INFO, /, **fields: Any) -> None:
    """Log ``event`` with its fields and pass it to the sinks; costs one level check and
    one test when logging is off and no sink is installed."""
    if logger.isEnabledFor(level):
        detail = " ".join(
            f"{k}={v}" for k, v in fields.items() if v is not None and k not in _RECORD_FIELDS
        )
        logger.log(level, "%s %s", event, detail, extra={"event": event, "spane_fields": fields})
    if _sinks:
        _deliver(event, fields)


# Fields holding whole records (NODE_SPAN, EXECUTION_SPAN): too long for a log line.
_RECORD_FIELDS = frozenset({"span", "execution"})


def _deliver(event: str, fields: Mapping[str, Any]) -> None:
    current = _scope.get()
    for owner, sink in _sinks:
        if owner is None or current is None or owner is current:
            try:
                sink(event, fields)
            except Exception:  # a broken sink must never break a node hop
                logger.exception("event sink %r failed on %s", sink, event)


def add_sink(sink: Sink, *, owner: object | None = None) -> None:
    """Call ``sink(name, fields)`` for every event (of ``owner``'s scope, when given).

    Sinks run inline, on the emitting thread and event loop: they must be quick and must
    not block; one that needs I/O buffers and sends later."""
    global _sinks
    _sinks = (*_sinks, (owner, sink))


def remove_sink(sink: Sink) -> None:
    """Stop calling ``sink`` (no error when it was not installed)."""
    global _sinks
    _sinks = tuple(pair for pair in _sinks if pair[1] is not sink)


@contextlib.contextmanager
def scope(owner: object) -> Iterator[None]:
    """Events emitted inside (and in tasks created inside) belong to ``owner``."""
    token = _scope.set(owner)
    try:
        yield
    finally:
        _scope.reset(token)
