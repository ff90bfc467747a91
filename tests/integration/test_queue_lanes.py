"""Lanes (named queues) on a real Redis, at the queue seam (no engine): ``JobQueue`` and
``SpaneWorker`` driven directly.

A job waits in the lane its ``queue`` names; a worker takes jobs only from its lanes, lowest
score first across them; scheduled, released and rescheduled jobs stay in their lane; a lost
worker's job becomes a suspect of its lane; idle workers are woken through their lanes' wake
lists; ``lane_stats`` counts per lane; workers beat with what they serve.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator

import orjson
import pytest
from arq.constants import in_progress_key_prefix, job_key_prefix

from spane_py.queue.client import Claim, ClaimedJob, JobQueue, connect
from spane_py.queue.jobs import (
    DEFAULT_QUEUE,
    DeadlineJob,
    NodeJob,
    check_queue_name,
    check_queue_names,
    priority_band,
)
from spane_py.queue.outcomes import DONE, JobOutcome
from spane_py.queue.presence import LIVE_WINDOW_S, LiveWorker, WorkerInfo, WorkerPresence
from spane_py.queue.scheduled import make_due
from spane_py.queue.stats import LaneStats
from spane_py.queue.worker import Handler, SpaneWorker
from tests.integration._support import named_url, wait_blocked, wait_until

LEASE_MS = 30_000


@contextlib.asynccontextmanager
async def open_queue(url: str, prefix: str) -> AsyncIterator[JobQueue]:
    q = JobQueue(connect(url, queue_name=f"{prefix}:queue"), prefix=prefix)
    try:
        yield q
    finally:
        await q.redis.aclose(close_connection_pool=True)


@pytest.fixture
async def queue(redis_url: str, key_prefix: str) -> AsyncIterator[JobQueue]:
    async with open_queue(redis_url, key_prefix) as q:
        try:
            yield q
        finally:
            await q.purge()


def jobs(n: int, lane: str = DEFAULT_QUEUE, execution: str | None = None) -> list[NodeJob]:
    name = execution if execution is not None else lane
    return [NodeJob(f"{name}{i}", "wf", 1, "a", queue=lane) for i in range(n)]


def ids(claim: Claim | list[ClaimedJob]) -> list[str]:
    found = claim.jobs if isinstance(claim, Claim) else claim
    return [j.job_id.rsplit(":", 3)[1] for j in found]


async def members(queue: JobQueue, key: str) -> list[str]:
    """The jobs in the sorted set ``key`` (not a running set's sentinel), in order."""
    found = await queue.redis.zrangebyscore(key, "-inf", "(inf")
    return [m.decode().rsplit(":", 3)[1] for m in found]


# Claiming ---------------------------------------------------------------------------------
async def test_jobs_of_a_lane_are_claimed_only_by_workers_of_that_lane(queue: JobQueue) -> None:
    assert await queue.enqueue([*jobs(2, "a"), *jobs(1)]) == 3  # mixed lanes, one call
    a = queue.lane("a")
    assert await members(queue, a.queue) == ["a0", "a1"]
    assert await members(queue, queue.keys.queue) == ["default0"]
    assert await queue.redis.smembers(queue.keys.queues) == {b"a"}

    assert (await queue.claim("wb", 10, lease_ms=LEASE_MS, queues=("b",))).jobs == []
    assert await members(queue, a.queue) == ["a0", "a1"]  # still there, untouched
    taken = await queue.claim("wa", 10, lease_ms=LEASE_MS, queues=["a"])
    assert ids(taken) == ["a0", "a1"]
    assert [j.queue for j in taken.jobs] == ["a", "a"]
    assert sorted(await members(queue, a.running)) == ["a0", "a1"]
    assert await queue.redis.zcard(queue.keys.running) == 0
    default = await queue.claim("w", 10, lease_ms=LEASE_MS)
    assert ids(default) == ["default0"]
    assert default.jobs[0].queue == DEFAULT_QUEUE

    for job in [*taken.jobs, *default.jobs]:
        await queue.finish(job)
    assert await queue.redis.zcount(a.running, "-inf", "(inf") == 0
    assert (await queue.stats()).running == 0


async def test_a_worker_of_several_lanes_takes_jobs_by_priority_then_arrival(
    queue: JobQueue,
) -> None:
    sent = [("a", 5), ("b", 5), (DEFAULT_QUEUE, 5), ("b", 9), ("a", 1), ("a", 9), ("b", 5)]
    for i, (lane, priority) in enumerate(sent):
        await queue.enqueue(
            [NodeJob(f"{lane}-p{priority}-{i}", "wf", 1, "a", queue=lane)], priority=priority
        )
    lanes = ("a", "b", DEFAULT_QUEUE)
    first = await queue.claim("w", 3, lease_ms=LEASE_MS, queues=lanes)
    assert ids(first) == ["b-p9-3", "a-p9-5", "a-p5-0"]
    assert [j.queue for j in first.jobs] == ["b", "a", "a"]
    rest = await queue.claim("w", 10, lease_ms=LEASE_MS, queues=lanes)
    assert ids(rest) == ["b-p5-1", "default-p5-2", "b-p5-6", "a-p1-4"]
    assert [j.queue for j in rest.jobs] == ["b", DEFAULT_QUEUE, "b", "a"]
    # Each job runs under its own lane's lease.
    for job in [*first.jobs, *rest.jobs]:
        assert await queue.redis.zscore(queue.lane(job.queue).running, job.job_id) is not None
    assert (await queue.stats()).queued == 0


@pytest.mark.parametrize("seed", range(4))
async def test_claims_across_lanes_follow_the_scores_whatever_their_mix(
    queue: JobQueue, seed: int
) -> None:
    """Runs of one lane, alternations, priorities, claims of every size: the jobs come out
    in the order of their scores across the lanes claimed, and no other lane is touched."""
    rng = random.Random(seed)
    lanes = ["a", "b", "c"]
    for i in range(300):
        lane = rng.choice(lanes) if rng.random() < 0.5 else lanes[i // 100]
        batch = [NodeJob(f"{lane}{i}-{k}", "wf", 1, "a", queue=lane) for k in range(3)]
        await queue.enqueue(batch[: rng.randint(1, 3)], priority=rng.choice([1, 5, 5, 9]))
    await queue.enqueue(jobs(20, "d"))
    served = ("c", "a", "b")
    expected: list[tuple[float, str]] = []
    for lane in served:
        found = await queue.redis.zrange(queue.lane(lane).queue, 0, -1, withscores=True)
        expected += [(score, member.decode()) for member, score in found]
    order = [job_id for _, job_id in sorted(expected)]
    taken: list[str] = []
    while True:
        want = rng.choice([1, 2, 7, 50, 120])
        claim = await queue.claim("w", want, lease_ms=LEASE_MS, queues=served)
        assert len(claim.jobs) <= want
        assert all(j.job_id.rsplit(":", 3)[1].startswith(j.queue) for j in claim.jobs)
        taken += [j.job_id for j in claim.jobs]
        if len(claim.jobs) < want:
            break
    assert taken == order
    assert (await queue.lane_stats())["d"].queued == 20


async def test_a_worker_of_two_lanes_runs_the_jobs_of_both(queue: JobQueue) -> None:
    seen: list[str] = []
    all_done = asyncio.Event()

    async def handler(payload: object, lost: int, again: bool) -> JobOutcome:
        assert isinstance(payload, dict)
        seen.append(payload["e"])
        if len(seen) == 4:
            all_done.set()
        return DONE

    await queue.enqueue([*jobs(2, "a"), *jobs(2, "b")])
    worker = SpaneWorker(
        handler, job_queue=queue, handle_signals=False, poll_delay=0.2, queues=["a", "b", "a"]
    )
    assert worker.queues == ("a", "b")
    async with running(worker):
        await asyncio.wait_for(all_done.wait(), 10)
    assert sorted(seen) == ["a0", "a1", "b0", "b1"]
    assert (await queue.stats()).queued == 0


# Scheduled, released, rescheduled ---------------------------------------------------------
async def test_a_scheduled_job_is_promoted_into_its_own_lane(queue: JobQueue) -> None:
    due = int(time.time() * 1000) + 60_000
    await queue.enqueue(jobs(1, "a"), due_ms=due, priority=7)
    assert await queue.redis.hget(queue.keys.bands, queue.job_id(jobs(1, "a")[0])) == (
        f"{priority_band(7)}:a".encode()
    )
    assert await make_due(queue, due) == 1
    # A worker of another lane promotes it (the scheduled set is shared), into lane a.
    other = await queue.claim("wb", 5, lease_ms=LEASE_MS, queues=("b",))
    assert other.jobs == []
    assert await members(queue, queue.lane("a").queue) == ["a0"]
    score = await queue.redis.zscore(queue.lane("a").queue, queue.job_id(jobs(1, "a")[0]))
    assert score is not None
    assert priority_band(7) <= score < priority_band(6)
    assert await queue.redis.hlen(queue.keys.bands) == 0
    assert ids(await queue.claim("wa", 5, lease_ms=LEASE_MS, queues=("a",))) == ["a0"]


async def test_an_entry_of_the_bands_without_a_lane_promotes_to_the_default_lane(
    queue: JobQueue,
) -> None:
    """Jobs scheduled by a version before lanes: their band alone in ``P:bands``."""
    [old] = jobs(1, execution="old")
    [new] = jobs(1, "a", execution="new")
    await queue.enqueue([old], due_ms=int(time.time() * 1000) + 60_000, priority=9)
    await queue.enqueue([new], due_ms=int(time.time() * 1000) + 60_000, priority=9)
    assert await queue.redis.hget(queue.keys.bands, queue.job_id(old)) == (
        str(priority_band(9)).encode()
    )
    await make_due(queue, int(time.time() * 1000) + 60_000)
    assert ids(await queue.claim("w", 5, lease_ms=LEASE_MS)) == ["old0"]
    assert ids(await queue.claim("wa", 5, lease_ms=LEASE_MS, queues=("a",))) == ["new0"]


async def test_release_reschedule_and_renew_keep_a_job_in_its_lane(queue: JobQueue) -> None:
    a = queue.lane("a")
    await queue.enqueue([*jobs(1, "a"), *jobs(1, "b")])
    [job] = (await queue.claim("w", 1, lease_ms=1000, queues=("a",))).jobs
    before = await queue.redis.zscore(a.running, job.job_id)
    assert await queue.renew("w", [job], LEASE_MS) == []
    after = await queue.redis.zscore(a.running, job.job_id)
    assert before is not None
    assert after is not None
    assert after > before + 20_000

    await queue.release(job)
    assert await queue.redis.zscore(a.queue, job.job_id) == 0  # first in line, in lane a
    assert (await queue.claim("w", 5, lease_ms=LEASE_MS)).jobs == []  # default: nothing
    [job] = (await queue.claim("w", 1, lease_ms=LEASE_MS, queues=("b", "a"))).jobs
    assert (ids([job]), job.queue, job.again) == (["a0"], "a", True)  # before b0: released

    await queue.reschedule(job, due_ms=0, priority=None)
    assert (await queue.claim("w", 5, lease_ms=LEASE_MS, queues=("c",))).jobs == []
    assert await members(queue, a.queue) == ["a0"]  # promoted back into lane a
    [job] = (await queue.claim("w", 5, lease_ms=LEASE_MS, queues=("a",))).jobs
    assert job.queue == "a"
    await queue.finish(job)
    assert not await queue.redis.exists(job_key_prefix + job.job_id)


async def test_remove_takes_jobs_out_of_whichever_lane_holds_them(queue: JobQueue) -> None:
    deadline = DeadlineJob("e", "wf", 1, queue="b")
    later = int(time.time() * 1000) + 60_000
    await queue.enqueue([*jobs(2, "a"), *jobs(1)])
    await queue.enqueue([deadline], due_ms=later)
    await queue.remove([queue.job_id(j) for j in [*jobs(1, "a"), *jobs(1), deadline]])
    assert await queue.stats() == (await queue.stats()).__class__(1, 0, 0)
    assert await members(queue, queue.lane("a").queue) == ["a1"]


async def test_enqueue_soon_routes_mixed_lanes_in_one_call(queue: JobQueue) -> None:
    await queue.enqueue_batched([*jobs(1, "a"), *jobs(2, "b"), *jobs(1)], priority=None)
    lanes = await queue.lane_stats()
    assert {name: s.queued for name, s in lanes.items()} == {DEFAULT_QUEUE: 1, "a": 1, "b": 2}


# Lost workers: suspects and drains per lane -----------------------------------------------
async def test_a_lost_workers_job_becomes_a_suspect_of_its_lane(queue: JobQueue) -> None:
    a = queue.lane("a")
    await queue.enqueue([*jobs(2, "a"), *jobs(2, "b")])
    [lost] = (await queue.claim("dead", 1, lease_ms=LEASE_MS, queues=("a",))).jobs
    await queue.redis.zadd(a.running, {lost.job_id: 0})  # its lease ran out

    # A worker of lane b neither reaps it nor runs it, idle or busy, nor drains for it.
    busy_b = await queue.claim("wb", 1, lease_ms=LEASE_MS, queues=("b",))
    assert (busy_b.reaped, busy_b.drain, ids(busy_b)) == (0, False, ["b0"])
    idle_b = await queue.claim("wb2", 1, lease_ms=LEASE_MS, idle=True, queues=("b",))
    assert (idle_b.reaped, ids(idle_b), idle_b.jobs[0].solo) == (0, ["b1"], False)
    assert await queue.redis.zscore(a.running, lost.job_id) == 0

    # A busy worker of lane a finds it and is chosen to drain (lane a's turn).
    busy_a = await queue.claim("wa", 1, lease_ms=LEASE_MS, queues=("a",))
    assert (busy_a.reaped, busy_a.drain, busy_a.jobs) == (1, True, [])
    assert await members(queue, a.suspects) == ["a0"]
    assert await queue.redis.get(a.drain) == b"wa"
    assert not await queue.redis.exists(queue.keys.drain, queue.keys.suspects)
    assert (await queue.lane_stats())["a"].queued == 2  # the suspect and a1

    # An idle worker of lanes [b, a] runs it, alone.
    solo = await queue.claim("wab", 5, lease_ms=LEASE_MS, idle=True, queues=("b", "a"))
    assert [(j.solo, j.queue, j.token) for j in solo.jobs] == [(True, "a", "wab|solo")]
    assert ids(solo) == ["a0"]
    assert await queue.redis.zscore(a.running, lost.job_id) is not None
    await queue.release(solo.jobs[0])  # cut off by a shutdown: a suspect again, of lane a
    assert await members(queue, a.suspects) == ["a0"]
    again = await queue.claim("wab", 5, lease_ms=LEASE_MS, idle=True, queues=("b", "a"))
    assert [(j.solo, j.queue) for j in again.jobs] == [(True, "a")]
    await queue.finish(again.jobs[0])
    # The suspects gone, the draining worker goes back to work, and gives up its turn.
    back = await queue.claim("wa", 1, lease_ms=LEASE_MS, draining=True, queues=("a",))
    assert (back.drain, ids(back)) == (False, ["a1"])
    assert not await queue.redis.exists(a.drain)


async def test_a_suspect_runs_alone_on_a_worker_of_its_lane_only(queue: JobQueue) -> None:
    a = queue.lane("a")
    await queue.enqueue(jobs(1, "a"))
    [lost] = (await queue.claim("dead", 1, lease_ms=LEASE_MS, queues=("a",))).jobs
    await queue.redis.zadd(a.running, {lost.job_id: 0})
    await queue.enqueue(jobs(1, "b"))
    ran: list[tuple[str, str, bool]] = []
    done = {lane: asyncio.Event() for lane in ("a", "b")}

    def recorder(lane: str) -> Handler:
        async def handle(payload: object, lost: int, again: bool) -> JobOutcome:
            assert isinstance(payload, dict)
            ran.append((lane, payload["e"], again))
            done[lane].set()
            return DONE

        return handle

    worker_b = SpaneWorker(
        recorder("b"), job_queue=queue, handle_signals=False, poll_delay=0.05, queues=["b"]
    )
    async with running(worker_b):
        # Its first claim was idle: a suspect of its lanes would have come before b0.
        await asyncio.wait_for(done["b"].wait(), 10)
        assert await queue.redis.zscore(a.running, lost.job_id) == 0  # not even reaped
        worker_a = SpaneWorker(
            recorder("a"), job_queue=queue, handle_signals=False, poll_delay=0.05, queues=["a"]
        )
        async with running(worker_a):
            await asyncio.wait_for(done["a"].wait(), 10)
    assert ran == [("b", "b0", False), ("a", "a0", True)]


@contextlib.asynccontextmanager
async def running(worker: SpaneWorker) -> AsyncIterator[asyncio.Task[None]]:
    """Run ``worker`` for the block; stop it afterwards."""
    task = asyncio.create_task(worker.run())
    try:
        yield task
    finally:
        await worker.stop(1.0)
        with contextlib.suppress(BaseException):
            await task


# Wake lists -------------------------------------------------------------------------------
async def test_an_enqueue_to_a_lane_wakes_an_idle_worker_of_that_lane(
    queue: JobQueue, redis_url: str, key_prefix: str
) -> None:
    """Each worker has its own connection (no in-process wake-up is shared with the
    producer) and polls every minute: only its lane's wake list explains a quick start."""
    ran: dict[str, list[str]] = {"a": [], "b": []}
    done = asyncio.Event()

    def handler(name: str) -> Handler:
        async def handle(payload: object, lost: int, again: bool) -> JobOutcome:
            assert isinstance(payload, dict)
            ran[name].append(payload["e"])
            done.set()
            return DONE

        return handle

    names = {lane: f"spane-lane-{lane}-{key_prefix}" for lane in ("a", "b")}
    async with contextlib.AsyncExitStack() as stack:
        for lane, name in names.items():
            own = await stack.enter_async_context(
                open_queue(named_url(redis_url, name), key_prefix)
            )
            worker = SpaneWorker(
                handler(lane), job_queue=own, handle_signals=False, poll_delay=60, queues=[lane]
            )
            await stack.enter_async_context(running(worker))
        for name in names.values():
            await wait_blocked(redis_url, name)
        started = time.monotonic()
        await queue.enqueue(jobs(1, "a"))
        await asyncio.wait_for(done.wait(), 10)
        assert time.monotonic() - started < 5  # far below the poll delay
        # The job is done, by the worker of lane a; the worker of lane b is still blocked,
        # its wake list untouched.
        await wait_until(lambda: _lane_is_empty(queue, "a"), what="lane a to be empty")
        await wait_blocked(redis_url, names["b"])
        assert await queue.redis.llen(queue.lane("b").wake) == 0
    assert ran == {"a": ["a0"], "b": []}


async def _lane_is_empty(queue: JobQueue, lane: str) -> bool:
    found = (await queue.lane_stats())[lane]
    return found.queued == 0 and found.running == 0


async def test_a_script_leaving_jobs_pending_pushes_tokens_to_their_lanes_wake_lists(
    queue: JobQueue,
) -> None:
    await queue.enqueue([*jobs(2, "a"), *jobs(1)])
    assert await queue.redis.llen(queue.lane("a").wake) == 2
    assert await queue.redis.llen(queue.keys.wake) == 1
    assert await queue.redis.llen(queue.lane("b").wake) == 0


# Counts -----------------------------------------------------------------------------------
async def test_lane_stats_count_each_lane_and_age_its_oldest_pending_job(
    queue: JobQueue,
) -> None:
    assert await queue.lane_stats() == {DEFAULT_QUEUE: LaneStats(0, 0, None)}
    await queue.enqueue(jobs(2))
    await queue.enqueue([NodeJob("hi", "wf", 1, "a", queue="a")], priority=9)
    [old] = [NodeJob("old", "wf", 1, "a", queue="a")]
    await queue.enqueue([old], priority=1)  # taken last: in the last band
    await queue.enqueue(jobs(1, "b"))
    await queue.claim("wb", 1, lease_ms=LEASE_MS, queues=("b",))
    await queue.enqueue(jobs(1, "c"), due_ms=int(time.time() * 1000) + 60_000)
    # ``old`` was enqueued a minute ago (its record says so).
    key = job_key_prefix + queue.job_id(old)
    record = orjson.loads(await queue.redis.get(key))
    record["et"] -= 60_000
    await queue.redis.set(key, orjson.dumps(record))

    lanes = await queue.lane_stats()
    assert list(lanes) == [DEFAULT_QUEUE, "a", "b", "c"]  # the default first, then by name
    assert (lanes["a"].queued, lanes["a"].running) == (2, 0)
    assert lanes["a"].oldest_waiting_s is not None
    assert 59 < lanes["a"].oldest_waiting_s < 90
    default = lanes[DEFAULT_QUEUE]
    assert (default.queued, default.running) == (2, 0)
    assert default.oldest_waiting_s is not None
    assert 0 <= default.oldest_waiting_s < 30
    assert lanes["b"] == LaneStats(queued=0, running=1, oldest_waiting_s=None)
    assert lanes["c"] == LaneStats(queued=0, running=0, oldest_waiting_s=None)  # scheduled
    stats = await queue.stats()
    assert (stats.queued, stats.scheduled, stats.running) == (4, 1, 1)


# Presence ---------------------------------------------------------------------------------
async def test_a_beat_carries_the_workers_info_and_leaving_removes_it(queue: JobQueue) -> None:
    presence = WorkerPresence(queue.redis, prefix=queue.prefix)
    info = WorkerInfo(("gpu", "default"), 4, "host-1", 1234, 1_700_000_000.5, 2)
    await presence.beat("w1", info)
    await presence.beat("w0")  # an older version: no info
    live = {w.worker_id: w for w in await presence.live()}
    assert live["w0"] == LiveWorker("w0", live["w0"].seconds_since_beat)
    w1 = live["w1"]
    assert (w1.queues, w1.concurrency, w1.host, w1.pid, w1.started_at, w1.running) == (
        ("gpu", "default"),
        4,
        "host-1",
        1234,
        1_700_000_000.5,
        2,
    )
    await presence.leave("w1")
    assert [w.worker_id for w in await presence.live()] == ["w0"]
    assert not await queue.redis.hexists(presence.info_key, "w1")


async def test_the_info_of_a_worker_that_aged_out_goes_with_it(queue: JobQueue) -> None:
    presence = WorkerPresence(queue.redis, prefix=queue.prefix)
    await presence.beat("gone", WorkerInfo(("a",), 1, "h", 1, 0.0, 0))
    await queue.redis.zadd(presence.key, {"gone": 1})  # beat long ago
    await queue.redis.hset(presence.info_key, "bad", b"not json")
    await queue.redis.zadd(presence.key, {"bad": (await queue.redis.time())[0] * 1000})
    live = await presence.live()
    assert live == [LiveWorker("bad", live[0].seconds_since_beat)]  # unreadable info: none
    assert not await queue.redis.hexists(presence.info_key, "gone")
    assert LIVE_WINDOW_S > 0


async def test_a_worker_beats_with_its_queues_and_concurrency(queue: JobQueue) -> None:
    presence = WorkerPresence(queue.redis, prefix=queue.prefix)

    async def never(payload: object, lost: int, again: bool) -> JobOutcome:
        raise AssertionError("no job was enqueued")

    worker = SpaneWorker(
        never,
        job_queue=queue,
        handle_signals=False,
        concurrency=3,
        presence=presence,
        queues=["gpu", DEFAULT_QUEUE],
    )

    async def beat() -> bool:
        return any(w.worker_id == worker.worker_id for w in await presence.live())

    async with running(worker):
        await wait_until(beat, what="the worker's beat")
        [me] = await presence.live()
        assert (me.queues, me.concurrency, me.running) == (("gpu", DEFAULT_QUEUE), 3, 0)
        assert me.pid > 0
        assert me.host
        assert abs(me.started_at - time.time()) < 60
    assert await presence.live() == []
    assert not await queue.redis.exists(presence.info_key)


# Names ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "bad", ["", "-gpu", ".gpu", "a b", "a:b", "gpu/1", "é", "x" * 65, None, 3, b"gpu"]
)
def test_a_bad_queue_name_is_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="queue name"):
        check_queue_name(bad)


