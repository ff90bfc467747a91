"""The queue alone, one lane against four: jobs/s of one worker draining a backlog.

    python benchmarks/queue_lanes.py [--jobs 20000] [--runs 5] [--concurrency 50]

No engine and no store: a ``JobQueue`` and one ``SpaneWorker`` whose handler does nothing
(returns ``DONE``). Each run enqueues ``--jobs`` jobs (1000 per ``enqueue`` call), then
starts the worker and times it until every job has run: "one lane", all in the default
lane, the worker serving it; "four lanes", spread round-robin over four lanes, one worker
serving all four (each claim merges the lanes by score), sent 1000 per call as before, so
that each lane's jobs of a call arrive together (runs of 250 in the merged order); "four,
mixed", sent one per call, rotating the lanes, so that the lanes alternate job by job (the
merge's worst case). The cases take turns, a fresh key prefix each run.
Printed per run and as medians: jobs/s of the drain, this process's CPU per job
(``time.process_time``: the worker and its Redis client), redis-server's (psutil) per job,
and the time redis-server spent in the queue's scripts per job (``INFO commandstats``:
``EVALSHA``; steadier than the CPU figures on a busy machine). Redis: a private
redis-server (the embedded one, unix socket), or ``--redis local``: ``$REDIS_URL`` and the
server listening on its port. Goal (issue 15): four lanes within 10% of one.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit

import psutil
from _common import machine

from spane_py.embedded import EmbeddedRedis
from spane_py.queue.client import JobQueue, connect
from spane_py.queue.jobs import DEFAULT_QUEUE, NodeJob
from spane_py.queue.outcomes import DONE, JobOutcome
from spane_py.queue.worker import SpaneWorker

FOUR = ("l0", "l1", "l2", "l3")
# name: (lanes, jobs per enqueue call)
CASES = {"one lane": ((DEFAULT_QUEUE,), 1000), "four lanes": (FOUR, 1000), "four, mixed": (FOUR, 1)}


@dataclass(frozen=True)
class Run:
    jobs_per_s: float
    process_us: float  # this process's CPU per job
    redis_us: float  # redis-server's CPU per job
    script_us: float  # redis-server's time in the scripts per job


def server_process(url: str, private: EmbeddedRedis | None) -> psutil.Process:
    if private is not None:
        assert private.pid is not None
        return psutil.Process(private.pid)
    port = urlsplit(url).port or 6379
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port and conn.pid:
            return psutil.Process(conn.pid)
    raise SystemExit(f"no process listens on port {port} (run as its user, or --redis private)")


def cpu_s(process: psutil.Process) -> float:
    t = process.cpu_times()
    return t.user + t.system


async def script_s(queue: JobQueue) -> float:
    found = await queue.redis.info("commandstats")
    return (
        sum(int(found[k]["usec"]) for k in ("cmdstat_evalsha", "cmdstat_eval") if k in found) / 1e6
    )


async def one_run(
    url: str, server: psutil.Process, lanes: tuple[str, ...], batch: int, n: int, c: int
) -> Run:
    prefix = f"benchlanes{uuid.uuid4().hex[:8]}"
    queue = JobQueue(connect(url, queue_name=f"{prefix}:queue"), prefix=prefix)
    try:
        jobs = [NodeJob(f"e{i}", "wf", 1, "a", queue=lanes[i % len(lanes)]) for i in range(n)]
        sent = [queue.enqueue(jobs[i : i + batch]) for i in range(0, n, batch)]
        for i in range(0, len(sent), 50):  # 50 calls at a time (the pool holds 64)
            await asyncio.gather(*sent[i : i + 50])
        ran = 0
        all_ran = asyncio.Event()

        async def handler(payload: object, lost: int, again: bool) -> JobOutcome:
            nonlocal ran
            ran += 1
            if ran == n:
                all_ran.set()
            return DONE

        worker = SpaneWorker(
            handler, job_queue=queue, concurrency=c, handle_signals=False, queues=lanes
        )
        script0 = await script_s(queue)
        cpu0, redis0, t0 = time.process_time(), cpu_s(server), time.perf_counter()
        task = asyncio.create_task(worker.run())
        await all_ran.wait()
        elapsed = time.perf_counter() - t0
        cpu, redis_cpu = time.process_time() - cpu0, cpu_s(server) - redis0
        scripts = await script_s(queue) - script0
        await worker.stop(5.0)
        await task
        stats = await queue.stats()
        assert (stats.queued, stats.running) == (0, 0), stats
        return Run(n / elapsed, cpu / n * 1e6, redis_cpu / n * 1e6, scripts / n * 1e6)
    finally:
        await queue.purge()
        await queue.redis.aclose(close_connection_pool=True)


async def main(args: argparse.Namespace) -> None:
    private: EmbeddedRedis | None = None
    if args.redis == "private":
        private = EmbeddedRedis()
        url = await private.astart()
    else:
        url = os.environ["REDIS_URL"]
    try:
        server = server_process(url, private)
        print(
            f"{args.jobs} jobs per run, {args.runs} runs per case in turns, one worker at "
            f"concurrency {args.concurrency}; {machine()}; load average "
            + " ".join(f"{x:.2f}" for x in os.getloadavg())
        )
        print("Redis: " + ("a private redis-server (embedded)" if private else "$REDIS_URL"))
        await one_run(url, server, (DEFAULT_QUEUE,), 1000, 2000, args.concurrency)  # warm-up
        runs: dict[str, list[Run]] = {case: [] for case in CASES}
        for i in range(args.runs):
            for case, (lanes, batch) in CASES.items():
                run = await one_run(url, server, lanes, batch, args.jobs, args.concurrency)
                runs[case].append(run)
                print(
                    f"  run {i + 1}, {case}: {run.jobs_per_s:,.0f} jobs/s; per job: process "
                    f"{run.process_us:.0f} us, Redis {run.redis_us:.1f} us (scripts "
                    f"{run.script_us:.1f} us)"
                )
        print()
        print("  median        | jobs/s | process us/job | Redis us/job | scripts us/job")
        medians = {}
        for case, found in runs.items():
            rate = statistics.median(r.jobs_per_s for r in found)
            medians[case] = rate
            print(
                f"  {case:<13} | {rate:>6,.0f} | "
                f"{statistics.median(r.process_us for r in found):>14.0f} | "
                f"{statistics.median(r.redis_us for r in found):>12.1f} | "
                f"{statistics.median(r.script_us for r in found):>14.1f}"
            )
        for case in ("four lanes", "four, mixed"):
            ratio = medians[case] / medians["one lane"]
            print(f"  {case} / one lane: {ratio:.1%} (goal: at least 90%)")
    finally:
        if private is not None:
            await asyncio.to_thread(private.stop)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument(
        "--redis",
        choices=["private", "local"],
        default="private",
        help="a private redis-server (default), or $REDIS_URL's on this machine",
    )
    asyncio.run(main(parser.parse_args()))
