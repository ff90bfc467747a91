"""``SpaneWorker``: claims node jobs, runs them, ends each delivery as its handler says.

The loop:

* **finding work**: a claim (``JobQueue.claim_soon``, part of the process's next Redis
  call) promotes due scheduled jobs, gives back the jobs of lost workers, and takes pending
  jobs of the worker's lanes (``queues``: lowest score first across them) *with their
  records*, leased to this worker, as many as it has free slots when the call is built; a
  job that ends asks for its slot to be filled in the same call that ends its delivery and
  sends its children, so a DAG hop costs one Redis call. An idle worker blocks on the wake
  lists of its lanes (or on an in-process event when the enqueuer shares its process) and
  looks again every ``poll_delay`` seconds as a fallback;
* **running a job**: a task per job calls the handler with the job's payload; the handler
  returns what should happen to the job (``Done``, ``Release``, ``Reschedule``);
* **leases**: one call every ``lease_seconds / 3`` renews the leases of all its running
  jobs; a worker that dies stops renewing, and its jobs go back (as suspects) once their
  leases run out;
* **side tasks**: lease renewal, the heartbeat and the periodic tasks (the sweeper, the
  scheduler) run under a ``Supervisor`` (``supervisor.py``): one that fails unexpectedly is
  logged and restarted; lease renewal that keeps failing stops the worker (its running jobs
  released, ``run()`` raising ``WorkerStoppedError``) rather than let their leases lapse;
* **suspects**: a job lost with its worker runs next time alone: the claim gives it only
  to a worker of its lane with nothing running, which then claims nothing until it ends (a
  busy worker of the lane may be asked to drain for it). A node that kills its process is
  found that way, and the jobs that ran beside it are not blamed.

Signals (SIGINT/SIGTERM with ``handle_signals``) stop it gracefully: no new jobs, running
ones get ``shutdown_grace`` seconds, the rest are cancelled and released at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from spane_py.errors import WorkerStoppedError
from spane_py.queue.client import Claim, ClaimedJob, JobQueue
from spane_py.queue.jobs import DEFAULT_QUEUE, check_queue_names, decode_record
from spane_py.queue.outcomes import DONE, JobOutcome, Release
from spane_py.queue.presence import BEAT_INTERVAL_S, WorkerInfo, WorkerPresence, new_worker_id
from spane_py.queue.supervisor import (
    BACKOFF_MAX_S,
    SideTask,
    Supervised,
    Supervisor,
)

logger = logging.getLogger("spane_py.worker")

# The handler of one delivery: (job payload, losses while it ran alone, whether the job was
# delivered before) -> its outcome.
Handler = Callable[[object, int, bool], Awaitable[JobOutcome]]


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


class SpaneWorker:
    def __init__(
        self,
        handler: Handler,
        *,
        job_queue: JobQueue,
        concurrency: int = 10,
        lease_seconds: float = 30.0,
        shutdown_grace: float = 10.0,
        poll_delay: float = 0.5,
        burst: bool = False,
        handle_signals: bool = True,
        periodic: Sequence[PeriodicTask] = (),
        presence: WorkerPresence | None = None,
        skip_to: Callable[[int], Awaitable[bool]] | None = None,
        queues: Sequence[str] = (DEFAULT_QUEUE,),
    ) -> None:
        self.handler = handler
        # The lanes it takes jobs from (checked, duplicates dropped, at least one).
        self.queues = check_queue_names(queues)
        self._wake_keys = [job_queue.keys.lane(name).wake for name in self.queues]
        # Burst only: when nothing runs and only scheduled jobs are left, called with when
        # the first is due (ms); True when it made jobs due now (time skipping in tests).
        self.skip_to = skip_to
        self.job_queue = job_queue
        self.concurrency = concurrency
        self.lease_ms = int(lease_seconds * 1000)
        self.shutdown_grace = shutdown_grace
        self.poll_delay_s = poll_delay
        self.burst = burst
        self.handle_signals = handle_signals
        self.periodic = list(periodic)
        self.presence = presence
        self.worker_id = new_worker_id()
        self.started_at = time.time()  # unix seconds, for its beat
        # Running deliveries: job id -> (the claim, its task).
        self.tasks: dict[str, tuple[ClaimedJob, asyncio.Task[None]]] = {}
        # Jobs whose handler runs (a slot each), with the task of that delivery.
        self._held: dict[str, asyncio.Task[None]] = {}
        self._asked = 0  # slots asked for by claims sent and not yet answered
        self._queued: asyncio.Future[Claim] | None = None  # the claim of the coming tick
        self._next_due: int | None = None  # from the last claim's answer
        self._solo = False  # running a suspect: claim nothing until it ends
        self._draining = False  # chosen to become idle for a suspect
        self._stopping = False
        self._slot_freed = asyncio.Event()
        self._blocker: Redis | None = None
        self._blpop: asyncio.Task[Any] | None = None
        self._supervisor: Supervisor | None = None
        self._failure: WorkerStoppedError | None = None  # a side task gave up: run() raises it
        self._main: asyncio.Task[None] | None = None
        self._stop_task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        """Run until ``stop()`` (or a signal; with ``burst``, until no work is left).

        Raises ``WorkerStoppedError`` when lease renewal kept failing and the worker stopped
        on its own (its running jobs were released).
        """
        self._main = asyncio.current_task()
        loop = asyncio.get_running_loop()
        if self.handle_signals:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, self._on_signal, sig)
        self._blocker = self.job_queue.blocking_client()
        self._supervisor = Supervisor(self._side_task_list(), on_fatal=self._side_task_gave_up)
        self._supervisor.start()
        try:
            # The loop ends by flag, not by cancellation: stop() sets the flag and wakes it.
            next_due: int | None = None
            look = True
            while not self._stopping:
                if look:
                    next_due = await self._claim_and_start()
                    if self.burst:
                        idle = await self._nothing_runs()
                        if idle and next_due is None:
                            return
                        skip = self.skip_to
                        if idle and next_due is not None and skip and await skip(next_due):
                            continue  # jobs made due: claim them at once
                look = await self._wait(next_due if look else self._next_due)
            if self.tasks:  # stop() is letting running jobs finish: wait for them too
                await asyncio.wait([t for _, t in self.tasks.values()])
        finally:
            if self.handle_signals:
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.remove_signal_handler(sig)
            if self.presence is not None:
                with contextlib.suppress(Exception):
                    await self.presence.leave(self.worker_id)
            await self._supervisor.close()
            if self._blpop is not None:
                await _cancel_quietly(self._blpop)
            with contextlib.suppress(Exception):
                await self._blocker.aclose()
        if self._failure is not None:
            raise self._failure

    def _side_task_list(self) -> list[SideTask]:
        """This worker's side tasks: lease renewal (critical: its failures stop the worker),
        the heartbeat, the periodic tasks."""
        tasks = [
            SideTask(
                "leases", self._renew_leases, critical=True, window=max(self.lease_ms / 1000, 1.0)
            )
        ]
        if self.presence is not None:
            tasks.append(SideTask("heartbeat", self._beat, backoff_max=BEAT_INTERVAL_S))
        for periodic in self.periodic:
            tasks.append(
                SideTask(
                    periodic.name,
                    functools.partial(self._every, periodic),
                    backoff_max=min(max(periodic.interval, 0.05), BACKOFF_MAX_S),
                )
            )
        return tasks

    def _side_task_gave_up(self, failure: WorkerStoppedError) -> None:
        """A critical side task kept failing (logged by the supervisor): stop at once, with
        no grace — claim nothing more, cancel the running deliveries (each is released as
        it ends) — and make ``run()`` raise ``failure`` once they have ended. The main loop
        ends by its flag, as with ``stop()``; nothing cancels it."""
        if self._failure is None:
            self._failure = failure
        self._stopping = True
        self._slot_freed.set()
        self.job_queue.local_wake.set()
        for _, task in self.tasks.values():
            task.cancel()

    async def _claim_and_start(self) -> int | None:
        """Claim (with the coming tick's Redis call) and start what comes; the next due
        time of the scheduled jobs."""
        claim = self._request_claim()
        try:
            await asyncio.shield(claim)
        except (RedisError, OSError) as exc:
            logger.warning("claiming jobs failed, retrying: %s", exc)
            await asyncio.sleep(min(self.poll_delay_s, 1.0))
            return None
        return self._next_due

    def _request_claim(self) -> asyncio.Future[Claim]:
        """This worker's claim in the coming tick's Redis call (one per tick, however many
        ask): it asks for the slots free when the call is built. Its answer starts the
        jobs (``_claimed``)."""
        if self._queued is not None:
            return self._queued
        asked = [0]

        def ask() -> tuple[int, bool, bool]:
            self._queued = None
            busy = len(self._held) + self._asked
            want = 0 if self._stopping or self._solo else max(self.concurrency - busy, 0)
            self._asked += want
            asked[0] = want
            return want, busy == 0 and not self._stopping, self._draining

        claim = self.job_queue.claim_soon(
            self.worker_id, ask, lease_ms=self.lease_ms, queues=self.queues
        )
        self._queued = claim
        claim.add_done_callback(lambda answer: self._claimed(asked[0], answer))
        return claim

    def _claimed(self, want: int, answer: asyncio.Future[Claim]) -> None:
        self._asked -= want
        if answer.cancelled() or answer.exception() is not None:
            return  # logged by whoever awaits it; the jobs of a lost answer come back
        claim = answer.result()
        self._next_due = claim.next_due
        self._slot_freed.set()  # the main loop may wait differently now
        if claim.reaped:
            logger.warning(
                "%d job(s) found whose worker was lost (lease ran out): each runs again alone",
                claim.reaped,
            )
        if claim.drain and not self._draining:
            logger.info("jobs lost with their worker wait: taking no more until idle")
        self._draining = claim.drain
        for job in claim.jobs:
            if self._stopping:  # claimed as the stop began: hand it back at once
                self.job_queue.hand_back([job])
                continue
            if job.solo:
                self._solo = True
                logger.warning(
                    "job %s was running when its worker was lost: running it alone", job.job_id
                )
            task = asyncio.create_task(self._deliver(job))
            self._held[job.job_id] = task
            self.tasks[job.job_id] = (job, task)
            task.add_done_callback(functools.partial(self._delivered, job))

    async def _deliver(self, job: ClaimedJob) -> None:
        """One delivery: run the handler, then end the delivery as it says."""
        outcome: JobOutcome = DONE
        try:
            if job.data is None:
                logger.warning("job %s expired before it ran", job.job_id)
            else:
                try:
                    payload = decode_record(job.data)
                except ValueError as exc:
                    logger.error("job %s dropped: %s", job.job_id, exc)
                else:
                    outcome = await self.handler(payload, job.lost, job.again)
        except asyncio.CancelledError:
            # Cut off by a shutdown: it runs again at once, here or elsewhere.
            outcome = Release()
        except Exception:
            logger.exception("job %s failed in the worker", job.job_id)
        # Its slot is free now: the claim that fills it goes out with the end of this
        # delivery (and the children it enqueued), in one Redis call.
        self._free(job, asyncio.current_task())
        if not self._stopping:
            self._request_claim()
        try:
            await asyncio.shield(self.job_queue.settle_soon(job, outcome))
        except (RedisError, OSError) as exc:  # its lease runs out; it comes back a suspect
            logger.warning("ending job %s failed: %s", job.job_id, exc)

    def _free(self, job: ClaimedJob, task: asyncio.Task[Any] | None) -> None:
        """The slot of this delivery of the job is free (its handler returned, or it never
        ran). The same job may already be held again, by a newer delivery."""
        if task is not None and self._held.get(job.job_id) is task:
            del self._held[job.job_id]
            if job.solo:
                self._solo = False

    def _delivered(self, job: ClaimedJob, task: asyncio.Task[None]) -> None:
        self._free(job, task)
        if self.tasks.get(job.job_id, (None, None))[1] is task:
            del self.tasks[job.job_id]
        self._slot_freed.set()
        if not task.cancelled() and task.exception() is not None:
            logger.error("job delivery crashed in the worker", exc_info=task.exception())

    async def _nothing_runs(self) -> bool:
        """No job runs here or anywhere, none is asked for, none is queued in any lane
        (scheduled ones may wait)."""
        if self.tasks or self._asked or self._queued is not None:
            return False
        stats = await self.job_queue.stats()
        return stats.queued + stats.running == 0

    async def _wait(self, next_due: int | None) -> bool:
        """Sleep until there may be work — a wake token, a local enqueue, a due scheduled
        job, ``poll_delay`` at the latest: True — or until a slot frees or a claim is
        answered: False (the way to wait may have changed; the finished job's own claim
        already asked for more). While its slots are full or a claim of its own is under
        way, it waits for that alone (wake tokens stay for when it has room).

        ``asyncio.wait`` is used throughout: it never cancels what it waits on, so nothing
        here can swallow a cancellation (Python 3.11's ``wait_for`` can).
        """
        timeout = self.poll_delay_s
        if next_due is not None:
            timeout = min(timeout, max(next_due / 1000 - time.time(), 0.0))
        if timeout <= 0 or self._stopping:
            return True
        local = self.job_queue.local_wake
        # Full, or its own claim is queued or under way (that claim takes what is pending
        # now, and its answer comes as ``changed``): a wake-up would only claim nothing.
        full = (
            len(self._held) >= self.concurrency
            or self._solo
            or self._draining
            or self._asked > 0
            or self._queued is not None
        )
        if not full and local.is_set():
            local.clear()
            return True
        self._slot_freed.clear()
        changed = asyncio.create_task(self._slot_freed.wait())
        waiters = [changed]
        if not full:
            waiters.append(asyncio.create_task(local.wait()))
            if self._blpop is None or self._blpop.done():
                if self._blpop is not None and not self._blpop.cancelled():
                    self._blpop.exception()  # consume: a failed BLPOP is only a missed hint
                self._blpop = asyncio.create_task(self._block(max(timeout, 0.01)))
        try:
            done, _ = await asyncio.wait(
                [*waiters, self._blpop] if not full and self._blpop else waiters,
                timeout=timeout,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            for waiter in waiters:
                waiter.cancel()
        if not full:
            local.clear()
        return not done or done != {changed}

    async def _block(self, seconds: float) -> Any:
        # BLPOP on the wake lists of its lanes, with a fractional timeout (Redis >= 6);
        # redis-py types it as int seconds.
        assert self._blocker is not None
        return await self._blocker.execute_command(  # type: ignore[no-untyped-call]
            "BLPOP", *self._wake_keys, round(seconds, 3)
        )

    async def _renew_leases(self, supervised: Supervised) -> None:
        """One call per interval renews every running job's lease (and a drain turn).
        Redis and network errors are logged and retried next round; anything else goes to
        the supervisor, which starts it again at once (it renews at once then)."""
        interval = max(self.lease_ms / 3000, 0.05)
        wait = not supervised.restarted
        while True:
            if wait:
                await asyncio.sleep(interval)
            wait = True
            jobs = [job for job, task in self.tasks.values() if not task.done()]
            if not jobs and not self._draining:
                continue
            try:
                gone = await self.job_queue.renew(self.worker_id, jobs, self.lease_ms)
            except (RedisError, OSError) as exc:
                logger.warning("renewing job leases failed: %s", exc)
                continue
            supervised.succeeded()
            for job_id in gone:
                logger.warning(
                    "job %s: its lease ran out while it ran here (the worker was stalled); "
                    "another worker may run it, and only one result is recorded",
                    job_id,
                )

    async def _beat(self, supervised: Supervised) -> None:
        """This worker's beat in the presence set (``/healthz``, live workers), with what
        it is (``info``)."""
        assert self.presence is not None
        while True:
            try:
                await self.presence.beat(self.worker_id, self.info())
            except (RedisError, OSError) as exc:
                logger.warning("recording the worker's heartbeat failed: %s", exc)
            supervised.succeeded()
            await asyncio.sleep(BEAT_INTERVAL_S)

    def info(self) -> WorkerInfo:
        """What this worker says of itself with its beat."""
        return WorkerInfo(
            queues=self.queues,
            concurrency=self.concurrency,
            host=socket.gethostname(),
            pid=os.getpid(),
            started_at=self.started_at,
            running=len(self._held),
        )

    async def _every(self, periodic: PeriodicTask, supervised: Supervised) -> None:
        """Run a side task (the sweeper, the scheduler) every ``interval`` seconds, or when
        it asks. A failing round ends this loop: the supervisor logs it and starts the loop
        again after a backoff of at most ``interval`` (a database outage must not stop the
        task, nor the worker), and the round runs at once then."""
        if supervised.restarted:
            delay = 0.0
        elif periodic.first_delay is None:
            delay = periodic.interval
        else:
            delay = periodic.first_delay
        while True:
            await _pause(delay, periodic.wake)
            wanted = await self._finish_round(periodic)
            supervised.succeeded()
            delay = periodic.interval if wanted is None else wanted

    async def _finish_round(self, periodic: PeriodicTask) -> float | None:
        """One round of ``periodic``. A worker that stops while the round runs lets it end
        (within ``shutdown_grace``) before the cancellation goes on: a round cut off between
        two writes leaves work half done — a scheduler round that created a tick's execution
        would not send its entry jobs (they would wait for the sweeper) nor report the tick."""
        task = asyncio.ensure_future(periodic.run())
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if not task.done():
                await asyncio.wait([task], timeout=self.shutdown_grace)
            await _cancel_quietly(task)
            raise

    async def stop(self, grace_seconds: float = 10.0) -> None:
        """Stop taking jobs, let running ones finish within the grace period, cancel the rest.

        A cancelled job is released: it runs again at once, here or on another worker.
        """
        self._stopping = True
        self._slot_freed.set()
        self.job_queue.local_wake.set()
        running = [t for _, t in self.tasks.values() if not t.done()]
        if running:
            _, pending = await asyncio.wait(running, timeout=grace_seconds)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
        main = self._main
        if main is not None and not main.done() and main is not asyncio.current_task():
            done, _ = await asyncio.wait([main], timeout=max(grace_seconds, 1.0))
            if not done:
                await _cancel_quietly(main)

    def _on_signal(self, signum: int) -> None:
        """SIGINT/SIGTERM: a graceful stop."""
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
