"""The side-task supervisor on its own (no Redis): restarts, backoff resets, giving up."""

from __future__ import annotations

import asyncio
import logging

import pytest

from spane_py.errors import WorkerStoppedError
from spane_py.queue.supervisor import SideTask, Supervised, Supervisor

LONG = 10.0  # seconds: a generous bound for what should take milliseconds


async def test_an_ordinary_task_is_restarted_and_a_good_round_resets_its_backoff(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="spane_py.worker")
    seen: list[int] = []  # ``failures`` at each start
    settled = asyncio.Event()

    async def body(supervised: Supervised) -> None:
        seen.append(supervised.failures)
        if len(seen) == 3:
            supervised.succeeded()
        if len(seen) <= 3:
            raise ValueError(f"round {len(seen)}")
        settled.set()
        await asyncio.Event().wait()

    fatal: list[WorkerStoppedError] = []
    supervisor = Supervisor([SideTask("flaky", body)], on_fatal=fatal.append, backoff_base=0.01)
    supervisor.start()
    try:
        await asyncio.wait_for(settled.wait(), LONG)
    finally:
        await supervisor.close()
    assert seen == [0, 1, 2, 1]
    assert fatal == []
    logged = [r for r in caplog.records if "side task flaky failed" in r.getMessage()]
    assert len(logged) == 3
    assert all(r.exc_info is not None for r in logged)


async def test_a_critical_task_is_restarted_at_once_then_given_up() -> None:
    starts = 0
    gave_up = asyncio.Event()
    fatal: list[WorkerStoppedError] = []

    async def body(supervised: Supervised) -> None:
        nonlocal starts
        starts += 1
        raise RuntimeError("broken")

    def on_fatal(failure: WorkerStoppedError) -> None:
        fatal.append(failure)
        gave_up.set()

    # A backoff that long would time the test out: a critical task has none.
    supervisor = Supervisor(
        [SideTask("leases", body, critical=True, window=LONG)],
        on_fatal=on_fatal,
        backoff_base=LONG * 10,
    )
    supervisor.start()
    try:
        await asyncio.wait_for(gave_up.wait(), LONG)
    finally:
        await supervisor.close()
    assert starts == 3
    [failure] = fatal
    assert isinstance(failure.__cause__, RuntimeError)
    assert "leases failed 3 times" in str(failure)


async def test_closing_is_not_a_failure(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="spane_py.worker")
    started = asyncio.Event()

    async def body(supervised: Supervised) -> None:
        started.set()
        await asyncio.Event().wait()

    fatal: list[WorkerStoppedError] = []
    supervisor = Supervisor([SideTask("leases", body, critical=True)], on_fatal=fatal.append)
    supervisor.start()
    await asyncio.wait_for(started.wait(), LONG)
    await supervisor.close()
    assert fatal == []
    assert caplog.records == []
