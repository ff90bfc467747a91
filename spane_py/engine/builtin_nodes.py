"""The built-in node types the engine runs itself — one table of them, and the two calls
the runner makes: start a built-in node (``begin``) and decide whether a waiting one is
done (``wake``). What each type does is in its own module (``builtin_delay``,
``builtin_subworkflow``, ``builtin_wait``, ``builtin_map``); what they share, and the
protocols they implement, in ``builtin_base``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from spane_py import _json
from spane_py.clock import SYSTEM_CLOCK, Clock
from spane_py.engine import starting
from spane_py.engine.attempt import Attempt
from spane_py.engine.builtin_base import (
    InlineType,
    Run,
    Services,
    Step,
    SuspendingType,
    WakeAt,
)
from spane_py.engine.builtin_delay import DelayNode
from spane_py.engine.builtin_map import MapNode
from spane_py.engine.builtin_subworkflow import SubWorkflowNode
from spane_py.engine.builtin_wait import WaitNode
from spane_py.engine.cache import WorkflowCache
from spane_py.engine.routing import Routes
from spane_py.errors import NonRetryableError
from spane_py.queue.client import JobQueue
from spane_py.registry import NodeRegistry
from spane_py.stores.base import ExecutionStore
from spane_py.traffic.control import TrafficControl

__all__ = ["INLINE_TYPES", "SUSPENDING_TYPES", "BuiltinNodes", "Step", "WakeAt"]

# Every built-in type, by kind. A new one: its module, its config in
# definitions/builtin_configs.py, and a line here.
SUSPENDING_TYPES: tuple[Callable[[Services], SuspendingType], ...] = (
    DelayNode,
    SubWorkflowNode,
    WaitNode,
)
INLINE_TYPES: tuple[Callable[[Services], InlineType], ...] = (MapNode,)


class BuiltinNodes:
    def __init__(
        self,
        *,
        store: ExecutionStore,
        queue: JobQueue,
        cache: WorkflowCache,
        registry: NodeRegistry,
        admit: starting.Admit,
        traffic: TrafficControl,
        clock: Clock = SYSTEM_CLOCK,
        routes: Routes | None = None,
    ) -> None:
        routes = routes if routes is not None else Routes(registry)
        services = Services(store, queue, cache, registry, admit, traffic, clock, routes)
        suspending = [make(services) for make in SUSPENDING_TYPES]
        self._suspending = {t.name: t for t in suspending}
        self._inline = {t.name: t for t in (make(services) for make in INLINE_TYPES)}
        self._by_wait = {t.waits_for: t for t in self._suspending.values()}

    def suspends(self, node_type: str) -> bool:
        """Whether ``node_type`` is a built-in type that waits (and gives the worker back)."""
        return node_type in self._suspending

    def inline(self, node_type: str) -> Run | None:
        """The run of a built-in type that runs like an executor (``map``), else None."""
        found = self._inline.get(node_type)
        return found.run if found is not None else None

    async def begin(self, attempt: Attempt) -> Step:
        return await self._suspending[attempt.node.type].begin(attempt)

    async def wake(self, attempt: Attempt) -> Step:
        """A waiting node's job is back: the type whose wait it recorded decides."""
        rec = attempt.started.nodes[attempt.node.id]
        info: Any = _json.loads(rec.wait) if rec.wait else {}
        kind = info.get("kind") if isinstance(info, dict) else None
        waiting = self._by_wait.get(kind) if isinstance(kind, str) else None
        if waiting is None:
            raise NonRetryableError(
                f"node {attempt.node.id!r} waits for something unknown ({rec.wait!r:.80})",
                node_id=attempt.node.id,
            )
        return await waiting.wake(attempt, info)
