"""Stable event names, used the same way in logs, spans, the event stream and metrics."""

from __future__ import annotations

import logging
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

logger = logging.getLogger("spane_py.events")


def emit(event: str, level: int = logging.INFO, /, **fields: Any) -> None:
    """Log ``event`` with its fields; costs one level check when logging is off."""
    if logger.isEnabledFor(level):
        detail = " ".join(f"{k}={v}" for k, v in fields.items() if v is not None)
        logger.log(level, "%s %s", event, detail, extra={"event": event, "spane_fields": fields})
