"""``JobQueue``: enqueueing node jobs on Redis in arq's format, and waking idle workers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from arq.connections import ArqRedis
from arq.constants import abort_jobs_ss, in_progress_key_prefix, job_key_prefix, retry_key_prefix
from arq.jobs import serialize_job
from redis.asyncio import ConnectionPool, Redis
from redis.exceptions import RedisError

from spane_py.errors import ConfigurationError, QueueError
from spane_py.queue import scripts
from spane_py.queue.batch import ScriptCall, WriteBatcher
from spane_py.queue.jobs import FUNCTION_NAME, NodeJob, priority_band, serialize

# A job key outlives its due time by this much; a job not taken by then is dropped by Redis
# (the store still knows the node is queued, and it can be sent again).
JOB_TTL_EXTRA_MS = 7 * 24 * 3600 * 1000
WAKE_CAP = 64


@dataclass(frozen=True, slots=True)
class QueueKeys:
    prefix: str

    @property
    def queue(self) -> str:
        return f"{self.prefix}:queue"

    @property
    def scheduled(self) -> str:
        return f"{self.prefix}:scheduled"

    @property
    def bands(self) -> str:
        return f"{self.prefix}:bands"

    @property
    def wake(self) -> str:
        return f"{self.prefix}:wake"

    @property
    def control(self) -> str:
        """Pub/sub channel: ids of executions just cancelled (workers stop their nodes)."""
        return f"{self.prefix}:control"

    @property
    def settled(self) -> str:
        """Pub/sub channel: ids of executions that just completed or failed."""
        return f"{self.prefix}:settled"


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    job_id: str
    score: int
    data: bytes | None  # None: the job key expired
    job_try: int


@dataclass(frozen=True, slots=True)
class QueueStats:
    queued: int
    scheduled: int
    running: int


class _FastCheckPool(ConnectionPool):
    """A pool whose checkout health check does not cost an event-loop round trip.

    redis-py checks every connection it hands out with a zero-timeout socket read
    (``can_read_destructive``): a timer, a loop iteration and an exception per command,
    the largest single cost of a node hop. Data that arrived on an idle socket is already in
    its stream buffer (asyncio reads eagerly), so looking at the buffer is enough; any doubt
    falls back to redis-py's full check.
    """

    async def ensure_connection(self, connection: Any) -> None:
        if _looks_clean(connection):
            return
        await super().ensure_connection(connection)


def _looks_clean(connection: Any) -> bool:
    if not getattr(connection, "is_connected", False):
        return False
    stream = getattr(connection, "_reader", None)
    parser = getattr(connection, "_parser", None)
    buffer = getattr(stream, "_buffer", None)
    if stream is None or buffer is None or stream.at_eof() or len(buffer):
        return False
    reader = getattr(parser, "_reader", None)  # hiredis: buffered, unparsed replies
    has_data = getattr(reader, "has_data", None)
    return callable(has_data) and not has_data()


def connect(url: str, *, queue_name: str, max_connections: int = 64) -> ArqRedis:
    """An ``ArqRedis`` client for ``url`` with spane_py's JSON serializers."""
    from spane_py.queue.jobs import deserialize

    try:
        pool = _FastCheckPool.from_url(url, max_connections=max_connections)
    except ValueError as exc:
        raise ConfigurationError(f"invalid Redis URL {_redact(url)!r}: {exc}") from exc
    return ArqRedis(
        pool,
        job_serializer=serialize,
        job_deserializer=deserialize,
        default_queue_name=queue_name,
    )


def _redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


