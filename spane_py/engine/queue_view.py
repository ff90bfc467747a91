"""Each queue as an operator sees it: its jobs (``JobQueue.lane_stats``) beside the live
workers that consume it (``WorkerPresence``). A queue with jobs waiting and no live worker
consuming it is *unserved*: its nodes wait until a worker for it starts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from spane_py.queue.presence import LiveWorker
from spane_py.queue.stats import LaneStats


@dataclass(frozen=True, slots=True)
class QueueInfo:
    name: str
    queued: int  # pending jobs (suspects included)
    running: int
    oldest_waiting_s: float | None  # how long the oldest pending job has waited
    workers: int  # live workers consuming it

    @property
    def unserved(self) -> bool:
        """Jobs wait here and no live worker consumes this queue."""
        return self.workers == 0 and self.queued > 0


def queue_infos(lanes: Mapping[str, LaneStats], workers: Sequence[LiveWorker]) -> list[QueueInfo]:
    """One ``QueueInfo`` per queue that has held jobs or that a live worker consumes: the
    order of ``lanes`` (the default queue first), then the queues only workers name."""
    consumers: dict[str, int] = {}
    for worker in workers:
        for name in worker.queues:
            consumers[name] = consumers.get(name, 0) + 1
    names = list(lanes) + sorted(n for n in consumers if n not in lanes)
    empty = LaneStats(queued=0, running=0, oldest_waiting_s=None)
    return [
        QueueInfo(
            name=name,
            queued=lanes.get(name, empty).queued,
            running=lanes.get(name, empty).running,
            oldest_waiting_s=lanes.get(name, empty).oldest_waiting_s,
            workers=consumers.get(name, 0),
        )
        for name in names
    ]
