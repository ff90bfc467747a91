"""``SpaneWorker``: arq's Worker, woken when work arrives instead of polling.

The worker keeps arq's lifecycle (startup/shutdown hooks, signals, health checks, burst
mode), job format and key layout. Two things change, both for speed:

* finding work: one Lua call claims a batch of jobs *with their data* (promoting due
  scheduled jobs first), and an idle worker blocks on the wake list — or on an in-process
  event when the enqueuer shares its process — so a DAG hop costs about a Redis round trip
  and an idle worker wakes only every ``poll_delay`` seconds as a fallback;
* running a job: ``_run_claimed`` is arq's ``run_job`` minus the fetch round trip (the
  claim did it), the extra task per job and result storage; finishes of jobs that end in
  the same loop tick go to Redis together.

Running jobs hold a lease (arq's in-progress key) that a side task refreshes; a worker that
dies stops refreshing, and its jobs become claimable again once the lease runs out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from arq.jobs import SerializationError, deserialize_job_raw
from arq.utils import ms_to_datetime, timestamp_ms
from arq.worker import Retry, RetryJob, Worker
from redis.asyncio import Redis
from redis.exceptions import RedisError

from spane_py.queue.client import ClaimedJob, JobQueue
from spane_py.queue.presence import WorkerPresence, new_worker_id

logger = logging.getLogger("spane_py.worker")


@dataclass(frozen=True, slots=True)
class PeriodicTask:
    """A named side task. ``run`` returns None to run again ``interval`` seconds later, or
    the seconds until it wants to run again (a scheduler sleeps until its next tick);
    ``wake``, when set, cuts a wait short (a schedule registered in this process)."""

    name: str
    interval: float
    run: Callable[[], Awaitable[float | None]]
    first_delay: float | None = None  # None: ``interval``
    wake: asyncio.Event | None = None


class SpaneWorker(Worker):
    def __init__(
        self,
        *args: Any,
        job_queue: JobQueue,
        lease_seconds: float = 30.0,
        shutdown_grace: float = 10.0,
        periodic: Sequence[PeriodicTask] = (),
        presence: WorkerPresence | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.worker_id = new_worker_id()
        self.presence = presence
        self.shutdown_grace = shutdown_grace
        self.periodic = list(periodic)
        self._periodic_tasks: list[asyncio.Task[None]] = []
        self._stop_task: asyncio.Task[None] | None = None
        self.job_queue = job_queue
        self.lease_ms = int(lease_seconds * 1000)
        self._slot_freed = asyncio.Event()
        self._blocker: Redis | None = None
        self._blpop: asyncio.Task[Any] | None = None
        self._lease_task: asyncio.Task[None] | None = None
        self._stopping = False

    async def main(self) -> None:
        self.ctx["redis"] = self.pool
        if self.on_startup:
            await self.on_startup(self.ctx)
        self._blocker = self.job_queue.blocking_client()
        self._lease_task = asyncio.create_task(self._refresh_leases(), name="spane-lease-refresh")
        self._periodic_tasks = [
            asyncio.create_task(self._every(p), name=f"spane-{p.name}") for p in self.periodic
        ]
        try:
            # The loop ends by flag, not by cancellation: stop() sets the flag and wakes it.
            while not self._stopping:
                next_due = await self._claim_and_start()
                await self._reap()
                if self.burst and await self._burst_done(next_due):
                    return
                await self._wait(next_due)
            if self.tasks:  # stop() is letting running jobs finish: wait for them too
                await asyncio.wait(list(self.tasks.values()))
        finally:
            with contextlib.suppress(Exception):
                await self.pool.delete(self.health_check_key)  # as arq's close() does
            if self.presence is not None:
                with contextlib.suppress(Exception):
                    await self.presence.leave(self.worker_id)
            await _cancel_quietly(self._lease_task)
            for task in self._periodic_tasks:
                await _cancel_quietly(task)
            if self._blpop is not None:
                await _cancel_quietly(self._blpop)
            with contextlib.suppress(Exception):
                await self._blocker.aclose()

    async def _claim_and_start(self) -> int | None:
        want = self.max_jobs - self.job_counter
        if not self.allow_pick_jobs or self._stopping:
            want = 0
        if self.burst and self.max_burst_jobs >= 0:
            want = min(want, self.max_burst_jobs - self._jobs_started())
        try:
            claimed, next_due = await self.job_queue.claim(max(want, 0), lease_ms=self.lease_ms)
        except (RedisError, OSError) as exc:
            logger.warning("claiming jobs failed, retrying: %s", exc)
            await asyncio.sleep(min(self.poll_delay_s, 1.0))
            return None
        for job in claimed:
            await self.sem.acquire()
            self.job_counter += 1
            task = asyncio.create_task(self._run_claimed(job))
            task.add_done_callback(self._job_done)
            self.tasks[job.job_id] = task
        await self.heart_beat()
        return next_due

    async def _run_claimed(self, job: ClaimedJob) -> None:
        """arq's ``run_job`` for a job whose data the claim already fetched.

        Same semantics as arq (try counting, max_tries, ``Retry`` / ``RetryJob`` /
        cancellation put the job back, hooks, the function timeout, shielded finish), minus
        the fetch round trip, the extra task per job and result storage: spane_py keeps no
        arq results, the store is the source of truth.
        """
        job_id, job_try = job.job_id, job.job_try
        if job.data is None:
            logger.warning("job %s expired before it ran", job_id)
            self.jobs_failed += 1
            await asyncio.shield(self.finish_failed_job(job_id, None))
            return
        try:
            name, args, kwargs, enqueue_try, enqueue_ms = deserialize_job_raw(
                job.data, deserializer=self.job_deserializer
            )
        except SerializationError:
            logger.exception("job %s is not valid JSON job data; dropped", job_id)
            self.jobs_failed += 1
            await asyncio.shield(self.finish_failed_job(job_id, None))
            return
        function = self.functions.get(name)
        if function is None:
            logger.warning("job %s names function %r, which this worker lacks", job_id, name)
            self.jobs_failed += 1
            await asyncio.shield(self.finish_failed_job(job_id, None))
            return
        if enqueue_try and enqueue_try > job_try:
            job_try = enqueue_try
        max_tries = self.max_tries if function.max_tries is None else function.max_tries
        if job_try > max_tries:
            logger.warning("job %s exceeded max tries (%d)", job_id, max_tries)
            self.jobs_failed += 1
            await asyncio.shield(self.finish_failed_job(job_id, None))
            return
        ctx = {
            **self.ctx,
            "job_id": job_id,
            "job_try": job_try,
            "enqueue_time": ms_to_datetime(enqueue_ms),
            "score": job.score,
        }
        if self.on_job_start:
            await self.on_job_start(ctx)
        timeout_s = self.job_timeout_s if function.timeout_s is None else function.timeout_s
        finish = True
        incr_score: int | None = None
        try:
            async with asyncio.timeout(timeout_s):
                await function.coroutine(ctx, *args, **kwargs)
        except Retry as exc:
            finish = False
            self.jobs_retried += 1
            if exc.defer_score:
                incr_score = exc.defer_score + (timestamp_ms() - job.score)
        except (RetryJob, asyncio.CancelledError):
            # Put back (arq's retry_jobs behaviour): it runs again, here or elsewhere.
            finish = False
            self.jobs_retried += 1
        except Exception:
            logger.exception("job %s failed", job_id)
            self.jobs_failed += 1
        else:
            self.jobs_complete += 1
        if self.on_job_end:
            await self.on_job_end(ctx)
        await asyncio.shield(self.finish_job(job_id, finish, None, None, False, incr_score, None))
        if self.after_job_end:
            await self.after_job_end(ctx)

    async def record_health(self) -> None:
        """arq's health key, and this worker's own beat in the presence set (same rhythm:
        ``health_check_interval``)."""
        due = time.time() - self._last_health_check >= self.health_check_interval
        await super().record_health()
        if due and self.presence is not None:
            try:
                await self.presence.beat(self.worker_id)
            except (RedisError, OSError) as exc:
                logger.warning("recording the worker's heartbeat failed: %s", exc)

    def _job_done(self, _: asyncio.Task[None]) -> None:
        self._release_sem_dec_counter_on_complete()
        self._slot_freed.set()

    async def _reap(self) -> None:
        for job_id, task in list(self.tasks.items()):
            if task.done():
                del self.tasks[job_id]
                if not task.cancelled() and task.exception() is not None:
                    logger.error("job %s crashed in the worker", job_id, exc_info=task.exception())

    async def _burst_done(self, next_due: int | None) -> bool:
        if self.tasks:
            return False
        if 0 <= self.max_burst_jobs <= self._jobs_started():
            return True
        stats = await self.job_queue.stats()
        return stats.queued + stats.running == 0 and next_due is None

    async def _wait(self, next_due: int | None) -> None:
        """Sleep until there may be work: a wake token, a local enqueue, a freed slot (when
        full), a due scheduled job, or ``poll_delay`` at the latest.

        ``asyncio.wait`` is used throughout: it never cancels what it waits on, so nothing
        here can swallow a cancellation (Python 3.11's ``wait_for`` can).
        """
        timeout = self.poll_delay_s
        if next_due is not None:
            timeout = min(timeout, max(next_due / 1000 - time.time(), 0.0))
        if timeout <= 0 or self._stopping:
            return
        local = self.job_queue.local_wake
        full = self.job_counter >= self.max_jobs
        if not full and local.is_set():
            local.clear()
            return
        self._slot_freed.clear()
        waiters = [asyncio.create_task(self._slot_freed.wait())]
        if not full:
            waiters.append(asyncio.create_task(local.wait()))
            if self._blpop is None or self._blpop.done():
                if self._blpop is not None and not self._blpop.cancelled():
                    self._blpop.exception()  # consume: a failed BLPOP is only a missed hint
                self._blpop = asyncio.create_task(self._block(max(timeout, 0.01)))
        try:
            await asyncio.wait(
                [*waiters, self._blpop] if not full and self._blpop else waiters,
                timeout=timeout,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            for waiter in waiters:
                waiter.cancel()
        if not full:
            local.clear()

    async def _every(self, periodic: PeriodicTask) -> None:
        """Run a side task (the sweeper, the scheduler) every ``interval`` seconds, or when
        it asks. A failing round is logged and the next one runs: a database outage must
        not stop the worker."""
        delay = periodic.interval if periodic.first_delay is None else periodic.first_delay
        while True:
            await _pause(delay, periodic.wake)
            delay = periodic.interval
            try:
                wanted = await periodic.run()
            except Exception:
                logger.exception(
                    "%s failed; it runs again in %.0f s", periodic.name, periodic.interval
                )
            else:
                if wanted is not None:
                    delay = wanted

    async def _block(self, seconds: float) -> Any:
        # BLPOP with a fractional timeout (Redis >= 6); redis-py types it as int seconds.
        assert self._blocker is not None
        return await self._blocker.execute_command(  # type: ignore[no-untyped-call]
            "BLPOP", self.job_queue.keys.wake, round(seconds, 3)
        )

    async def _refresh_leases(self) -> None:
        interval = max(self.lease_ms / 3000, 0.05)
        while True:
            await asyncio.sleep(interval)
            running = [job_id for job_id, t in self.tasks.items() if not t.done()]
            try:
                await self.job_queue.refresh_leases(running, self.lease_ms)
            except (RedisError, OSError) as exc:
                logger.warning("refreshing job leases failed: %s", exc)

    async def finish_job(
        self,
        job_id: str,
        finish: bool,
        result_data: bytes | None,
        result_timeout_s: float | None,
        keep_result_forever: bool,
        incr_score: int | None,
        keep_in_progress: float | None,
    ) -> None:
        if result_data is not None:  # results are not kept by spane_py; arq's path if they are
            await super().finish_job(
                job_id,
                finish,
                result_data,
                result_timeout_s,
                keep_result_forever,
                incr_score,
                keep_in_progress,
            )
            return
        mode = "done" if finish else ("incr" if incr_score else "release")
        keep_ms = None if keep_in_progress is None else int(keep_in_progress * 1000)
        await self.job_queue.finish(
            job_id, mode=mode, incr_score=incr_score or 0, keep_in_progress_ms=keep_ms
        )

    async def finish_failed_job(self, job_id: str, result_data: bytes | None) -> None:
        await self.job_queue.finish(job_id, mode="done")

    async def stop(self, grace_seconds: float = 10.0) -> None:
        """Stop taking jobs, let running ones finish within the grace period, cancel the rest.

        A cancelled job stays in the queue and runs again (here or on another worker).
        """
        self._stopping = True
        self.allow_pick_jobs = False
        self._slot_freed.set()
        running = [t for t in self.tasks.values() if not t.done()]
        if running:
            _, pending = await asyncio.wait(running, timeout=grace_seconds)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
        if self.main_task is not None and not self.main_task.done():
            done, _ = await asyncio.wait([self.main_task], timeout=max(grace_seconds, 1.0))
            if not done:
                await _cancel_quietly(self.main_task)

    def handle_sig(self, signum: int) -> None:
        """SIGINT/SIGTERM: a graceful stop (arq's default cancels running jobs at once)."""
        logger.info(
            "signal %s: stopping; running jobs get %.0f s to finish", signum, self.shutdown_grace
        )
        if not self._stopping:
            self._stop_task = asyncio.get_running_loop().create_task(self.stop(self.shutdown_grace))


async def _pause(seconds: float, wake: asyncio.Event | None) -> None:
    """Sleep ``seconds``, or until ``wake`` is set (it is cleared then)."""
    if wake is None:
        await asyncio.sleep(seconds)
        return
    waiter = asyncio.create_task(wake.wait())
    try:
        await asyncio.wait([waiter], timeout=seconds)
    finally:
        waiter.cancel()
    wake.clear()


async def _cancel_quietly(task: asyncio.Task[Any]) -> None:
    if not task.done():
        task.cancel()
    await asyncio.wait([task])
    if not task.cancelled():
        task.exception()  # consume it: a failing side task must not warn at exit
