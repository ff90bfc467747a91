"""Size limits on what callers hand the engine: definitions and payloads.

A workflow engine takes input from places it does not control — JSON definitions, webhook
bodies, the data of an enqueue or a resume. Every such input is bounded, so that a hostile
or broken one costs a clear error instead of memory, CPU or a stuck execution. Node outputs
have their own limit (``WorkflowEngine(max_output_bytes=...)``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from spane_py import _json
from spane_py.errors import ConfigurationError, SerializationError


@dataclass(frozen=True, slots=True)
class Limits:
    """``WorkflowEngine(limits=Limits(...))``; every field must be positive."""

    max_definition_bytes: int = 1 << 20  # a definition's JSON text
    max_nodes: int = 1000  # nodes in one workflow
    max_payload_bytes: int = 1 << 20  # initial data, metadata, resume data, webhook bodies
    max_depth: int = 64  # nesting of JSON arrays and objects in payloads and configs

    def __post_init__(self) -> None:
        for name in ("max_definition_bytes", "max_nodes", "max_payload_bytes", "max_depth"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigurationError(f"Limits.{name} must be a positive integer, got {value!r}")


DEFAULT_LIMITS = Limits()

# The longest delay, timeout, backoff or expiry any input may ask for: 10 years (3650
# days). Longer ones are refused with an error naming the field; without a bound, 1e12
# seconds overflows the datetime arithmetic of a due time.
MAX_DELAY_SECONDS = 3650 * 24 * 3600
MAX_DELAY_MS = MAX_DELAY_SECONDS * 1000


def json_depth(value: Any, limit: int) -> int:
    """How deeply arrays and objects nest in ``value`` (a scalar: 0), counting no deeper than
    ``limit + 1``; iterative, so any input is safe to measure."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list | tuple):
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    return deepest
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth) for child in children)
    return deepest


def encode_payload(value: Any, *, what: str, limits: Limits = DEFAULT_LIMITS) -> str:
    """``value`` as JSON text within the limits, or a ``SerializationError`` naming ``what``."""
    if json_depth(value, limits.max_depth) > limits.max_depth:
        raise SerializationError(
            f"{what} nests deeper than {limits.max_depth} levels of arrays and objects"
        )
    text = _json.dumps(value, what=what)
    check_size(text, what=what, limit=limits.max_payload_bytes)
    return text


def check_size(text: str | bytes, *, what: str, limit: int) -> None:
    if isinstance(text, str) and len(text) * 4 <= limit:
        return  # at most 4 bytes a character: no need to encode it to know
    size = len(text) if isinstance(text, bytes) else len(text.encode())
    if size > limit:
        raise SerializationError(f"{what} is {size} bytes, over the limit of {limit} bytes")
