"""A worker's side tasks run under a supervisor (``spane_py/queue/supervisor.py``).

A periodic task that fails is restarted (soon, with backoff) instead of dying or going quiet
for a whole interval; lease renewal that fails unexpectedly is restarted at once, so a running
job keeps its lease and runs once; renewal that keeps failing stops the worker loudly, and
the job it held goes back to the queue instead of staying leased to a worker that cannot
renew it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from spane_py import ExecutionContext, ExecutionStatus, NodeRegistry
from spane_py.errors import WorkerStoppedError
from spane_py.queue.client import ClaimedJob, JobQueue, connect
from spane_py.queue.jobs import NodeJob
from spane_py.queue.outcomes import DONE, JobOutcome
from spane_py.queue.worker import PeriodicTask, SpaneWorker
from tests.integration._support import node, wait_until, workflow
from tests.integration.conftest import EngineFactory

LONG = 30.0  # seconds: a generous bound for anything that should take well under one


@pytest.fixture
async def queue(redis_url: str, key_prefix: str) -> AsyncIterator[JobQueue]:
    q = JobQueue(connect(redis_url, queue_name=f"{key_prefix}:queue"), prefix=key_prefix)
    try:
        yield q
    finally:
        await q.purge()
        await q.redis.aclose(close_connection_pool=True)


@contextlib.asynccontextmanager
async def running(worker: SpaneWorker) -> AsyncIterator[asyncio.Task[None]]:
    """Run ``worker`` for the block; stop it afterwards (whatever it ended with)."""
    task = asyncio.create_task(worker.run())
    try:
        yield task
    finally:
        await worker.stop(1.0)
        with contextlib.suppress(BaseException):
            await task


async def never_called(payload: object, lost: int, again: bool) -> JobOutcome:
    raise AssertionError("no job was enqueued")


@pytest.mark.parametrize(
    "error",
    [RuntimeError("a bug in the task"), asyncio.CancelledError()],
    ids=["exception", "stray-cancellation"],
)
async def test_a_periodic_task_that_fails_once_keeps_running(
    queue: JobQueue, error: BaseException, caplog: pytest.LogCaptureFixture
) -> None:
    """The task asks to run again soon after each round (as the scheduler does); its first
    round fails. It must run again soon, not after its (hour-long) interval, and not stop
    for good: a CancelledError it did not ask for (a future cancelled under it) included."""
    caplog.set_level(logging.ERROR, logger="spane_py.worker")
    rounds = 0
    reached = asyncio.Event()

    async def flaky() -> float:
        nonlocal rounds
        rounds += 1
        if rounds == 1:
            raise error
        if rounds >= 5:
            reached.set()
        return 0.01

    worker = SpaneWorker(
        never_called,
        job_queue=queue,
        handle_signals=False,
        poll_delay=0.2,
        periodic=[PeriodicTask("flaky", 3600.0, flaky, first_delay=0.0)],
    )
    async with running(worker) as task:
        await asyncio.wait_for(reached.wait(), LONG)
        assert not task.done()
    failures = [r for r in caplog.records if "flaky" in r.getMessage()]
    assert failures
    assert failures[0].exc_info is not None  # logged with its traceback


async def test_lease_renewal_that_fails_once_is_restarted_and_the_job_runs_once(
    make_engine: EngineFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A renewal that raises something unexpected once: the renewals go on, so a node running
    for several lease periods keeps its lease and is not delivered again (an idle worker
    beside it would take it the moment its lease ran out)."""
    renew = JobQueue.renew
    failed = False
    renewed_since = 0
    renewing = asyncio.Event()

    async def renew_failing_once(
        self: JobQueue, worker: str, jobs: Sequence[ClaimedJob], lease_ms: int
    ) -> list[str]:
        nonlocal failed, renewed_since
        if jobs and not failed:
            failed = True
            raise RuntimeError("a bug in the renewal")
        gone = await renew(self, worker, jobs, lease_ms)
        if failed and jobs:
            renewed_since += 1
            if renewed_since >= 6:  # 6 renewals a third of a lease apart: 2 lease periods
                renewing.set()
        return gone

    monkeypatch.setattr(JobQueue, "renew", renew_failing_once)
    attempts: list[int] = []
    entered = asyncio.Event()
    release = asyncio.Event()

    async def hold(ctx: ExecutionContext) -> Any:
        attempts.append(ctx.attempt)
        entered.set()
        await release.wait()
        return "held"

    registry = NodeRegistry()
    registry.register("hold", hold)
    # 2 s: a busy machine's stalls of the event loop stay well within a renewal's slack.
    engine = await make_engine(registry, lease_seconds=2.0)
    await engine.register_workflow(workflow("long", node("a", "hold")))
    await engine.start_workers(1)
    eid = await engine.enqueue_workflow("long")
    await asyncio.wait_for(entered.wait(), LONG)
    await engine.start_workers(1)  # idle beside it: takes the job if its lease runs out

    await asyncio.wait_for(renewing.wait(), LONG)
    release.set()

    state = await engine.wait_for_execution(eid, timeout=LONG)
    assert state.status is ExecutionStatus.COMPLETED
    assert state.node_results["a"].data == "held"
    assert attempts == [1]


