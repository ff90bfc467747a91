"""Node jobs: deterministic ids, the JSON payload, and arq's (JSON-only) serializers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

FUNCTION_NAME = "spane_run_node"
DEFAULT_PRIORITY = 5
# Priority bands in the queue score: a lower score is taken first, so priority 10 gets band 0.
BAND = 10**13


def priority_band(priority: int | None) -> int:
    return (10 - (DEFAULT_PRIORITY if priority is None else priority)) * BAND


@dataclass(frozen=True, slots=True)
class NodeJob:
    """One run of one node of one execution; ``generation`` counts deliberate re-runs."""

    execution_id: str
    workflow_id: str
    workflow_version: int
    node_id: str
    generation: int = 0

    def job_id(self, prefix: str) -> str:
        return f"{prefix}:{self.execution_id}:{self.node_id}:{self.generation}"

    def payload(self) -> dict[str, Any]:
        return {
            "e": self.execution_id,
            "w": self.workflow_id,
            "v": self.workflow_version,
            "n": self.node_id,
            "g": self.generation,
        }

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
        return cls(e, w, v, n, g)


def serialize(value: dict[str, Any]) -> bytes:
    return orjson.dumps(value)


def deserialize(raw: bytes) -> dict[str, Any]:
    """JSON only: anything else (a pickle, say) is refused, never executed."""
    value = orjson.loads(raw)
    if not isinstance(value, dict):
        raise ValueError("job data is not a JSON object")
    return value
