"""The worker's handler: each delivered job goes to what runs its kind — a node's run to
the node runner, an execution's deadline to control (which fails the execution if it is
still going). Neither of them knows of the other through it."""

from __future__ import annotations

import logging

from spane_py.engine.control import Control
from spane_py.engine.runner import NodeRunner
from spane_py.queue.jobs import DeadlineJob, job_from_payload
from spane_py.queue.outcomes import DONE, JobOutcome

logger = logging.getLogger("spane_py.runner")


class Dispatch:
    def __init__(self, runner: NodeRunner, control: Control) -> None:
        self.runner = runner
        self.control = control

    async def __call__(self, payload: object, lost: int, again: bool = True) -> JobOutcome:
        """One delivery of one job (``lost``: workers lost while it ran alone; ``again``:
        the job was delivered before)."""
        try:
            job = job_from_payload(payload)
        except ValueError as exc:
            logger.error("dropping malformed node job: %s", exc)
            return DONE
        if isinstance(job, DeadlineJob):
            await self.control.time_out(job.execution_id)
            return DONE
        return await self.runner.run(job, lost=lost, again=again)
