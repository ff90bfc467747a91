"""Which workers are alive: each worker beats into one sorted set under the key prefix.

arq's own health check writes one key per queue, shared by every worker of it, so it can
tell "some worker beat in the last minute" but not how many there are nor which. Here each
worker adds itself (score: the time of its beat, by Redis's clock so hosts with skewed
clocks agree) every ``BEAT_INTERVAL_S``; a worker that stops removes itself, and one that
died simply stops beating and ages out after ``LIVE_WINDOW_S``. ``/healthz`` reads it.

With each beat a worker may say what it is (``WorkerInfo``: the queues it serves, its
concurrency, host, pid, when it started and how many jobs it runs), kept as JSON in the
hash ``P:workers:info`` beside the set and removed with its member.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from typing import Any

import orjson
from redis.asyncio import Redis

BEAT_INTERVAL_S = 5.0
LIVE_WINDOW_S = 3 * BEAT_INTERVAL_S

# KEYS[1] the set, KEYS[2] the info hash; ARGV[1] the worker id ('' only to read), ARGV[2]
# window ms, ARGV[3] its info ('': none). Beats, forgets members older than the window (so
# the set stays small) with their info, returns {now_ms, {member, score, ...} of the live
# ones, {their info or false, ...}}.
_BEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[2])
if ARGV[1] ~= '' then
  redis.call('ZADD', KEYS[1], now, ARGV[1])
  redis.call('PEXPIRE', KEYS[1], window * 4)
  if ARGV[3] ~= '' then
    redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
    redis.call('PEXPIRE', KEYS[2], window * 4)
  end
end
local old = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - window * 4)
if #old > 0 then
  redis.call('ZREM', KEYS[1], unpack(old))
  redis.call('HDEL', KEYS[2], unpack(old))
end
local live = redis.call('ZRANGEBYSCORE', KEYS[1], now - window, '+inf', 'WITHSCORES')
local info = {}
if #live > 0 then
  local members = {}
  for i = 1, #live, 2 do members[#members + 1] = live[i] end
  info = redis.call('HMGET', KEYS[2], unpack(members))
end
return {now, live, info}
"""

# Leaves: KEYS as above, ARGV[1] the worker id.
_LEAVE = """
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
"""


def new_worker_id() -> str:
    """host:pid:random — several workers may run in one process (tests, ``start_workers``)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """What a worker says of itself with each beat."""

    queues: tuple[str, ...]
    concurrency: int
    host: str
    pid: int
    started_at: float  # unix seconds
    running: int  # jobs it ran at the beat

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "queues": list(self.queues),
                "concurrency": self.concurrency,
                "host": self.host,
                "pid": self.pid,
                "started_at": self.started_at,
                "running": self.running,
            }
        )


@dataclass(frozen=True, slots=True)
class LiveWorker:
    """A worker that beat within ``LIVE_WINDOW_S``, with what it said of itself (empty and
    zero when it said nothing: a version that beat without its info)."""

    worker_id: str
    seconds_since_beat: float
    queues: tuple[str, ...] = ()
    concurrency: int = 0
    host: str = ""
    pid: int = 0
    started_at: float = 0.0  # unix seconds
    running: int = 0


class WorkerPresence:
    def __init__(self, redis: Redis, *, prefix: str) -> None:
        self.redis = redis
        self.key = f"{prefix}:workers"
        self.info_key = f"{prefix}:workers:info"
        self._script = redis.register_script(_BEAT)
        self._leave = redis.register_script(_LEAVE)

    async def beat(self, worker_id: str, info: WorkerInfo | None = None) -> None:
        await self._run(worker_id, b"" if info is None else info.to_json())

    async def leave(self, worker_id: str) -> None:
        await self._leave(keys=[self.key, self.info_key], args=[worker_id])

    async def live(self) -> list[LiveWorker]:
        """Workers that beat within ``LIVE_WINDOW_S``, most recent first."""
        now, live, info = await self._run("", b"")
        now = int(now)
        pairs = zip(live[0::2], live[1::2], strict=True)
        found = [
            _live_worker(
                member.decode() if isinstance(member, bytes) else str(member),
                max(now - int(float(score)), 0) / 1000.0,
                said,
            )
            for (member, score), said in zip(pairs, info, strict=True)
        ]
        return sorted(found, key=lambda w: w.seconds_since_beat)

    async def _run(self, worker_id: str, info: bytes) -> Any:
        return await self._script(
            keys=[self.key, self.info_key],
            args=[worker_id, int(LIVE_WINDOW_S * 1000), info],
        )


def _live_worker(worker_id: str, since: float, said: Any) -> LiveWorker:
    """A live worker with the info it beat with; what is missing or malformed is left at
    its default."""
    try:
        info = orjson.loads(said) if said else None
    except orjson.JSONDecodeError:
        info = None
    if not isinstance(info, dict):
        return LiveWorker(worker_id, since)
    queues = info.get("queues")
    return LiveWorker(
        worker_id,
        since,
        queues=tuple(q for q in queues if isinstance(q, str)) if isinstance(queues, list) else (),
        concurrency=_int(info.get("concurrency")),
        host=info["host"] if isinstance(info.get("host"), str) else "",
        pid=_int(info.get("pid")),
        started_at=_number(info.get("started_at")),
        running=_int(info.get("running")),
    )


def _int(value: object) -> int:
    return value if type(value) is int else 0


def _number(value: object) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


__all__ = [
    "BEAT_INTERVAL_S",
    "LIVE_WINDOW_S",
    "LiveWorker",
    "WorkerInfo",
    "WorkerPresence",
    "new_worker_id",
]