class JobQueue:
    def __init__(self, redis: ArqRedis, *, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix
        self.keys = QueueKeys(prefix)
        self.local_wake = asyncio.Event()
        self._enqueue = redis.register_script(scripts.ENQUEUE)
        self._claim = redis.register_script(scripts.CLAIM)
        self._reschedule = redis.register_script(scripts.RESCHEDULE)
        self._finish = redis.register_script(scripts.FINISH)
        self._publish = redis.register_script(scripts.PUBLISH)
        self.batcher = WriteBatcher(redis)
        self.before_purge: list[Callable[[], Awaitable[None]]] = []
        self.batcher.register("enqueue", self._enqueue_call)
        self.batcher.register("finish", self._finish_call)
        self.batcher.register("publish", lambda ids: (self._publish, [self.keys.settled], ids))

    async def ping(self) -> None:
        try:
            await self.redis.ping()
        except (RedisError, OSError) as exc:
            raise QueueError(f"cannot reach Redis: {exc}") from exc

    def job_id(self, job: NodeJob) -> str:
        return job.job_id(self.prefix)

    def _job_args(
        self, jobs: Sequence[NodeJob], priority: int | None, due_ms: int | None, now: int
    ) -> list[str | int | bytes]:
        due = due_ms if due_ms is not None and due_ms > now else 0
        ttl = max(due - now, 0) + JOB_TTL_EXTRA_MS
        band = priority_band(priority)
        argv: list[str | int | bytes] = []
        for job in jobs:
            value = serialize_job(
                FUNCTION_NAME, (job.payload(),), {}, None, now, serializer=serialize
            )
            argv += [self.job_id(job), value, ttl, due, band]
        return argv

    def _enqueue_call(self, items: list[str | int | bytes]) -> ScriptCall:
        k = self.keys
        header: list[str | int | bytes] = [job_key_prefix, int(time.time() * 1000), WAKE_CAP]
        return self._enqueue, [k.queue, k.scheduled, k.bands, k.wake], header + items

    async def enqueue(
        self,
        jobs: Sequence[NodeJob],
        *,
        priority: int | None = None,
        due_ms: int | None = None,
    ) -> int:
        """Send jobs in one round trip; returns how many were new (an id already queued is
        left alone)."""
        if not jobs:
            return 0
        now = int(time.time() * 1000)
        script, keys, args = self._enqueue_call(self._job_args(jobs, priority, due_ms, now))
        try:
            added = await script(keys=keys, args=args)
        except RedisError as exc:
            raise QueueError(f"could not enqueue {len(jobs)} job(s): {exc}") from exc
        self.local_wake.set()
        return int(added)

    async def enqueue_batched(self, jobs: Sequence[NodeJob], *, priority: int | None) -> None:
        """Like ``enqueue``, coalesced with the other writes of this event-loop tick."""
        if not jobs:
            return
        now = int(time.time() * 1000)
        try:
            await self.batcher.add("enqueue", self._job_args(jobs, priority, None, now))
        except RedisError as exc:
            raise QueueError(f"could not enqueue {len(jobs)} job(s): {exc}") from exc
        self.local_wake.set()

    def _finish_call(self, items: list[str | int]) -> ScriptCall:
        header: list[str | int] = [job_key_prefix, in_progress_key_prefix, retry_key_prefix]
        return self._finish, [self.keys.queue, abort_jobs_ss], header + items

    async def finish(
        self, job_id: str, *, mode: str, incr_score: int = 0, keep_in_progress_ms: int | None = None
    ) -> None:
        """arq's finish_job for one job, batched: mode 'done' removes the job, 'release'
        only drops its in-progress key, 'incr' also pushes its score back."""
        keep = "" if keep_in_progress_ms is None else keep_in_progress_ms
        await self.batcher.add("finish", [job_id, mode, incr_score, keep])

    async def reschedule(self, job_id: str, *, due_ms: int, priority: int | None) -> None:
        """Move a running job back to the scheduled set; it runs again at ``due_ms``."""
        ttl = max(due_ms - int(time.time() * 1000), 0) + JOB_TTL_EXTRA_MS
        k = self.keys
        await self._reschedule(
            keys=[
                k.queue,
                k.scheduled,
                k.bands,
                job_key_prefix + job_id,
                k.wake,
                retry_key_prefix + job_id,
            ],
            args=[job_id, due_ms, priority_band(priority), ttl],
        )
        self.local_wake.set()

    async def claim(
        self, want: int, *, lease_ms: int, max_scan: int = 2000
    ) -> tuple[list[ClaimedJob], int | None]:
        """Take up to ``want`` runnable jobs with their data. Also returns the next due time
        of the scheduled set (ms), or None."""
        k = self.keys
        claimed, next_due = await self._claim(
            keys=[k.queue, k.scheduled, k.bands],
            args=[
                in_progress_key_prefix,
                int(time.time() * 1000),
                want,
                lease_ms,
                max_scan,
                job_key_prefix,
                retry_key_prefix,
            ],
        )
        jobs = [
            ClaimedJob(
                job_id=claimed[i].decode(),
                score=int(float(claimed[i + 1])),
                data=claimed[i + 2] or None,
                job_try=int(claimed[i + 3]),
            )
            for i in range(0, len(claimed), 4)
        ]
        return jobs, (int(float(next_due)) if next_due else None)

    async def remove(self, job_ids: Sequence[str]) -> None:
        """Take jobs that have not started out of the queue (a settled execution's deadline
        job, say). One taken meanwhile by a worker runs, and finds nothing to do."""
        if not job_ids:
            return
        k = self.keys
        async with self.redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.zrem(k.scheduled, job_id)
                pipe.zrem(k.queue, job_id)
                pipe.hdel(k.bands, job_id)
                pipe.delete(job_key_prefix + job_id)
            await pipe.execute()

    async def publish_settled(self, execution_id: str) -> None:
        await self.batcher.add("publish", [execution_id])

    async def refresh_leases(self, job_ids: Sequence[str], lease_ms: int) -> None:
        if not job_ids:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.pexpire(in_progress_key_prefix + job_id, lease_ms)
            await pipe.execute()

    def blocking_client(self) -> Redis:
        """A client with its own single connection, for BLPOP on the wake list."""
        kwargs = dict(self.redis.connection_pool.connection_kwargs)
        pool = self.redis.connection_pool.__class__(
            connection_class=self.redis.connection_pool.connection_class,
            max_connections=1,
            **kwargs,
        )
        return Redis.from_pool(pool)  # the client owns the pool: aclose() closes the socket

    async def stats(self) -> QueueStats:
        k = self.keys
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zcard(k.queue)
            pipe.zcard(k.scheduled)
            queued, scheduled = await pipe.execute()
        running = 0
        async for _ in self.redis.scan_iter(match=f"{in_progress_key_prefix}{self.prefix}:*"):
            running += 1
        return QueueStats(queued=int(queued) - running, scheduled=int(scheduled), running=running)

    async def purge(self) -> None:
        """Delete every key of this prefix (tests and `spane` maintenance commands), after
        the ``before_purge`` hooks (writers that buffer: the event stream) have run."""
        for hook in self.before_purge:
            await hook()
        patterns = [f"{self.prefix}:*", f"arq:*:{self.prefix}:*"]
        for pattern in patterns:
            batch: list[bytes] = []
            async for key in self.redis.scan_iter(match=pattern, count=500):
                batch.append(key)
                if len(batch) >= 500:
                    await self.redis.delete(*batch)
                    batch = []
            if batch:
                await self.redis.delete(*batch)
