"""CPU used by an idle worker process.

    python benchmarks/idle.py [--seconds 20]

Starts a worker process (concurrency 10, default poll_delay 0.5 s) with nothing to do,
waits for it to settle, then reads its CPU time from /proc over ``--seconds``. Goal
(issue 2): under 2% of one core. Linux only.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import textwrap
import time

from _common import machine, redis_kind

WORKER = textwrap.dedent(
    """
    import asyncio, sys, uuid
    from spane_py import NodeRegistry, WorkflowEngine

    async def main():
        registry = NodeRegistry()
        async def noop(ctx):
            return None
        registry.register("noop", noop)
        engine = WorkflowEngine(registry, key_prefix="idle" + uuid.uuid4().hex[:8])
        await engine.start()
        print("ready", flush=True)
        await engine.run_worker(10)

    asyncio.run(main())
    """
)


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime + stime


def main(seconds: float) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", WORKER], stdout=subprocess.PIPE, text=True, env=os.environ.copy()
    )
    try:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            raise SystemExit("the worker did not start")
        time.sleep(3)  # let start-up work finish
        before, t0 = cpu_seconds(proc.pid), time.monotonic()
        time.sleep(seconds)
        used, wall = cpu_seconds(proc.pid) - before, time.monotonic() - t0
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    print(f"idle worker over {wall:.0f} s, {machine()}, {redis_kind()}")
    print(f"  CPU: {used:.2f} s = {100 * used / wall:.2f}% of one core")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=20.0)
    main(parser.parse_args().seconds)
