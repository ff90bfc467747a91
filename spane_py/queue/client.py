"""``JobQueue``: the queue seam — enqueue, claim, renew, finish, release, reschedule.

Everything spane_py does with Redis for its jobs goes through here (the scripts are in
``scripts.py``, their key layout described there). arq provides the connection pool and
settings (``ArqRedis``), the job encoding (``serialize_job`` / ``deserialize_job_raw``) and
the job records (``arq:job:<id>``, ``arq:in-progress:<id>``), so arq's ``Job`` reads a job's
record and status; claiming without scans, leases, suspects and batching are spane_py's.

Jobs wait in lanes (named queues, ``NodeJob.queue``): each job goes to its lane's queue, and
a worker claims from the lanes it serves (``claim(..., queues=)``). The keys are in
``keys.py``, the counts in ``stats.py``, the connection in ``connection.py``.
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
from redis.asyncio import Redis
from redis.exceptions import RedisError

from spane_py.errors import QueueError
from spane_py.queue import scripts, stats
from spane_py.queue.connection import connect
from spane_py.queue.jobs import (
    DEFAULT_QUEUE,
    FUNCTION_NAME,
    Job,
    check_queue_name,
    check_queue_names,
    priority_band,
    serialize,
)
from spane_py.queue.keys import LaneKeys, QueueKeys
from spane_py.queue.outcomes import Done, JobOutcome, Release, Reschedule
from spane_py.queue.stats import LaneStats, QueueStats
from spane_py.queue.tick import ENQUEUE, PUBLISH, SETTLE, TickBatcher

WAKE_CAP = 64
# The token of a suspect's owner: the worker id with this appended (see scripts.py).
SOLO = "|solo"


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    job_id: str
    data: bytes | None  # the job record; None: it expired
    token: str  # its owner's token (the lease is this worker's while it matches)
    lost: int = 0  # workers lost while it ran alone
    solo: bool = False  # a suspect: its worker runs nothing else meanwhile
    again: bool = False  # delivered before (rescheduled, released or lost with its worker)
    queue: str = DEFAULT_QUEUE  # the lane it came from (its ends and renewals keep it there)


@dataclass(frozen=True, slots=True)
class Claim:
    jobs: list[ClaimedJob]
    next_due: int | None  # ms: when the earliest scheduled job is due
    drain: bool  # suspects wait and this worker was chosen to become idle for them
    reaped: int  # jobs found with an expired lease (now suspects)
    epoch: int = 0  # the control epoch when the jobs were claimed


class JobQueue:
    def __init__(self, redis: ArqRedis, *, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix
        self.keys = QueueKeys(prefix)
        self.local_wake = asyncio.Event()
        self._enqueue = redis.register_script(scripts.ENQUEUE)
        self._renew = redis.register_script(scripts.RENEW)
        self._remove = redis.register_script(scripts.REMOVE)
        self._stats = redis.register_script(stats.STATS)
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
        return [in_progress_key_prefix, job_key_prefix, _now_ms(), WAKE_CAP, self.prefix]

    def lane(self, name: str = DEFAULT_QUEUE) -> LaneKeys:
        """The keys of lane ``name``."""
        return self.keys.lane(check_queue_name(name))

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

    def _by_lane(self, jobs: Sequence[Job], now: int) -> list[tuple[str, list[str | bytes]]]:
        """(lane, id, record, ... of its jobs) per lane of ``jobs``, the lanes checked."""
        lane = _one_lane(jobs)
        if lane is not None:
            return [(lane, self._records(jobs, now))]
        lanes: dict[str, list[Job]] = {}
        for job in jobs:
            lanes.setdefault(_checked_lane(job.queue), []).append(job)
        return [(name, self._records(group, now)) for name, group in lanes.items()]

    async def enqueue(
        self,
        jobs: Sequence[Job],
        *,
        priority: int | None = None,
        due_ms: int | None = None,
    ) -> int:
        """Send jobs, each to its lane (``job.queue``), in one round trip; returns how many
        were new (an id already queued, scheduled or running is left alone)."""
        if not jobs:
            return 0
        now = _now_ms()
        due = due_ms if due_ms is not None and due_ms > now else 0
        band = priority_band(priority)
        args = self._header()
        for lane, records in self._by_lane(jobs, now):
            args += [len(records) // 2, due, band, lane, *records]
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
        band = priority_band(priority)
        lane = _one_lane(jobs)  # the usual case (a node's children): one lane
        if lane is not None:
            return self.batcher.add_nowait(ENQUEUE, self._records(jobs, _now_ms()), (0, band, lane))
        return self.batcher.add_groups_nowait(
            ENQUEUE,
            [((0, band, lane), records) for lane, records in self._by_lane(jobs, _now_ms())],
        )

    # Claim and renew ---------------------------------------------------------------------
    async def claim(
        self,
        worker: str,
        want: int,
        *,
        lease_ms: int,
        idle: bool = False,
        draining: bool = False,
        queues: Sequence[str] = (DEFAULT_QUEUE,),
    ) -> Claim:
        """Take up to ``want`` pending jobs of the lanes ``queues`` (lowest score first
        across them) with their records, leased to ``worker`` for ``lease_ms`` (in this
        event-loop tick's script call). ``idle``: the worker runs nothing, so it may take a
        suspect of its lanes (then that one job alone). ``draining``: its last claim
        answered ``drain``. Cancelled while the call is under way, the jobs it took are put
        back at once."""
        sent = self.claim_soon(
            worker, want, lease_ms=lease_ms, idle=idle, draining=draining, queues=queues
        )
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
        queues: Sequence[str] = (DEFAULT_QUEUE,),
    ) -> asyncio.Future[Claim]:
        """``claim``, queued now for this tick's script call; the future of its answer.
        ``want`` may be a function giving (want, idle, draining), called when the call is
        built (a worker asks then for the slots free at that moment)."""
        lanes = _checked_lanes(tuple(queues))
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
                len(lanes),
                *lanes,
            ]

        answer = self.batcher.claim(request)
        claim: asyncio.Future[Claim] = asyncio.get_running_loop().create_future()

        def done(answer: asyncio.Future[Any]) -> None:
            if claim.cancelled():
                if not answer.cancelled() and answer.exception() is None:
                    self.hand_back(_claim_of(worker, lanes, answer.result()).jobs)
            elif answer.cancelled():
                claim.cancel()
            elif answer.exception() is not None:
                claim.set_exception(answer.exception())  # type: ignore[arg-type]
            else:
                claimed = _claim_of(worker, lanes, answer.result())
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
        all, each in its lane; returns the ids of those it no longer owns (its lease ran
        out meanwhile)."""
        argv: list[Any] = [*self._header(), lease_ms, worker]
        for job in jobs:
            argv += [job.job_id, job.token, job.queue]
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
                SETTLE, [job.job_id], ("D" if job.solo else "d", job.token, job.queue)
            )
        elif isinstance(outcome, Release):
            sent = self.batcher.add_nowait(
                SETTLE, [job.job_id], ("R" if job.solo else "r", job.token, job.queue)
            )
        else:
            values = [job.job_id, outcome.due_ms, priority_band(outcome.priority)]
            group = ("L" if job.solo else "l", job.token, job.queue)
            sent = self.batcher.add_nowait(SETTLE, values, group)
        if not isinstance(outcome, Done):
            self.local_wake.set()
        return sent

    async def finish(self, job: ClaimedJob) -> None:
        """The job is over."""
        await self.settle(job, Done())

    async def release(self, job: ClaimedJob) -> None:
        """Put the job back in its lane, first in line, to run again at once (a suspect goes
        back among the lane's suspects)."""
        await self.settle(job, Release())

    async def reschedule(self, job: ClaimedJob, *, due_ms: int, priority: int | None) -> None:
        """Move the job to the scheduled set; it runs again at ``due_ms``, in its lane."""
        await self.settle(job, Reschedule(due_ms, priority))

    async def remove(self, job_ids: Sequence[str]) -> None:
        """Take jobs that have not started out of the queue, whichever lane holds them (a
        settled execution's deadline job, say). One taken meanwhile by a worker runs, and
        finds nothing to do."""
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
        """A client with its own single connection, for BLPOP on wake lists."""
        kwargs = dict(self.redis.connection_pool.connection_kwargs)
        pool = self.redis.connection_pool.__class__(
            connection_class=self.redis.connection_pool.connection_class,
            max_connections=1,
            **kwargs,
        )
        return Redis.from_pool(pool)  # the client owns the pool: aclose() closes the socket

    async def stats(self) -> QueueStats:
        """Jobs pending (suspects included), scheduled and running, over every lane: one
        script call, no scan."""
        return stats.queue_stats(await self._read_stats(ages=False))

    async def lane_stats(self) -> dict[str, LaneStats]:
        """Per lane — the default one and every lane jobs were sent to — its pending and
        running jobs and the age of its oldest pending job: one script call."""
        return stats.lane_stats(await self._read_stats(ages=True))

    async def _read_stats(self, *, ages: bool) -> Any:
        args = [*self._header(), "1" if ages else "0"]
        try:
            return await self._stats(keys=self.keys.script_keys, args=args)
        except RedisError as exc:
            raise QueueError(f"could not read the queue's counts: {exc}") from exc

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


