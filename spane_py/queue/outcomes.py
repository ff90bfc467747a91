"""What should happen to a job once its handler returns: the runner's answer to the worker.

The runner never raises queue exceptions for control flow: it returns one of these, and the
worker ends the delivery accordingly (``JobQueue.settle``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Done:
    """The job is over (its node recorded, dropped, or nothing left to do)."""


@dataclass(frozen=True, slots=True)
class Release:
    """Put the job back to run again at once (its run was cut off on purpose: a shutdown)."""


@dataclass(frozen=True, slots=True)
class Reschedule:
    """Run the job again at ``due_ms`` (ms since the epoch): a retry's backoff, a rate
    limit's wait, a waiting node looking again."""

    due_ms: int
    priority: int | None = None


JobOutcome = Done | Release | Reschedule

DONE = Done()

__all__ = ["DONE", "Done", "JobOutcome", "Release", "Reschedule"]
