"""Holding a node type back after ``ctx.rate_limit(ms)``, in every worker process.

The hold is a Redis key (``<prefix>:traffic:blocked:<type>``, the time it ends), which the
admission script of a type with a rate limit or a breaker reads anyway. A type with
neither must not pay a Redis round trip per node to learn about holds, so each process
also keeps the holds it knows of in memory: the process that sets one announces it on
``<prefix>:traffic``, every worker process listens there, and a listener that starts (or
reconnects) reads the holds in force first. A missed announcement costs one more call of
the limited service, which answers with ``ctx.rate_limit`` again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time

from redis.asyncio import Redis
from redis.exceptions import RedisError

from spane_py.errors import QueueError
from spane_py.limits import MAX_DELAY_MS
from spane_py.traffic import scripts
from spane_py.traffic.admission import TrafficKeys

logger = logging.getLogger("spane_py.traffic")


class Blocks:
    def __init__(self, redis: Redis, keys: TrafficKeys) -> None:
        self.redis = redis
        self.keys = keys
        self._block = redis.register_script(scripts.BLOCK)
        self._until: dict[str, float] = {}  # node type -> time.monotonic() the hold ends
        self._listener: asyncio.Task[None] | None = None

    def known(self, node_type: str) -> bool:
        """Whether this process knows of a hold on ``node_type`` (maybe just ended)."""
        return node_type in self._until

    def local_wait_ms(self, node_type: str) -> int:
        """How long ``node_type`` is still held back, as far as this process knows."""
        until = self._until.get(node_type)
        if until is None:
            return 0
        left = until - time.monotonic()
        if left <= 0:
            del self._until[node_type]
            return 0
        return max(int(left * 1000), 1)

    def _hold(self, node_type: str, ms: float) -> None:
        until = time.monotonic() + ms / 1000
        if until > self._until.get(node_type, 0.0):
            self._until[node_type] = until

    async def block(self, node_type: str, ms: float) -> int:
        """Hold ``node_type`` back for ``ms`` here and everywhere; returns the ms it is held
        for (longer when an earlier hold lasts longer)."""
        # A RateLimitError raised by hand is not checked as ctx.rate_limit(ms) is: at least
        # 1 ms (NaN too), at most MAX_DELAY_MS (Redis' PX takes a 64-bit integer).
        ms = 1.0 if math.isnan(ms) else min(max(ms, 1.0), float(MAX_DELAY_MS))
        try:
            held = int(
                await self._block(
                    keys=[self.keys.blocked(node_type), self.keys.channel], args=[ms, node_type]
                )
            )
        except (RedisError, OSError) as exc:
            self._hold(node_type, ms)  # this process still holds back
            raise QueueError(f"could not hold node type {node_type!r} back: {exc}") from exc
        self._hold(node_type, held)
        return held

    def listen(self) -> None:
        if self._listener is None:
            self._listener = asyncio.create_task(self._listen(), name="spane-traffic-listener")

    async def _listen(self) -> None:
        while True:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.keys.channel)
                await self._load()
                async for message in pubsub.listen():
                    data = message.get("data")
                    if isinstance(data, bytes):
                        ms, _, node_type = data.decode().partition(" ")
                        self._hold(node_type, float(ms))
            except (RedisError, OSError) as exc:
                logger.warning("traffic listener lost Redis (%s); reconnecting", exc)
                await asyncio.sleep(1.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _load(self) -> None:
        """The holds in force now (announced before this process listened)."""
        prefix_len = len(self.keys.blocked(""))
        async for key in self.redis.scan_iter(match=self.keys.blocked_pattern, count=200):
            ms = await self.redis.pttl(key)
            if ms > 0:
                name = key.decode() if isinstance(key, bytes) else str(key)
                self._hold(name[prefix_len:], ms)

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.wait([self._listener])
            self._listener = None