def _claim_of(worker: str, lanes: tuple[str, ...], answer: Any) -> Claim:
    """A claim's answer read; each job's flags are 1 if it was delivered before, plus twice
    the index of its lane in ``lanes``."""
    claimed, next_due, drain, reaped, solo_lost, epoch = answer
    solo = int(solo_lost) >= 0
    token = worker + SOLO if solo else worker
    lost = max(int(solo_lost), 0)
    if len(lanes) == 1:
        lane = lanes[0]
        jobs = [
            ClaimedJob(
                claimed[i].decode(),
                claimed[i + 1] or None,
                token,
                lost,
                solo,
                claimed[i + 2] == 1,
                lane,
            )
            for i in range(0, len(claimed), 3)
        ]
    else:
        jobs = [
            ClaimedJob(
                claimed[i].decode(),
                claimed[i + 1] or None,
                token,
                lost,
                solo,
                claimed[i + 2] & 1 == 1,
                lanes[claimed[i + 2] >> 1],
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


# Lane names already checked (the default one needs no check): a job's lane is checked the
# first time this process sends a job to it.
_LANES_SEEN = {DEFAULT_QUEUE}


def _checked_lane(name: str) -> str:
    if name not in _LANES_SEEN:
        check_queue_name(name)
        _LANES_SEEN.add(name)
    return name


def _one_lane(jobs: Sequence[Job]) -> str | None:
    """The lane of every job of ``jobs`` (checked), or None when they go to several."""
    lane = jobs[0].queue
    for job in jobs:
        if job.queue != lane:
            return None
    return lane if lane in _LANES_SEEN else _checked_lane(lane)


@functools.lru_cache(maxsize=256)
def _checked_lanes(queues: tuple[str, ...]) -> tuple[str, ...]:
    return check_queue_names(queues)


__all__ = [
    "Claim",
    "ClaimedJob",
    "JobQueue",
    "LaneStats",
    "QueueKeys",
    "QueueStats",
    "connect",
]
