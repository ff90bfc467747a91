"""Sends that must not be lost: the store has committed an execution, Redis refused its jobs.

An enqueue writes the execution to the store first, then sends its entry jobs. Once the
store has committed, the execution exists: raising then would make a caller that retries
(without an idempotency key) start it twice. So an enqueue whose send fails still returns
the execution's id, and the send is handed to the ``Resender``, which tries it again in the
background (every ``max_delay_s`` at the most) until Redis takes it, so the jobs go out
within about a second of Redis coming back. Sending a job that exists is a no-op (job ids
are derived from the node), so a send that reached Redis before its answer was lost does no
harm when repeated. A process that closes with sends still pending leaves them to the
workers' sweeper, which sends the jobs of nodes pending for ``stale_after_seconds``; so does
one whose pending sends reach ``max_pending`` (a long outage must not grow memory without
bound: each send holds its executions' records).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from spane_py.errors import QueueError

logger = logging.getLogger("spane_py.engine")

Send = Callable[[], Awaitable[object]]


@dataclass(slots=True)
class _Pending:
    send: Send
    what: str


class Resender:
    """Runs a send now; when Redis refuses it, again in the background until it goes out."""

    def __init__(
        self, *, first_delay_s: float = 0.05, max_delay_s: float = 1.0, max_pending: int = 10_000
    ) -> None:
        self.first_delay_s = first_delay_s
        self.max_delay_s = max_delay_s
        self.max_pending = max_pending
        self._pending: deque[_Pending] = deque()
        self._task: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        self.dropped = 0  # sends left to the sweeper because too many were pending

    @property
    def pending(self) -> int:
        """Sends waiting for Redis."""
        return len(self._pending)

    async def deliver(self, send: Send, what: str) -> bool:
        """Run ``send``; if Redis refuses it, keep it for the background and return False
        (True: it went out now). Errors other than ``QueueError`` are raised."""
        if not self._pending:
            try:
                await send()
                return True
            except QueueError as exc:
                logger.warning(
                    "%s: Redis refused it (%s); sending again until it answers", what, exc
                )
        if len(self._pending) >= self.max_pending:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                logger.warning(
                    "%d sends wait for Redis already: %s is left to the workers' sweeper "
                    "(%d so far)",
                    len(self._pending),
                    what,
                    self.dropped,
                )
            return False
        self._pending.append(_Pending(send, what))
        self._idle.clear()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="spane-resender")
        return False

    async def _run(self) -> None:
        delay = self.first_delay_s
        while self._pending:
            head = self._pending[0]
            try:
                await head.send()
            except QueueError:
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_delay_s)
                continue
            except Exception:  # not Redis: the sweeper is left to send it
                logger.exception("%s: giving up (the sweeper sends the jobs later)", head.what)
            else:
                logger.info("%s: sent after Redis came back", head.what)
            self._pending.popleft()
            delay = self.first_delay_s
        self._idle.set()

    async def flush(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for every pending send to go out."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout)
        return not self._pending

    async def close(self, timeout: float) -> None:
        """Give pending sends up to ``timeout`` seconds, then stop; what is left is the
        sweeper's (logged)."""
        if self._pending and not await self.flush(timeout):
            logger.warning(
                "closing with %d send(s) Redis refused (%s); the workers' sweeper sends "
                "their jobs once they are stale_after_seconds old",
                len(self._pending),
                "; ".join(p.what for p in list(self._pending)[:3]),
            )
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._pending.clear()
        self._idle.set()