async def test_lease_renewal_that_keeps_failing_stops_the_worker_and_releases_its_job(
    queue: JobQueue, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Renewal raising every time: the worker stops (``run()`` raises ``WorkerStoppedError``,
    an error is logged), and the job it ran is cut off and released, back in the queue at
    once, not left leased to a worker that can no longer renew it."""
    caplog.set_level(logging.ERROR, logger="spane_py.worker")

    async def renew_broken(
        self: JobQueue, worker: str, jobs: Sequence[ClaimedJob], lease_ms: int
    ) -> list[str]:
        raise RuntimeError("a bug in the renewal")

    monkeypatch.setattr(JobQueue, "renew", renew_broken)
    entered = asyncio.Event()
    cut_off = asyncio.Event()

    async def hold(payload: object, lost: int, again: bool) -> JobOutcome:
        entered.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cut_off.set()
            raise
        return DONE

    await queue.enqueue([NodeJob("e1", "wf", 1, "a")])
    worker = SpaneWorker(
        hold,
        job_queue=queue,
        handle_signals=False,
        poll_delay=0.2,
        lease_seconds=1.0,
        shutdown_grace=LONG,  # not the reason it stops: it must not wait for this
    )
    async with running(worker) as task:
        await asyncio.wait_for(entered.wait(), LONG)
        with pytest.raises(WorkerStoppedError) as failure:
            await asyncio.wait_for(asyncio.shield(task), LONG)
    assert isinstance(failure.value.__cause__, RuntimeError)
    assert cut_off.is_set()
    assert any(
        r.levelno >= logging.ERROR and "stopping the worker" in r.getMessage()
        for r in caplog.records
    )
    # Released, not left running: back in the queue, and the next claim takes it again.
    stats = await queue.stats()
    assert (stats.queued, stats.running) == (1, 0)
    [again] = (await queue.claim("another", 1, lease_ms=30_000)).jobs
    assert again.again


async def test_an_engine_whose_worker_gave_up_still_stops_and_closes(
    make_engine: EngineFactory, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An in-process worker stopped by failing lease renewal: ``stop_workers`` and
    ``close`` log it and go on (they release every connection) instead of raising."""
    caplog.set_level(logging.WARNING)

    async def renew_broken(
        self: JobQueue, worker: str, jobs: Sequence[ClaimedJob], lease_ms: int
    ) -> list[str]:
        raise RuntimeError("a bug in the renewal")

    monkeypatch.setattr(JobQueue, "renew", renew_broken)
    entered = asyncio.Event()

    async def hold(ctx: ExecutionContext) -> None:
        entered.set()
        await asyncio.Event().wait()

    registry = NodeRegistry()
    registry.register("hold", hold)
    engine = await make_engine(registry, lease_seconds=1.0)
    await engine.register_workflow(workflow("held", node("a", "hold")))
    await engine.start_workers(1)
    await engine.enqueue_workflow("held")
    await asyncio.wait_for(entered.wait(), LONG)

    def gave_up() -> bool:
        return any("stopping the worker" in r.getMessage() for r in caplog.records)

    deadline = asyncio.get_running_loop().time() + LONG
    while not gave_up():
        assert asyncio.get_running_loop().time() < deadline, "the worker never gave up"
        await asyncio.sleep(0.05)
    await engine.stop_workers(grace_seconds=1.0)  # does not raise
    assert any("stopped with an error" in r.getMessage() for r in caplog.records)


def _side_task(name: str) -> asyncio.Task[Any]:
    [task] = [t for t in asyncio.all_tasks() if t.get_name() == f"spane-{name}"]
    return task


async def test_a_round_under_way_when_the_worker_stops_ends_first(queue: JobQueue) -> None:
    """A scheduler round cut off between its writes would leave a tick's execution without
    its entry jobs: a worker that stops lets the round end before its side tasks go."""
    entered = asyncio.Event()
    release = asyncio.Event()
    ended: list[str] = []

    async def round_() -> float:
        entered.set()
        await release.wait()
        ended.append("round")
        return 3600.0

    worker = SpaneWorker(
        never_called,
        job_queue=queue,
        handle_signals=False,
        poll_delay=0.2,
        shutdown_grace=LONG,
        periodic=[PeriodicTask("round", 3600.0, round_, first_delay=0.0)],
    )
    task = asyncio.create_task(worker.run())
    await asyncio.wait_for(entered.wait(), LONG)
    side = _side_task("round")
    stopping = asyncio.create_task(worker.stop(1.0))

    # The side task is asked to stop while its round waits: only then may the round end.
    async def asked() -> bool:
        return side.cancelling() > 0

    await wait_until(asked, timeout=LONG, what="the side task asked to stop")
    assert not stopping.done()  # the worker waits for the round
    release.set()
    await asyncio.wait_for(stopping, LONG)
    await asyncio.wait_for(task, LONG)
    assert ended == ["round"]


async def test_a_round_that_outlasts_the_shutdown_grace_is_cut_off(queue: JobQueue) -> None:
    cut: list[str] = []
    entered = asyncio.Event()

    async def stuck() -> float:
        entered.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cut.append("cut")
            raise
        return 0.0

    worker = SpaneWorker(
        never_called,
        job_queue=queue,
        handle_signals=False,
        poll_delay=0.2,
        shutdown_grace=0.2,
        periodic=[PeriodicTask("stuck", 3600.0, stuck, first_delay=0.0)],
    )
    task = asyncio.create_task(worker.run())
    await asyncio.wait_for(entered.wait(), LONG)
    await asyncio.wait_for(worker.stop(0.2), LONG)
    await asyncio.wait_for(task, LONG)
    assert cut == ["cut"]
