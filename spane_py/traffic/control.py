"""``TrafficControl``: what the runner (and a map node, per item) asks before calling an
executor, and tells after — rate limits, holds from ``ctx.rate_limit`` and circuit
breakers, with their events and counters.

A start is checked only when something can refuse it: the type has a rate limit or a
breaker, the engine has a global rate limit, or this process knows of a hold on the type.
Otherwise ``guarded`` is False and the node runs without a Redis round trip.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import Redis

from spane_py.errors import CircuitBreakerOpenError, QueueError, RateLimitError
from spane_py.observability import events
from spane_py.results import ExecutionResult
from spane_py.traffic.admission import BLOCKED, OK, OPEN, Admission, Admitter, TrafficKeys
from spane_py.traffic.blocks import Blocks
from spane_py.traffic.breakers import Breakers, BreakerState, Verdict
from spane_py.traffic.policies import CircuitBreakerPolicy, RateLimit

logger = logging.getLogger("spane_py.traffic")

# A half-open probe's slot is freed after this long if its worker never reports back (it
# died); nodes with a timeout use their timeout instead.
DEFAULT_PROBE_LEASE_MS = 60_000

_BREAKER_EVENTS = {"opened": events.BREAKER_OPENED, "closed": events.BREAKER_CLOSED}


class TrafficStats:
    """Counters of this process, by event name and node type (the metrics' source)."""

    def __init__(self) -> None:
        self._counts: Counter[tuple[str, str]] = Counter()

    def add(self, event: str, node_type: str) -> None:
        self._counts[(event, node_type)] += 1

    def count(self, event: str, node_type: str | None = None) -> int:
        """How many ``event``s this process saw, for ``node_type`` or for all types."""
        return sum(n for (e, t), n in self._counts.items() if e == event and node_type in (None, t))

    def snapshot(self) -> dict[str, dict[str, int]]:
        """``{event: {node type: count}}``."""
        out: dict[str, dict[str, int]] = {}
        for (event, node_type), n in sorted(self._counts.items()):
            out.setdefault(event, {})[node_type] = n
        return out


class TrafficControl:
    def __init__(self, redis: Redis, *, prefix: str, global_limit: RateLimit | None) -> None:
        self.keys = TrafficKeys(prefix)
        self.global_limit = global_limit
        self.admitter = Admitter(redis, self.keys)
        self.breakers = Breakers(redis, self.keys)
        self.blocks = Blocks(redis, self.keys)
        self.stats = TrafficStats()

    def guarded(
        self,
        node_type: str,
        rate_limit: RateLimit | None,
        breaker: CircuitBreakerPolicy | None,
        *,
        counts_global: bool = True,
    ) -> bool:
        """Whether a start of ``node_type`` must be admitted first (else: run it now)."""
        return (
            rate_limit is not None
            or breaker is not None
            or (counts_global and self.global_limit is not None)
            or self.blocks.known(node_type)
        )

    async def admit(
        self,
        node_type: str,
        member: str,
        *,
        rate_limit: RateLimit | None,
        breaker: CircuitBreakerPolicy | None,
        counts_global: bool = True,
        lease_ms: int | None = None,
        execution_id: str | None = None,
        node_id: str | None = None,
    ) -> Admission:
        """May this start go now? Refusals are announced (``node.rate_limited``,
        ``breaker.rejected``) and counted; the caller waits ``wait_ms`` or, for a breaker
        with ``on_open="fail"``, raises ``refusal(...)``."""
        global_limit = self.global_limit if counts_global else None
        if rate_limit is None and breaker is None and global_limit is None:
            wait = self.blocks.local_wait_ms(node_type)  # only a hold: known here
            admission = Admission(node_type, member, BLOCKED if wait else OK, wait)
        else:
            admission = await self.admitter.admit(
                node_type,
                member,
                rate_limit=rate_limit,
                breaker=breaker,
                global_limit=global_limit,
                lease_ms=lease_ms or DEFAULT_PROBE_LEASE_MS,
            )
        if admission.event == "half_open":
            self._transition(events.BREAKER_HALF_OPEN, node_type)
        if admission.breaker_refused:
            self.stats.add(events.BREAKER_REJECTED, node_type)
            assert breaker is not None
            events.emit(
                events.BREAKER_REJECTED,
                execution_id=execution_id,
                node_id=node_id,
                node_type=node_type,
                state="open" if admission.code == OPEN else "half_open",
                on_open=breaker.on_open,
                wait_ms=admission.wait_ms if breaker.on_open == "wait" else None,
            )
        elif not admission.admitted:
            self.limited(node_type, admission.code, admission.wait_ms, execution_id, node_id)
        return admission

    def limited(
        self,
        node_type: str,
        reason: str,
        wait_ms: float,
        execution_id: str | None = None,
        node_id: str | None = None,
    ) -> None:
        """Announce and count a start deferred by a rate limit (``reason``: global, type,
        blocked, or executor for ``ctx.rate_limit``)."""
        self.stats.add(events.NODE_RATE_LIMITED, node_type)
        events.emit(
            events.NODE_RATE_LIMITED,
            execution_id=execution_id,
            node_id=node_id,
            node_type=node_type,
            reason=reason,
            wait_ms=wait_ms,
        )

    @staticmethod
    def refusal(
        admission: Admission, *, execution_id: str | None = None, node_id: str | None = None
    ) -> CircuitBreakerOpenError:
        """The error of a start an open breaker refused (``on_open="fail"``)."""
        state = "open" if admission.code == OPEN else "half-open, its probes all out"
        return CircuitBreakerOpenError(
            f"the circuit breaker of node type {admission.node_type!r} is {state}: the "
            f"service was not called (it may be tried again in {admission.wait_ms} ms)",
            execution_id=execution_id,
            node_id=node_id,
        )

    async def settle(self, admission: Admission, verdict: Verdict) -> None:
        """Tell the breaker how the call went. Best effort: a lost failure is one failure
        fewer counted, a lost probe's slot frees when its lease ends."""
        if not self.breakers.needs_record(admission, verdict):
            return
        try:
            recorded = await self.breakers.record(admission, verdict)
        except QueueError as exc:
            logger.warning("%s", exc.message)
            return
        event = _BREAKER_EVENTS.get(recorded.event)
        if event is not None:
            self._transition(event, admission.node_type, failures=recorded.failures or None)

    async def call(self, admission: Admission, call: Awaitable[Any]) -> Any:
        """Await an executor call that ``admission`` let through, and settle it: an
        exception or an unsuccessful result is a failure, ``RateLimitError`` and
        cancellation are no verdict."""
        try:
            value = await call
        except RateLimitError:
            await self.settle(admission, "release")
            raise
        except asyncio.CancelledError:
            await asyncio.shield(self.settle(admission, "release"))
            raise
        except Exception:
            await self.settle(admission, "fail")
            raise
        failed = isinstance(value, ExecutionResult) and not value.success
        await self.settle(admission, "fail" if failed else "ok")
        return value

    async def block(self, node_type: str, ms: float) -> int:
        """``ctx.rate_limit(ms)``: hold ``node_type`` back everywhere; returns the ms held.
        A Redis failure still holds it back in this process."""
        try:
            return await self.blocks.block(node_type, ms)
        except QueueError as exc:
            logger.warning("%s", exc.message)
            return int(ms)

    async def run_item(
        self,
        node_type: str,
        member: str,
        call: Callable[[], Awaitable[Any]],
        *,
        rate_limit: RateLimit | None,
        breaker: CircuitBreakerPolicy | None,
        lease_ms: int | None = None,
        execution_id: str | None = None,
        node_id: str | None = None,
    ) -> Any:
        """One map item: the same rules as a node of its type (not the global limit, which
        counts node starts), but waiting in the map node's process — an item cannot be
        deferred without its siblings. ``ctx.rate_limit`` in the item holds the type back
        and the item tries again after the hold."""
        while True:
            if not self.guarded(node_type, rate_limit, breaker, counts_global=False):
                try:
                    return await call()
                except RateLimitError as exc:
                    await self._item_rate_limited(node_type, exc, execution_id, node_id)
                    continue
            admission = await self.admit(
                node_type,
                member,
                rate_limit=rate_limit,
                breaker=breaker,
                counts_global=False,
                lease_ms=lease_ms,
                execution_id=execution_id,
                node_id=node_id,
            )
            if admission.breaker_refused and breaker is not None and breaker.on_open == "fail":
                raise self.refusal(admission, execution_id=execution_id, node_id=node_id)
            if not admission.admitted:
                await asyncio.sleep(admission.wait_ms / 1000)
                continue
            try:
                return await self.call(admission, call())
            except RateLimitError as exc:
                await self._item_rate_limited(node_type, exc, execution_id, node_id)

    async def _item_rate_limited(
        self,
        node_type: str,
        exc: RateLimitError,
        execution_id: str | None,
        node_id: str | None,
    ) -> None:
        held = await self.block(node_type, exc.retry_after_ms)
        self.limited(node_type, "executor", held, execution_id, node_id)
        await asyncio.sleep(held / 1000)

    async def breaker_state(
        self, node_type: str, policy: CircuitBreakerPolicy | None
    ) -> BreakerState:
        return await self.breakers.state(
            node_type, policy.window_ms if policy is not None else None
        )

    def listen(self) -> None:
        """Learn of holds set by other processes (worker processes call this)."""
        self.blocks.listen()

    async def close(self) -> None:
        await self.blocks.close()

    def _transition(self, event: str, node_type: str, **fields: Any) -> None:
        self.stats.add(event, node_type)
        level = logging.WARNING if event == events.BREAKER_OPENED else logging.INFO
        events.emit(event, level, node_type=node_type, **fields)
