"""Waking ``wait_for_execution`` when an execution settles.

In the settling process, a waiter's future is resolved directly. Across processes (a
shared store), the settling worker publishes the execution id on the ``<prefix>:settled``
channel and each waiting engine listens there. Waiters also re-read the store now and then,
so a missed message costs latency, never correctness.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from redis.exceptions import RedisError

from spane_py.queue.client import JobQueue

logger = logging.getLogger("spane_py.engine")


class SettleNotifier:
    def __init__(self, queue: JobQueue, *, across_processes: bool) -> None:
        self.queue = queue
        self.across_processes = across_processes
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}
        self._listener: asyncio.Task[None] | None = None

    def waiter(self, execution_id: str) -> asyncio.Future[None]:
        """A future resolved when ``execution_id`` settles; ``discard`` it when done."""
        if self.across_processes and self._listener is None:
            self._listener = asyncio.create_task(self._listen(), name="spane-settled-listener")
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(execution_id, []).append(fut)
        return fut

    def discard(self, execution_id: str, fut: asyncio.Future[None]) -> None:
        waiters = self._waiters.get(execution_id)
        if waiters is not None:
            with contextlib.suppress(ValueError):
                waiters.remove(fut)
            if not waiters:
                del self._waiters[execution_id]

    def _wake(self, execution_id: str) -> None:
        for fut in self._waiters.pop(execution_id, ()):
            if not fut.done():
                fut.set_result(None)

    async def settled(self, execution_id: str) -> None:
        """Called by the runner that settled the execution."""
        self._wake(execution_id)
        if self.across_processes:  # with this tick's Redis call (waiters also read the store)
            self.queue.publish_settled(execution_id)

    async def _listen(self) -> None:
        while True:
            pubsub = self.queue.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.queue.keys.settled)
                async for message in pubsub.listen():
                    data = message.get("data")
                    if isinstance(data, bytes):
                        self._wake(data.decode())
            except (RedisError, OSError) as exc:
                logger.warning("settled-executions listener lost Redis (%s); reconnecting", exc)
                await asyncio.sleep(1.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def close(self) -> None:
        for waiters in self._waiters.values():
            for fut in waiters:
                if not fut.done():
                    fut.cancel()
        self._waiters.clear()
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.wait([self._listener])
            self._listener = None


class ControlChannel:
    """Tells every worker process that an execution was cancelled, so the nodes it runs
    stop (``<prefix>:control``). A missed message costs only time: the node's result is
    not recorded over the cancellation, and its worker finds out when it finishes."""

    def __init__(self, queue: JobQueue) -> None:
        self.queue = queue
        self._listener: asyncio.Task[None] | None = None

    async def cancelled(self, execution_id: str) -> None:
        try:
            await self.queue.redis.publish(self.queue.keys.control, execution_id)
        except (RedisError, OSError) as exc:
            logger.warning("could not announce the cancellation of %s: %s", execution_id, exc)

    def listen(self, on_cancel: Callable[[str], object]) -> None:
        if self._listener is None:
            self._listener = asyncio.create_task(
                self._listen(on_cancel), name="spane-control-listener"
            )

    async def _listen(self, on_cancel: Callable[[str], object]) -> None:
        while True:
            pubsub = self.queue.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.queue.keys.control)
                async for message in pubsub.listen():
                    data = message.get("data")
                    if isinstance(data, bytes):
                        on_cancel(data.decode())
            except (RedisError, OSError) as exc:
                logger.warning("control listener lost Redis (%s); reconnecting", exc)
                await asyncio.sleep(1.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.wait([self._listener])
            self._listener = None
