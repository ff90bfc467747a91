"""Which workers are alive: each worker beats into one sorted set under the key prefix.

arq's own health check writes one key per queue, shared by every worker of it, so it can
tell "some worker beat in the last minute" but not how many there are nor which. Here each
worker adds itself (score: the time of its beat, by Redis's clock so hosts with skewed
clocks agree) every ``BEAT_INTERVAL_S``; a worker that stops removes itself, and one that
died simply stops beating and ages out after ``LIVE_WINDOW_S``. ``/healthz`` reads it.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

BEAT_INTERVAL_S = 5.0
LIVE_WINDOW_S = 3 * BEAT_INTERVAL_S

# KEYS[1] the set; ARGV[1] the worker id ('' only to read), ARGV[2] window ms.
# Beats, forgets members older than the window (so the set stays small), returns
# [now_ms, member, score, member, score, ...] of the live ones.
_BEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[2])
if ARGV[1] ~= '' then
  redis.call('ZADD', KEYS[1], now, ARGV[1])
  redis.call('PEXPIRE', KEYS[1], window * 4)
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window * 4)
local live = redis.call('ZRANGEBYSCORE', KEYS[1], now - window, '+inf', 'WITHSCORES')
table.insert(live, 1, now)
return live
"""


def new_worker_id() -> str:
    """host:pid:random — several workers may run in one process (tests, ``start_workers``)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True, slots=True)
class LiveWorker:
    worker_id: str
    seconds_since_beat: float


class WorkerPresence:
    def __init__(self, redis: Redis, *, prefix: str) -> None:
        self.redis = redis
        self.key = f"{prefix}:workers"
        self._script = redis.register_script(_BEAT)

    async def beat(self, worker_id: str) -> None:
        await self._run(worker_id)

    async def leave(self, worker_id: str) -> None:
        await self.redis.zrem(self.key, worker_id)

    async def live(self) -> list[LiveWorker]:
        """Workers that beat within ``LIVE_WINDOW_S``, most recent first."""
        reply = await self._run("")
        now = int(reply[0])
        pairs = zip(reply[1::2], reply[2::2], strict=True)
        found = [
            LiveWorker(
                member.decode() if isinstance(member, bytes) else str(member),
                max(now - int(float(score)), 0) / 1000.0,
            )
            for member, score in pairs
        ]
        return sorted(found, key=lambda w: w.seconds_since_beat)

    async def _run(self, worker_id: str) -> Any:
        return await self._script(keys=[self.key], args=[worker_id, int(LIVE_WINDOW_S * 1000)])


__all__ = ["BEAT_INTERVAL_S", "LIVE_WINDOW_S", "LiveWorker", "WorkerPresence", "new_worker_id"]
