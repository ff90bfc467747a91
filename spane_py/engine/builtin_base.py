"""What the built-in node types share: the protocols a built-in type implements, the
services it may use, and recording a node as waiting.

Two kinds of built-in type:

* a **suspending** type (``delay``, ``sub-workflow``, ``wait``) records the node as WAITING
  — with what it waits for (``waits_for``: the ``kind`` of its recorded wait) and, for a
  timer, when it is due — and gives the worker back. Its job comes back (at the due time,
  when the child execution ends, from the sweeper) and ``wake`` decides whether the wait is
  over. ``begin`` and ``wake`` return the node's final outcome when it is known now, None
  when the node waits on, or ``WakeAt`` to put the job back in the scheduled set;
* an **inline** type (``map``) runs in its worker slot like an executor: ``run(ctx)``.

A new built-in type is one module implementing one of these, its config model in
``definitions/builtin_configs.py``, and a line in ``builtin_nodes`` (``SUSPENDING_TYPES``
or ``INLINE_TYPES``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Protocol

from spane_py import _json
from spane_py.clock import Clock
from spane_py.context import ExecutionContext
from spane_py.engine import planner, starting
from spane_py.engine.attempt import Attempt
from spane_py.engine.cache import WorkflowCache
from spane_py.engine.decisions import Suspended
from spane_py.engine.routing import Routes
from spane_py.observability import events
from spane_py.queue.client import JobQueue
from spane_py.registry import NodeRegistry
from spane_py.state import NodeStatus
from spane_py.stores.base import ExecutionStore
from spane_py.traffic.control import TrafficControl


@dataclass(frozen=True, slots=True)
class WakeAt:
    """Put the node's job back in the scheduled set; it comes back at ``due``."""

    due: datetime


Step = planner.NodeOutcome | WakeAt | None


@dataclass(frozen=True, slots=True)
class Services:
    """What built-in types may use."""

    store: ExecutionStore
    queue: JobQueue
    cache: WorkflowCache
    registry: NodeRegistry
    admit: starting.Admit
    traffic: TrafficControl
    clock: Clock  # the engine's: every time a built-in records or compares
    routes: Routes  # the queue of each node's jobs


class SuspendingType(Protocol):
    name: ClassVar[str]  # the node type
    waits_for: ClassVar[str]  # the "kind" of the wait it records

    async def begin(self, attempt: Attempt) -> Step: ...

    async def wake(self, attempt: Attempt, info: dict[str, Any]) -> Step: ...


class InlineType(Protocol):
    name: ClassVar[str]

    async def run(self, ctx: ExecutionContext) -> Any: ...


Run = Callable[[ExecutionContext], Awaitable[Any]]


def passthrough(ctx: ExecutionContext) -> planner.NodeOutcome:
    """Done, passing the node's input on as its data."""
    return planner.NodeOutcome(NodeStatus.SUCCEEDED, output=_json.dumps(ctx.input_data))


async def suspend(
    services: Services,
    attempt: Attempt,
    *,
    wake_at: datetime | None,
    wait: dict[str, Any],
    wait_child: str | None = None,
) -> bool:
    """Record the node as waiting for ``wait`` (until ``wake_at``, or until the execution
    ``wait_child`` ends); False when the node had moved on meanwhile (nothing recorded).
    ``wait`` is the node type's own: only its ``wake`` reads it back."""
    done = await services.store.transition(
        attempt.ctx.execution_id,
        planner.plan_suspend(
            attempt.node.id,
            attempt.job.generation,
            attempt=attempt.ctx.attempt,
            started_at=attempt.started_at,
            wake_at=wake_at,
            wait=_json.dumps(wait),
            wait_child=wait_child,
        ),
        cached=attempt.started.snapshot,
    )
    suspended = isinstance(done.decision, Suspended)
    if suspended:
        events.emit(
            events.NODE_WAITING,
            execution_id=attempt.ctx.execution_id,
            workflow_id=attempt.ctx.workflow_id,
            node_id=attempt.node.id,
            kind=wait.get("kind"),
            wake_at=wake_at.isoformat() if wake_at else None,
        )
    return suspended
