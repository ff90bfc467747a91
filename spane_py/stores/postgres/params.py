"""What the PostgreSQL store binds to its statements: checks that a value fits its
parameter (a uuid, a bigint, a window) before the driver refuses it, and the JSON the
statements unpack. Pure functions, no I/O."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from spane_py.records import NodeRecord, Transition

MAX_BIGINT = 2**63 - 1
_UUID_TEMPLATE = "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"


def is_uuid(value: object) -> bool:
    if not isinstance(value, str) or len(value) != 36:
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def uuid_prefix_range(prefix: str) -> tuple[str, str] | None:
    """The lowest and highest uuids whose text starts with ``prefix`` (None: no uuid's
    text can: a character that is not a hex digit, or a hyphen out of place)."""
    text = prefix.lower()
    if len(text) > len(_UUID_TEMPLATE):
        return None
    for char, slot in zip(text, _UUID_TEMPLATE, strict=False):
        if (slot == "-") != (char == "-") or (char != "-" and char not in "0123456789abcdef"):
            return None
    digits = text.replace("-", "")
    return digits.ljust(32, "0"), digits.ljust(32, "f")


def is_bigint(value: object) -> bool:
    """Whether ``value`` fits a bigint column (asyncpg refuses to send one that does not)."""
    return isinstance(value, int) and -MAX_BIGINT - 1 <= value <= MAX_BIGINT


def check_window(limit: int, offset: int = 0) -> None:
    if limit < 0 or offset < 0:
        raise ValueError(f"limit and offset must not be negative (got {limit}, {offset})")


def check_same_execution(execution_id: str, result: Transition) -> None:
    new = result.execution
    if new is not None and new.execution_id != execution_id:
        raise ValueError(
            f"a transition of execution {execution_id!r} returned the record of "
            f"execution {new.execution_id!r}"
        )


def node_item(n: NodeRecord) -> dict[str, Any]:
    """A node row as the statements' ``jsonb_to_recordset`` of nodes takes it (sql.py)."""
    return {
        "node_id": n.node_id,
        "status": n.status.value,
        "generation": n.generation,
        "attempts": n.attempts,
        "output": n.output,
        "error": n.error,
        "next_nodes": list(n.next_nodes) if n.next_nodes is not None else None,
        "skipped": n.skipped,
        "queued_at": n.queued_at,
        "started_at": n.started_at,
        "completed_at": n.completed_at,
        "wake_at": n.wake_at,
        "wait": n.wait,
        "wait_child": n.wait_child,
    }


def nodes_json(nodes: Sequence[NodeRecord]) -> str:
    return orjson.dumps([node_item(n) for n in nodes]).decode()


def metadata_json(metadata: Mapping[str, Any]) -> str:
    return orjson.dumps(dict(metadata)).decode() if metadata else "{}"
