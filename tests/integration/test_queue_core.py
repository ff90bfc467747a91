"""The queue seam on a real Redis (no engine): claim, renew, finish, release, reschedule.

Pending and running jobs live apart, so claiming never looks at running jobs; a lease runs
out into a suspect, which runs alone; only losses during solo runs count; every end of a
delivery acts only for the job's owner.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from arq.constants import in_progress_key_prefix, job_key_prefix
from arq.jobs import Job, JobStatus

from spane_py.queue.client import Claim, ClaimedJob, JobQueue, connect
from spane_py.queue.jobs import FUNCTION_NAME, NodeJob, decode_record
from spane_py.queue.outcomes import Release, Reschedule

LEASE_MS = 30_000


@pytest.fixture
async def queue(redis_url: str, key_prefix: str) -> AsyncIterator[JobQueue]:
    q = JobQueue(connect(redis_url, queue_name=f"{key_prefix}:queue"), prefix=key_prefix)
    try:
        yield q
    finally:
        await q.purge()
        await q.redis.aclose(close_connection_pool=True)


def jobs(n: int, execution: str = "e", start: int = 0) -> list[NodeJob]:
    return [NodeJob(f"{execution}{i}", "wf", 1, "a") for i in range(start, start + n)]


def ids(claim: Claim | list[ClaimedJob]) -> list[str]:
    found = claim.jobs if isinstance(claim, Claim) else claim
    return [j.job_id.rsplit(":", 3)[1] for j in found]


async def expire(queue: JobQueue, claimed: list[ClaimedJob]) -> None:
    """Make the leases of ``claimed`` run out now (as if their worker had died)."""
    await queue.redis.zadd(queue.keys.running, {j.job_id: 0 for j in claimed})


async def test_claim_takes_pending_jobs_only_whatever_is_running(queue: JobQueue) -> None:
    assert await queue.enqueue(jobs(2500)) == 2500
    busy = await queue.claim("busy", 2500, lease_ms=LEASE_MS)
    assert len(busy.jobs) == 2500
    # Jobs of one enqueue share a score (its time): their order among them is the ids'.
    assert sorted(decode_record(j.data or b"")["e"] for j in busy.jobs) == sorted(
        j.execution_id for j in jobs(2500)
    )
    assert await queue.stats() == (await queue.stats()).__class__(0, 0, 2500)
    # 2,500 jobs run; new work is found at once, by another worker too (no scan, no cap).
    await queue.enqueue(jobs(3, "new"))
    assert ids(await queue.claim("idle", 10, lease_ms=LEASE_MS)) == ["new0", "new1", "new2"]
    assert ids(await queue.claim("busy", 10, lease_ms=LEASE_MS)) == []
    stats = await queue.stats()
    assert (stats.queued, stats.scheduled, stats.running) == (0, 0, 2503)


async def test_an_enqueue_of_a_job_still_queued_or_running_is_a_no_op(queue: JobQueue) -> None:
    assert await queue.enqueue(jobs(2)) == 2
    assert await queue.enqueue(jobs(2)) == 0
    [first, _] = (await queue.claim("w", 2, lease_ms=LEASE_MS)).jobs
    assert await queue.enqueue(jobs(1)) == 0  # running
    await queue.finish(first)
    assert await queue.enqueue(jobs(1)) == 1  # done: a deliberate re-send is a new job


async def test_priority_then_arrival_order(queue: JobQueue) -> None:
    for i, priority in enumerate([1, 5, 10, 3, 8]):
        await queue.enqueue([NodeJob(f"p{priority}", "wf", 1, "a")], priority=priority)
        await asyncio.sleep(0.002)  # arrival order is by the millisecond
        await queue.enqueue([NodeJob(f"d{i}", "wf", 1, "a")])  # default priority 5
        await asyncio.sleep(0.002)
    order = ids(await queue.claim("w", 10, lease_ms=LEASE_MS))
    assert order == ["p10", "p8", "d0", "p5", "d1", "d2", "d3", "d4", "p3", "p1"]


async def test_a_scheduled_job_is_claimed_once_due(queue: JobQueue) -> None:
    due = int(time.time() * 1000) + 300
    await queue.enqueue(jobs(1), due_ms=due, priority=7)
    claim = await queue.claim("w", 5, lease_ms=LEASE_MS)
    assert claim.jobs == []
    assert claim.next_due == due
    assert (await queue.stats()).scheduled == 1
    await asyncio.sleep(max(due / 1000 - time.time(), 0) + 0.01)
    claim = await queue.claim("w", 5, lease_ms=LEASE_MS)
    assert ids(claim) == ["e0"]
    assert claim.next_due is None


async def test_renew_extends_the_leases_of_owned_jobs_and_names_the_rest(
    queue: JobQueue,
) -> None:
    await queue.enqueue(jobs(3))
    mine = (await queue.claim("w1", 3, lease_ms=1000)).jobs
    before = {j.job_id: await queue.redis.zscore(queue.keys.running, j.job_id) for j in mine}
    await expire(queue, mine[:1])
    taken = await queue.claim("w2", 3, lease_ms=LEASE_MS, idle=True)  # takes the lost one
    assert ids(taken) == ["e0"]
    await asyncio.sleep(0.01)
    gone = await queue.renew("w1", mine, 60_000)
    assert gone == [mine[0].job_id]
    for job in mine[1:]:
        score = await queue.redis.zscore(queue.keys.running, job.job_id)
        assert score is not None
        assert score > (before[job.job_id] or 0) + 50_000
    # w2's lease of the lost job was left alone by w1's renewal.
    assert await queue.redis.get(in_progress_key_prefix + mine[0].job_id) == b"w2|solo"


async def test_ends_of_a_delivery_act_only_for_its_owner(queue: JobQueue) -> None:
    await queue.enqueue(jobs(1))
    [job] = (await queue.claim("w1", 1, lease_ms=LEASE_MS)).jobs
    stranger = ClaimedJob(job.job_id, job.data, token="w2")
    await queue.finish(stranger)
    await queue.release(stranger)
    await queue.reschedule(stranger, due_ms=int(time.time() * 1000), priority=None)
    stats = await queue.stats()
    assert (stats.queued, stats.scheduled, stats.running) == (0, 0, 1)
    await queue.finish(job)
    stats = await queue.stats()
    assert (stats.queued, stats.scheduled, stats.running) == (0, 0, 0)
    assert not await queue.redis.exists(job_key_prefix + job.job_id)
    assert not await queue.redis.exists(in_progress_key_prefix + job.job_id)


async def test_release_puts_a_job_back_first_in_line(queue: JobQueue) -> None:
    await queue.enqueue(jobs(3))
    [first, *_] = (await queue.claim("w", 1, lease_ms=LEASE_MS)).jobs
    await queue.settle(first, Release())
    assert ids(await queue.claim("w", 3, lease_ms=LEASE_MS)) == ["e0", "e1", "e2"]


async def test_reschedule_moves_a_running_job_to_the_scheduled_set(queue: JobQueue) -> None:
    await queue.enqueue(jobs(1))
    [job] = (await queue.claim("w", 1, lease_ms=LEASE_MS)).jobs
    due = int(time.time() * 1000) + 200
    await queue.settle(job, Reschedule(due, priority=9))
    stats = await queue.stats()
    assert (stats.queued, stats.scheduled, stats.running) == (0, 1, 0)
    claim = await queue.claim("w", 1, lease_ms=LEASE_MS)
    assert (claim.jobs, claim.next_due) == ([], due)
    await asyncio.sleep(max(due / 1000 - time.time(), 0) + 0.01)
    assert ids(await queue.claim("w", 1, lease_ms=LEASE_MS)) == ["e0"]


async def test_a_lost_job_becomes_a_suspect_that_runs_alone(queue: JobQueue) -> None:
    await queue.enqueue(jobs(5))
    lost = (await queue.claim("dead", 3, lease_ms=LEASE_MS)).jobs
    await expire(queue, lost)
    # A busy worker finds the lost jobs and is chosen to drain: it takes nothing more,
    # though e3 and e4 are pending.
    await queue.enqueue(jobs(1, "busy"))
    await queue.claim("busy", 0, lease_ms=LEASE_MS)  # busy0 claimed below as its work
    busy = await queue.claim("busy", 5, lease_ms=LEASE_MS)
    assert busy.reaped == 0
    assert busy.drain
    assert busy.jobs == []
    assert (await queue.stats()).queued == 3 + 2 + 1
    # Another busy worker is not asked to drain too: it carries on with pending work.
    other = await queue.claim("other", 1, lease_ms=LEASE_MS)
    assert not other.drain
    assert ids(other) == ["e3"]
    # An idle worker takes one suspect, and only that one.
    solo = await queue.claim("idle", 5, lease_ms=LEASE_MS, idle=True)
    assert [(j.solo, j.lost, j.token) for j in solo.jobs] == [(True, 0, "idle|solo")]
    assert ids(solo) == ["e0"]
    # Done: the next suspects go to idle workers (or to the draining one once idle).
    await queue.finish(solo.jobs[0])
    assert ids(await queue.claim("busy", 5, lease_ms=LEASE_MS, idle=True)) == ["e1"]


async def test_only_losses_during_solo_runs_count(queue: JobQueue) -> None:
    await queue.enqueue(jobs(2))
    both = (await queue.claim("w1", 2, lease_ms=LEASE_MS)).jobs
    await expire(queue, both)  # lost together: suspects, not counted
    first = await queue.claim("w2", 1, lease_ms=LEASE_MS, idle=True)
    assert first.reaped == 2
    assert [(j.lost, j.solo) for j in first.jobs] == [(0, True)]
    await asyncio.sleep(0.002)  # suspects are taken in the order they were found
    await expire(queue, first.jobs)  # lost while alone: counted
    again = await queue.claim("w3", 1, lease_ms=LEASE_MS, idle=True)
    # The other suspect was first in line; the counted one comes next, lost once.
    assert ids(again) == ["e1"]
    assert again.jobs[0].lost == 0
    await queue.finish(again.jobs[0])
    third = await queue.claim("w3", 1, lease_ms=LEASE_MS, idle=True)
    assert ids(third) == ["e0"]
    assert third.jobs[0].lost == 1
    # A release (a shutdown cut it off) keeps it a suspect, its count kept.
    await queue.release(third.jobs[0])
    assert ids(await queue.claim("w4", 1, lease_ms=LEASE_MS)) == []  # busy: not for it
    fourth = await queue.claim("w4", 1, lease_ms=LEASE_MS, idle=True)
    assert [(j.lost, j.solo) for j in fourth.jobs] == [(1, True)]
    # Ending on its own (done or rescheduled) clears it: it runs with others again.
    await queue.reschedule(fourth.jobs[0], due_ms=0, priority=None)
    fifth = await queue.claim("w5", 1, lease_ms=LEASE_MS)
    assert [(j.lost, j.solo) for j in fifth.jobs] == [(0, False)]
    assert await queue.redis.hlen(queue.keys.lost) == 0


async def test_a_draining_worker_goes_back_to_work_once_the_suspects_are_taken(
    queue: JobQueue,
) -> None:
    await queue.enqueue(jobs(3))
    lost = (await queue.claim("dead", 1, lease_ms=LEASE_MS)).jobs
    await expire(queue, lost)
    assert (await queue.claim("busy", 1, lease_ms=LEASE_MS)).drain
    assert ids(await queue.claim("idle", 1, lease_ms=LEASE_MS, idle=True)) == ["e0"]
    again = await queue.claim("busy", 1, lease_ms=LEASE_MS, draining=True)
    assert not again.drain
    assert ids(again) == ["e1"]
    assert not await queue.redis.exists(queue.keys.drain)


async def test_remove_takes_jobs_that_have_not_started(queue: JobQueue) -> None:
    await queue.enqueue(jobs(2))
    await queue.enqueue(jobs(1, "later"), due_ms=int(time.time() * 1000) + 60_000)
    await queue.remove([j.job_id(queue.prefix) for j in jobs(1) + jobs(1, "later")])
    stats = await queue.stats()
    assert (stats.queued, stats.scheduled) == (1, 0)
    assert ids(await queue.claim("w", 5, lease_ms=LEASE_MS)) == ["e1"]


async def test_arq_reads_a_jobs_record_and_sees_it_in_progress(queue: JobQueue) -> None:
    [node_job] = jobs(1)
    await queue.enqueue([node_job])
    job = Job(
        queue.job_id(node_job),
        queue.redis,
        _queue_name=queue.keys.queue,
        _deserializer=queue.redis.job_deserializer,
    )
    info = await job.info()
    assert info is not None
    assert info.function == FUNCTION_NAME
    assert info.args == (node_job.payload(),) or list(info.args) == [node_job.payload()]
    [claimed] = (await queue.claim("w", 1, lease_ms=LEASE_MS)).jobs
    assert await job.status() == JobStatus.in_progress
    await queue.finish(claimed)
    assert await job.status() == JobStatus.not_found


async def test_a_claim_says_which_jobs_were_delivered_before(queue: JobQueue) -> None:
    await queue.enqueue(jobs(4))
    claimed = (await queue.claim("w", 4, lease_ms=LEASE_MS)).jobs
    assert [j.again for j in claimed] == [False] * 4
    done, released, later, lost = claimed
    await queue.finish(done)
    await queue.settle(released, Release())
    await queue.settle(later, Reschedule(0, priority=None))
    await expire(queue, [lost])
    solo = (await queue.claim("idle", 1, lease_ms=LEASE_MS, idle=True)).jobs
    assert ids(solo) == ["e3"]
    assert [j.again for j in solo] == [True]
    again = (await queue.claim("w", 4, lease_ms=LEASE_MS)).jobs
    assert sorted(ids(again)) == ["e1", "e2"]
    assert [j.again for j in again] == [True, True]
    # Done, a job is forgotten: sent again later, its next delivery is a first one.
    for job in [*again, *solo]:
        await queue.finish(job)
    await queue.enqueue(jobs(4))
    fresh = (await queue.claim("w", 4, lease_ms=LEASE_MS)).jobs
    assert sorted(ids(fresh)) == ["e0", "e1", "e2", "e3"]
    assert [j.again for j in fresh] == [False] * 4


async def test_a_claim_answers_the_control_epoch(queue: JobQueue) -> None:
    await queue.enqueue(jobs(2))
    first = await queue.claim("w", 1, lease_ms=LEASE_MS)
    seen = queue.control_seen_at
    assert queue.control_epoch == first.epoch
    assert (await queue.claim("w", 0, lease_ms=LEASE_MS)).epoch == first.epoch
    assert queue.control_seen_at == seen  # unchanged: what was learned since still counts
    await queue.bump_control_epoch()
    bumped = await queue.claim("w", 0, lease_ms=LEASE_MS)
    assert bumped.epoch == first.epoch + 1
    assert queue.control_seen_at > seen
