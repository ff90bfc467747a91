"""The jobs of the queue — a node's run (``NodeJob``) and an execution's deadline
(``DeadlineJob``) —: deterministic ids, the JSON payload, and arq's (JSON-only) serializers."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from arq.jobs import SerializationError, deserialize_job_raw

from spane_py._queue_names import DEFAULT_QUEUE, check_queue_name  # re-exported here

FUNCTION_NAME = "spane_run_node"
DEFAULT_PRIORITY = 5
# Priority bands in the queue score: a lower score is taken first, so priority 10 gets band 0.
BAND = 10**13


# The node id that marked an execution's deadline job before ``DeadlineJob`` (no node id
# can start with "_"): such jobs, sent by an older version, are still understood.
LEGACY_DEADLINE_NODE = "__deadline__"


def priority_band(priority: int | None) -> int:
    return (10 - (DEFAULT_PRIORITY if priority is None else priority)) * BAND


def check_queue_names(names: Iterable[object]) -> tuple[str, ...]:
    """The queues a worker serves: each checked, duplicates dropped (first kept), at least
    one; ``ValueError`` otherwise (a bare string too: it is not a list of names)."""
    if isinstance(names, str | bytes):
        raise ValueError(f"queues must be a list of queue names, not the string {names!r}")
    checked = tuple(dict.fromkeys(check_queue_name(name) for name in names))
    if not checked:
        raise ValueError("a worker needs at least one queue to take jobs from")
    return checked


@dataclass(frozen=True, slots=True)
class NodeJob:
    """One run of one node of one execution; ``generation`` counts deliberate re-runs."""

    execution_id: str
    workflow_id: str
    workflow_version: int
    node_id: str
    generation: int = 0
    # A wake-up of a waiting node (its child execution ended): a job id of its own, so it is
    # not swallowed by the node's first job while that one is still finishing.
    wake: bool = False
    # Sent by the write that claimed the node (or created its execution), not sent again by
    # a sweep, a resend or a resume: with a first delivery, the node cannot have run
    # elsewhere since that write (see ``planner.stands_on_recent``). Not part of the job id.
    first: bool = False
    # The queue (lane) it goes to (spane_py/engine/routing.py). Not part of the job id nor of
    # its payload: a claim says which lane a job came from.
    queue: str = DEFAULT_QUEUE

    def job_id(self, prefix: str) -> str:
        base = f"{prefix}:{self.execution_id}:{self.node_id}:{self.generation}"
        return base + ":wake" if self.wake else base

    def payload(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "e": self.execution_id,
            "w": self.workflow_id,
            "v": self.workflow_version,
            "n": self.node_id,
            "g": self.generation,
        }
        if self.wake:
            data["k"] = 1
        if self.first:
            data["f"] = 1
        return data

    @classmethod
    def from_payload(cls, payload: object) -> NodeJob:
        if not isinstance(payload, dict):
            raise ValueError(f"node job payload must be an object, got {type(payload).__name__}")
        try:
            e, w, v, n, g = payload["e"], payload["w"], payload["v"], payload["n"], payload["g"]
        except KeyError as exc:
            raise ValueError(f"node job payload lacks field {exc.args[0]!r}") from None
        if not (
            isinstance(e, str)
            and isinstance(w, str)
            and isinstance(n, str)
            and type(v) is int
            and type(g) is int
        ):
            raise ValueError("node job payload has fields of the wrong type")
        return cls(e, w, v, n, g, payload.get("k") == 1, payload.get("f") == 1)


@dataclass(frozen=True, slots=True)
class DeadlineJob:
    """An execution's deadline (its workflow's ``timeout``): due that long after the
    execution starts, it fails the execution if it is still going."""

    execution_id: str
    workflow_id: str
    workflow_version: int
    queue: str = DEFAULT_QUEUE  # as ``NodeJob.queue``

    def job_id(self, prefix: str) -> str:
        return f"{prefix}:{self.execution_id}:deadline"

    def legacy_job_id(self, prefix: str) -> str:
        """The id an older version gave this job (a node job of ``LEGACY_DEADLINE_NODE``)."""
        return f"{prefix}:{self.execution_id}:{LEGACY_DEADLINE_NODE}:0"

    def payload(self) -> dict[str, Any]:
        return {
            "kind": "deadline",
            "e": self.execution_id,
            "w": self.workflow_id,
            "v": self.workflow_version,
        }


Job = NodeJob | DeadlineJob


def job_from_payload(payload: object) -> Job:
    """The job a payload holds; ``ValueError`` when it is not one."""
    if isinstance(payload, dict) and payload.get("kind") == "deadline":
        e, w, v = payload.get("e"), payload.get("w"), payload.get("v")
        if not (isinstance(e, str) and isinstance(w, str) and type(v) is int):
            raise ValueError("deadline job payload has fields missing or of the wrong type")
        return DeadlineJob(e, w, v)
    node = NodeJob.from_payload(payload)
    if node.node_id == LEGACY_DEADLINE_NODE:
        return DeadlineJob(node.execution_id, node.workflow_id, node.workflow_version)
    return node


def serialize(value: dict[str, Any]) -> bytes:
    return orjson.dumps(value)


def deserialize(raw: bytes) -> dict[str, Any]:
    """JSON only: anything else (a pickle, say) is refused, never executed."""
    value = orjson.loads(raw)
    if not isinstance(value, dict):
        raise ValueError("job data is not a JSON object")
    return value


def decode_record(data: bytes) -> object:
    """The node payload held by a job record (arq's job encoding, JSON only)."""
    try:
        function, args, kwargs, _, _ = deserialize_job_raw(data, deserializer=deserialize)
    except SerializationError as exc:
        raise ValueError(f"its record is not valid JSON job data ({exc})") from None
    if function != FUNCTION_NAME or len(args) != 1 or kwargs:
        raise ValueError(f"its record names function {function!r}, not {FUNCTION_NAME!r}")
    return args[0]


__all__ = [
    "DEFAULT_QUEUE",
    "FUNCTION_NAME",
    "DeadlineJob",
    "Job",
    "NodeJob",
    "check_queue_name",
    "check_queue_names",
    "decode_record",
    "deserialize",
    "job_from_payload",
    "priority_band",
    "serialize",
]
