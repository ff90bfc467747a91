"""The Redis keys of the queue under a key prefix ``P``, and of each of its lanes.

A lane is a named queue ("gpu", say): its own pending set, running set, suspects, drain
turn and wake list. The default lane keeps the keys a single queue always had (``P:queue``,
``P:running``, ...); lane ``x`` uses ``P:q:x:queue``, ``P:q:x:running``, and so on. The
scheduled set, the arrival counter, the job records and the rest are shared by every lane
(see ``scripts.py``). The scripts compute a lane's keys the same way (``lane`` there).
"""

from __future__ import annotations

from dataclasses import dataclass

from spane_py.queue.jobs import DEFAULT_QUEUE


@dataclass(frozen=True, slots=True)
class LaneKeys:
    """The keys of one lane."""

    name: str
    base: str  # ``P:`` for the default lane, ``P:q:<name>:`` for the others

    @property
    def queue(self) -> str:
        """Pending jobs, by priority band + arrival number."""
        return f"{self.base}queue"

    @property
    def running(self) -> str:
        """Claimed jobs, by the deadline of their lease."""
        return f"{self.base}running"

    @property
    def suspects(self) -> str:
        """Jobs lost with their worker, waiting to run alone."""
        return f"{self.base}suspects"

    @property
    def drain(self) -> str:
        """The busy worker chosen to become idle for the lane's next suspect."""
        return f"{self.base}drain"

    @property
    def wake(self) -> str:
        """Tokens the lane's idle workers block on."""
        return f"{self.base}wake"


@dataclass(frozen=True, slots=True)
class QueueKeys:
    prefix: str

    def lane(self, name: str = DEFAULT_QUEUE) -> LaneKeys:
        """The keys of lane ``name`` (a checked queue name)."""
        if name == DEFAULT_QUEUE:
            return LaneKeys(name, f"{self.prefix}:")
        return LaneKeys(name, f"{self.prefix}:q:{name}:")

    # The default lane's keys, by their names of old.
    @property
    def queue(self) -> str:
        """Pending jobs of the default lane, by priority band + arrival number."""
        return f"{self.prefix}:queue"

    @property
    def running(self) -> str:
        """Claimed jobs of the default lane, by the deadline of their lease."""
        return f"{self.prefix}:running"

    @property
    def suspects(self) -> str:
        """Jobs of the default lane lost with their worker, waiting to run alone."""
        return f"{self.prefix}:suspects"

    @property
    def drain(self) -> str:
        """The busy worker chosen to become idle for the default lane's next suspect."""
        return f"{self.prefix}:drain"

    @property
    def wake(self) -> str:
        return f"{self.prefix}:wake"

    # Shared by every lane.
    @property
    def queues(self) -> str:
        """The names of the lanes other than the default one that jobs were sent to."""
        return f"{self.prefix}:queues"

    @property
    def scheduled(self) -> str:
        return f"{self.prefix}:scheduled"

    @property
    def bands(self) -> str:
        """Per scheduled job: its priority band, and ``:<lane>`` unless it is the default."""
        return f"{self.prefix}:bands"

    @property
    def lost(self) -> str:
        """Per job: workers lost while it ran alone."""
        return f"{self.prefix}:lost"

    @property
    def seq(self) -> str:
        """Counts the jobs made claimable: their order within a priority, in every lane."""
        return f"{self.prefix}:seq"

    @property
    def epoch(self) -> str:
        """Counts control actions (see ``JobQueue.bump_control_epoch``)."""
        return f"{self.prefix}:epoch"

    @property
    def again(self) -> str:
        """Jobs delivered before and not done yet (see scripts.py)."""
        return f"{self.prefix}:again"

    @property
    def script_keys(self) -> list[str]:
        """The KEYS of every queue script, in the order they name them (the default lane's
        first; the scripts build the other lanes' keys from the prefix)."""
        return [
            self.queue,
            self.scheduled,
            self.bands,
            self.running,
            self.suspects,
            self.lost,
            self.drain,
            self.wake,
            self.settled,
            self.seq,
            self.epoch,
            self.again,
            self.queues,
        ]

    @property
    def control(self) -> str:
        """Pub/sub channel: ids of executions just cancelled (workers stop their nodes)."""
        return f"{self.prefix}:control"

    @property
    def settled(self) -> str:
        """Pub/sub channel: ids of executions that just completed or failed."""
        return f"{self.prefix}:settled"


__all__ = ["LaneKeys", "QueueKeys"]
