"""The supervisor of a worker's side tasks: lease renewal, the heartbeat, periodic tasks.

A side task is a loop that handles the failures it expects itself (a Redis or database
outage: logged, retried next round). Anything else that escapes it is a bug or a surprise,
and a side task that simply died would go unnoticed: a dead sweeper or scheduler does its
work no more, and dead lease renewal lets the leases of running jobs run out, so another
worker runs them a second time. The supervisor runs each side task in its own asyncio task
and decides what such an escape means.

The policy:

* every unexpected exception is logged with its traceback (logger ``spane_py.worker``),
  and so is a ``CancelledError`` the task was not asked for (a future cancelled under it);
  the side task's own cancellation (the worker stopping) is not a failure;
* an ordinary side task (periodic tasks — the sweeper, the scheduler — and the heartbeat) is
  restarted after a backoff: ``backoff_base`` (0.5 s), doubling with each failure in a row,
  at most its ``backoff_max`` (a periodic task's interval, up to a minute), so it never waits
  longer than it would have between two rounds; a round that goes well
  (``Supervised.succeeded``) resets it. Such a task never stops the worker;
* a **critical** side task (lease renewal) is restarted at once, with no backoff: a missed
  renewal is a lease closer to running out. If it fails ``max_failures`` (3) times within
  its ``window`` (the lease period), the supervisor gives up on it and calls ``on_fatal``
  with a ``WorkerStoppedError`` (its cause: the last error): the worker then stops at once — it
  claims nothing more, cuts off its running deliveries, which are released (back to the
  front of the queue; when Redis cannot be reached either, their leases run out and they
  come back as suspects) — and its ``run()`` raises that error, so ``spane worker`` exits
  with a failure and the process manager starts a fresh one. A worker that cannot keep its
  leases must not go on running nodes that another worker is about to run again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from spane_py.errors import WorkerStoppedError

logger = logging.getLogger("spane_py.worker")

BACKOFF_BASE_S = 0.5
BACKOFF_MAX_S = 60.0
MAX_FAILURES = 3


@dataclass(slots=True)
class Supervised:
    """What a side task's body is told of its own run, and how it reports progress."""

    failures: int = 0  # unexpected failures in a row before this start (0: a fresh start)

    @property
    def restarted(self) -> bool:
        """Started again after a failure: the backoff (if any) was its wait, so a periodic
        body runs at once and lease renewal renews at once."""
        return self.failures > 0

    def succeeded(self) -> None:
        """A round went well: the next failure backs off from ``backoff_base`` again."""
        self.failures = 0


@dataclass(frozen=True, slots=True)
class SideTask:
    """One side task: ``body`` loops for as long as the worker runs (it returns only by
    raising; returning counts as a failure too)."""

    name: str
    body: Callable[[Supervised], Awaitable[None]]
    critical: bool = False
    backoff_max: float = BACKOFF_MAX_S
    window: float = 30.0  # critical: the span ``max_failures`` are counted in (the lease)


@dataclass(eq=False)
class Supervisor:
    """Runs the side tasks (``start``) until ``close``; see the module docstring."""

    tasks: Sequence[SideTask]
    on_fatal: Callable[[WorkerStoppedError], None]
    backoff_base: float = BACKOFF_BASE_S
    max_failures: int = MAX_FAILURES
    _running: list[asyncio.Task[None]] = field(default_factory=list)

    def start(self) -> None:
        self._running = [
            asyncio.create_task(self._keep(task), name=f"spane-{task.name}") for task in self.tasks
        ]

    async def close(self) -> None:
        """Cancel every side task and wait for them."""
        running, self._running = self._running, []
        for task in running:
            task.cancel()
        if running:
            await asyncio.wait(running)
        for task in running:
            if not task.cancelled():
                with contextlib.suppress(BaseException):
                    task.result()  # consumed: nothing warns at exit

    async def _keep(self, task: SideTask) -> None:
        """Run ``task``'s body, again after each failure, until cancelled or given up."""
        supervised = Supervised()
        recent: deque[float] = deque()  # critical: when it failed, within its window
        while True:
            error = await _run_once(task, supervised)
            supervised.failures += 1
            if not task.critical:
                delay = min(self.backoff_base * 2 ** (supervised.failures - 1), task.backoff_max)
                logger.error(
                    "side task %s failed; restarting it in %.1f s", task.name, delay, exc_info=error
                )
                await asyncio.sleep(delay)
                continue
            now = time.monotonic()
            recent.append(now)
            while recent and recent[0] < now - task.window:
                recent.popleft()
            if len(recent) < self.max_failures:
                logger.error(
                    "side task %s failed; restarting it at once", task.name, exc_info=error
                )
                await asyncio.sleep(0)  # let the rest of the loop run between restarts
                continue
            failure = WorkerStoppedError(
                f"{task.name} failed {len(recent)} times within {task.window:g} s: the worker "
                "stopped (its running jobs were released)"
            )
            failure.__cause__ = error
            logger.error(
                "side task %s failed %d times within %g s: stopping the worker; its running "
                "jobs are cut off and released",
                task.name,
                len(recent),
                task.window,
                exc_info=error,
            )
            self.on_fatal(failure)
            return


async def _run_once(task: SideTask, supervised: Supervised) -> BaseException:
    """Run the body once; what ended it (its own cancellation is re-raised)."""
    try:
        await task.body(supervised)
    except asyncio.CancelledError as exc:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise  # the worker is stopping
        return exc  # a cancellation nobody asked this task for: a failure like any other
    except Exception as exc:
        return exc
    return RuntimeError(f"side task {task.name} returned; it should run until cancelled")