def test_good_queue_names_pass_and_a_workers_list_is_deduplicated() -> None:
    for good in ["a", "gpu", "GPU-2", "x" * 64, "0.high_mem", DEFAULT_QUEUE]:
        assert check_queue_name(good) == good
    assert check_queue_names(["gpu", "cpu", "gpu"]) == ("gpu", "cpu")
    with pytest.raises(ValueError, match="at least one"):
        check_queue_names([])
    with pytest.raises(ValueError, match="list of queue names"):
        check_queue_names("gpu")


async def test_bad_lanes_are_refused_before_anything_is_sent(queue: JobQueue) -> None:
    with pytest.raises(ValueError, match="queue name"):
        await queue.enqueue([NodeJob("e", "wf", 1, "a", queue="a:b")])
    with pytest.raises(ValueError, match="queue name"):
        await queue.claim("w", 1, lease_ms=LEASE_MS, queues=("a b",))
    with pytest.raises(ValueError, match="at least one"):
        SpaneWorker(_never, job_queue=queue, handle_signals=False, queues=[])
    assert (await queue.stats()).queued == 0
    assert not await queue.redis.exists(in_progress_key_prefix + "x")


async def _never(payload: object, lost: int, again: bool) -> JobOutcome:
    raise AssertionError("not called")
