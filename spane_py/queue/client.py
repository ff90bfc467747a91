"""``JobQueue``: the queue seam — enqueue, claim, renew, finish, release, reschedule.

Everything spane_py does with Redis for its jobs goes through here (the scripts are in
``scripts.py``, their key layout described there). arq provides the connection pool and
settings (``ArqRedis``), the job encoding (``serialize_job`` / ``deserialize_job_raw``) and
the job records (``arq:job:<id>``, ``arq:in-progress:<id>``), so arq's ``Job`` reads a job's
record and status; claiming without scans, leases, suspects and batching are spane_py's.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix, job_key_prefix
from arq.jobs import serialize_job
from redis.asyncio import ConnectionPool, Redis
from redis.exceptions import RedisError

from spane_py.errors import ConfigurationError, QueueError
from spane_py.queue import scripts
from spane_py.queue.jobs import FUNCTION_NAME, Job, priority_band, serialize
from spane_py.queue.outcomes import Done, JobOutcome, Release, Reschedule
from spane_py.queue.tick import ENQUEUE, PUBLISH, SETTLE, TickBatcher

WAKE_CAP = 64
# The token of a suspect's owner: the worker id with this appended (see scripts.py).
SOLO = "|solo"


@dataclass(frozen=True, slots=True)
class QueueKeys:
    prefix: str

    @property
    def queue(self) -> str:
        """Pending jobs, by priority band + arrival number."""
        return f"{self.prefix}:queue"

    @property
    def scheduled(self) -> str:
        return f"{self.prefix}:scheduled"

    @property
    def bands(self) -> str:
        return f"{self.prefix}:bands"

    @property
    def running(self) -> str:
        """Claimed jobs, by the deadline of their lease."""
        return f"{self.prefix}:running"

    @property
    def suspects(self) -> str:
        """Jobs lost with their worker, waiting to run alone."""
        return f"{self.prefix}:suspects"

    @property
    def lost(self) -> str:
        """Per job: workers lost while it ran alone."""
        return f"{self.prefix}:lost"

    @property
    def drain(self) -> str:
        """The busy worker chosen to become idle for the next suspect."""
        return f"{self.prefix}:drain"

    @property
    def wake(self) -> str:
        return f"{self.prefix}:wake"

    @property
    def seq(self) -> str:
        """Counts the jobs made claimable: their order within a priority."""
        return f"{self.prefix}:seq"

    @property
    def epoch(self) -> str:
        """Counts control actions (see ``JobQueue.bump_control_epoch``)."""
        return f"{self.prefix}:epoch"

    @property
    def again(self) -> str:
        """Jobs delivered before and not done yet (see scripts.py)."""
        return f"{self.prefix}:again"

    @property
    def script_keys(self) -> list[str]:
        """The KEYS of every queue script, in the order they name them."""
        return [
            self.queue,
            self.scheduled,
            self.bands,
            self.running,
            self.suspects,
            self.lost,
            self.drain,
            self.wake,
            self.settled,
            self.seq,
            self.epoch,
            self.again,
        ]

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
    data: bytes | None  # the job record; None: it expired
    token: str  # its owner's token (the lease is this worker's while it matches)
    lost: int = 0  # workers lost while it ran alone
    solo: bool = False  # a suspect: its worker runs nothing else meanwhile
    again: bool = False  # delivered before (rescheduled, released or lost with its worker)


@dataclass(frozen=True, slots=True)
class Claim:
    jobs: list[ClaimedJob]
    next_due: int | None  # ms: when the earliest scheduled job is due
    drain: bool  # suspects wait and this worker was chosen to become idle for them
    reaped: int  # jobs found with an expired lease (now suspects)
    epoch: int = 0  # the control epoch when the jobs were claimed


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
        self._renew = redis.register_script(scripts.RENEW)
        self._remove = redis.register_script(scripts.REMOVE)
        self.batcher = TickBatcher(
            redis, redis.register_script(scripts.TICK), self.keys.script_keys, self._header
        )
        self.before_purge: list[Callable[[], Awaitable[None]]] = []
        # The control epoch the last claim answered, and when (time.monotonic()) a claim
        # first answered it: what this process learned of executions before that moment
        # may predate a pause or a cancel.
        self.control_epoch: int | None = None
        self.control_seen_at = math.inf

    def _header(self) -> list[Any]:
        return [in_progress_key_prefix, job_key_prefix, _now_ms(), WAKE_CAP]

    async def ping(self) -> None:
        try:
            await self.redis.ping()
        except (RedisError, OSError) as exc:
            raise QueueError(f"cannot reach Redis: {exc}") from exc

    def job_id(self, job: Job) -> str:
        return job.job_id(self.prefix)

    # Enqueue -----------------------------------------------------------------------------
    def _records(self, jobs: Sequence[Job], now: int) -> list[str | bytes]:
        """id, record, id, record, ... of ``jobs``."""
        argv: list[str | bytes] = []
        for job in jobs:
            value = serialize_job(
                FUNCTION_NAME, (job.payload(),), {}, None, now, serializer=serialize
            )
            argv += [self.job_id(job), value]
        return argv

    async def enqueue(
        self,
        jobs: Sequence[Job],
        *,
        priority: int | None = None,
        due_ms: int | None = None,
    ) -> int:
        """Send jobs in one round trip; returns how many were new (an id already queued,
        scheduled or running is left alone)."""
        if not jobs:
            return 0
        now = _now_ms()
        due = due_ms if due_ms is not None and due_ms > now else 0
        group = [len(jobs), due, priority_band(priority)]
        args = [*self._header(), *group, *self._records(jobs, now)]
        try:
            added = await self._enqueue(keys=self.keys.script_keys, args=args)
        except RedisError as exc:
            raise QueueError(f"could not enqueue {len(jobs)} job(s): {exc}") from exc
        self.local_wake.set()
        return int(added)

    async def enqueue_batched(self, jobs: Sequence[Job], *, priority: int | None) -> None:
        """Like ``enqueue``, in this event-loop tick's script call."""
        if not jobs:
            return
        try:
            await asyncio.shield(self._send_soon(jobs, priority))
        except RedisError as exc:
            raise QueueError(f"could not enqueue {len(jobs)} job(s): {exc}") from exc
        self.local_wake.set()

    def enqueue_soon(self, jobs: Sequence[Job], *, priority: int | None) -> None:
        """Like ``enqueue_batched``, without waiting: the jobs go out with this event-loop
        tick's script call, beside the end of the delivery that made them (a worker
        awaits that one) and its worker's claim. A failure is logged; the sweeper sends
        the jobs again. Jobs the claims of that call leave pending wake idle workers."""
        if jobs:
            sent = self._send_soon(jobs, priority)
            what = f"enqueueing {len(jobs)} job(s) (the sweeper sends them again)"
            sent.add_done_callback(functools.partial(_warn_if_failed, what))

    def _send_soon(self, jobs: Sequence[Job], priority: int | None) -> asyncio.Future[None]:
        group = (0, priority_band(priority))
        return self.batcher.add_nowait(ENQUEUE, self._records(jobs, _now_ms()), group)

    # Claim and renew ---------------------------------------------------------------------
    async def claim(
        self,
        worker: str,
        want: int,
        *,
        lease_ms: int,
        idle: bool = False,
        draining: bool = False,
    ) -> Claim:
        """Take up to ``want`` pending jobs with their records, leased to ``worker`` for
        ``lease_ms`` (in this event-loop tick's script call). ``idle``: the worker runs
        nothing, so it may take a suspect (then that one job alone). ``draining``: its
        last claim answered ``drain``. Cancelled while the call is under way, the jobs it
        took are put back at once."""
        sent = self.claim_soon(worker, want, lease_ms=lease_ms, idle=idle, draining=draining)
        try:
            return await asyncio.shield(sent)
        except asyncio.CancelledError:
            sent.add_done_callback(self._hand_back_claimed)
            raise

    def _hand_back_claimed(self, sent: asyncio.Future[Claim]) -> None:
        if not sent.cancelled() and sent.exception() is None:
            self.hand_back(sent.result().jobs)

    def claim_soon(
        self,
        worker: str,
        want: int | Callable[[], tuple[int, bool, bool]],
        *,
        lease_ms: int,
        idle: bool = False,
        draining: bool = False,
    ) -> asyncio.Future[Claim]:
        """``claim``, queued now for this tick's script call; the future of its answer.
        ``want`` may be a function giving (want, idle, draining), called when the call is
        built (a worker asks then for the slots free at that moment)."""
        if callable(want):
            ask = want
        else:
            fixed = (want, idle, draining)

            def ask() -> tuple[int, bool, bool]:
                return fixed

        def request() -> list[Any]:
            n, is_idle, is_draining = ask()
            return [
                worker,
                max(n, 0),
                lease_ms,
                "1" if is_idle else "0",
                "1" if is_draining else "0",
            ]

        answer = self.batcher.claim(request)
        claim: asyncio.Future[Claim] = asyncio.get_running_loop().create_future()

        def done(answer: asyncio.Future[Any]) -> None:
            if claim.cancelled():
                if not answer.cancelled() and answer.exception() is None:
                    self.hand_back(_claim_of(worker, answer.result()).jobs)
            elif answer.cancelled():
                claim.cancel()
            elif answer.exception() is not None:
                claim.set_exception(answer.exception())  # type: ignore[arg-type]
            else:
                claimed = _claim_of(worker, answer.result())
                if claimed.epoch != self.control_epoch:
                    self.control_epoch = claimed.epoch
                    self.control_seen_at = time.monotonic()
                claim.set_result(claimed)

        answer.add_done_callback(done)
        return claim

    def hand_back(self, jobs: Sequence[ClaimedJob]) -> None:
        """Release claimed jobs that will not run here (a claim nobody waits for, a worker
        stopping), without waiting; a failure is logged (their leases run out)."""
        for job in jobs:
            task = asyncio.get_running_loop().create_task(self.release(job))
            task.add_done_callback(functools.partial(_warn_if_failed, f"handing back {job.job_id}"))

    async def renew(self, worker: str, jobs: Sequence[ClaimedJob], lease_ms: int) -> list[str]:
        """Extend the leases of ``worker``'s running jobs (and its drain turn), one call for
        all; returns the ids of those it no longer owns (its lease ran out meanwhile)."""
        argv: list[Any] = [*self._header(), lease_ms, worker]
        for job in jobs:
            argv += [job.job_id, job.token]
        gone = await self._renew(keys=self.keys.script_keys, args=argv)
        return [g.decode() if isinstance(g, bytes) else str(g) for g in gone]

    # End a delivery ----------------------------------------------------------------------
    async def settle(self, job: ClaimedJob, outcome: JobOutcome) -> None:
        """End a delivery as ``outcome`` says (in this event-loop tick's script call);
        nothing happens unless the job is still this claim's."""
        await asyncio.shield(self.settle_soon(job, outcome))

    def settle_soon(self, job: ClaimedJob, outcome: JobOutcome) -> asyncio.Future[None]:
        """``settle`` as a future (done once the call is answered): the worker's path, one
        per node, with no task of its own."""
        if isinstance(outcome, Done):
            sent = self.batcher.add_nowait(
                SETTLE, [job.job_id], ("D" if job.solo else "d", job.token)
            )
        elif isinstance(outcome, Release):
            sent = self.batcher.add_nowait(
                SETTLE, [job.job_id], ("R" if job.solo else "r", job.token)
            )
        else:
            values = [job.job_id, outcome.due_ms, priority_band(outcome.priority)]
            sent = self.batcher.add_nowait(SETTLE, values, ("L" if job.solo else "l", job.token))
        if not isinstance(outcome, Done):
            self.local_wake.set()
        return sent

    async def finish(self, job: ClaimedJob) -> None:
        """The job is over."""
        await self.settle(job, Done())

    async def release(self, job: ClaimedJob) -> None:
        """Put the job back, first in line, to run again at once (a suspect goes back among
        the suspects)."""
        await self.settle(job, Release())

    async def reschedule(self, job: ClaimedJob, *, due_ms: int, priority: int | None) -> None:
        """Move the job to the scheduled set; it runs again at ``due_ms``."""
        await self.settle(job, Reschedule(due_ms, priority))

    async def remove(self, job_ids: Sequence[str]) -> None:
        """Take jobs that have not started out of the queue (a settled execution's deadline
        job, say). One taken meanwhile by a worker runs, and finds nothing to do."""
        if job_ids:
            await self._remove(keys=self.keys.script_keys, args=[*self._header(), *job_ids])

    async def bump_control_epoch(self) -> None:
        """Count a control action (pause, cancel, timeout) once the store committed it:
        from the next claim on, every worker stops trusting what it learned of executions
        before (a node claimed afterwards reads its execution's state). Raises
        ``QueueError`` when Redis refuses."""
        try:
            await self.redis.incr(self.keys.epoch)
        except (RedisError, OSError) as exc:
            raise QueueError(f"could not count a control action: {exc}") from exc

    def publish_settled(self, execution_id: str) -> None:
        """Announce a settled execution (waiters in other processes wake), with this
        event-loop tick's script call; a failure is logged (waiters also read the store)."""
        sent = self.batcher.add_nowait(PUBLISH, [execution_id])
        what = f"announcing execution {execution_id}"
        sent.add_done_callback(functools.partial(_warn_if_failed, what))

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
        """Jobs pending (suspects included), scheduled and running: four counts, no scan."""
        k = self.keys
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zcard(k.queue)
            pipe.zcard(k.suspects)
            pipe.zcard(k.scheduled)
            pipe.zcount(k.running, "-inf", "(inf")  # not the sentinel (scripts.py)
            queued, suspects, scheduled, running = await pipe.execute()
        return QueueStats(
            queued=int(queued) + int(suspects), scheduled=int(scheduled), running=int(running)
        )

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


def _claim_of(worker: str, answer: Any) -> Claim:
    claimed, next_due, drain, reaped, solo_lost, epoch = answer
    solo = int(solo_lost) >= 0
    jobs = [
        ClaimedJob(
            job_id=claimed[i].decode(),
            data=claimed[i + 1] or None,
            token=worker + SOLO if solo else worker,
            lost=max(int(solo_lost), 0),
            solo=solo,
            again=bool(claimed[i + 2]),
        )
        for i in range(0, len(claimed), 3)
    ]
    return Claim(
        jobs=jobs,
        next_due=int(float(next_due)) if next_due else None,
        drain=bool(drain),
        reaped=int(reaped),
        epoch=int(epoch),
    )


def _warn_if_failed(what: str, done: asyncio.Future[Any]) -> None:
    """Log a failed fire-and-forget Redis write (and consume its exception)."""
    if not done.cancelled() and done.exception() is not None:
        logging.getLogger("spane_py.queue").warning("%s failed: %s", what, done.exception())


def _now_ms() -> int:
    return int(time.time() * 1000)
