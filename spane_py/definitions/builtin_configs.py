"""Configs of the built-in node types: ``delay``, ``sub-workflow``, ``wait`` and ``map``.

These types need no executor in the registry: the engine runs them. Their configs load
from SPANE's camelCase JSON (``durationSeconds``, ``workflowId``, ``inputMapping``, ...)
as well as snake_case, and are checked when a workflow using them is registered.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from spane_py.definitions.models import WORKFLOW_ID_PATTERN, SpaneModel
from spane_py.limits import MAX_DELAY_MS, MAX_DELAY_SECONDS

DELAY = "delay"
SUB_WORKFLOW = "sub-workflow"
WAIT = "wait"
MAP = "map"
BUILTIN_TYPES = frozenset({DELAY, SUB_WORKFLOW, WAIT, MAP})

# Sub-workflows may nest this deep (the top execution has depth 0), as in SPANE.
MAX_DEPTH = 10
DEFAULT_TOKEN_TTL_S = 7 * 24 * 3600.0


class DelayConfig(SpaneModel):
    """SPANE's delay: ``duration`` (ms) wins over ``duration_seconds``, which wins over
    ``duration_minutes``. One of them is required; negative values are refused; 0 is valid;
    at most 10 years (``spane_py.limits.MAX_DELAY_SECONDS``)."""

    duration: float | None = None
    duration_seconds: float | None = None
    duration_minutes: float | None = None

    @model_validator(mode="after")
    def _one_duration(self) -> DelayConfig:
        for name, most in (
            ("duration", MAX_DELAY_MS),
            ("duration_seconds", MAX_DELAY_SECONDS),
            ("duration_minutes", MAX_DELAY_SECONDS // 60),
        ):
            value = getattr(self, name)
            if value is not None and not 0 <= value <= most:  # NaN too
                raise ValueError(
                    f"{name} must be a finite number >= 0, at most {most} (10 years), got {value!r}"
                )
        if (
            self.duration is None
            and self.duration_seconds is None
            and self.duration_minutes is None
        ):
            raise ValueError("a delay node needs duration (ms), durationSeconds or durationMinutes")
        return self

    @property
    def seconds(self) -> float:
        if self.duration is not None:
            return self.duration / 1000
        if self.duration_seconds is not None:
            return self.duration_seconds
        assert self.duration_minutes is not None
        return self.duration_minutes * 60


class SubWorkflowConfig(SpaneModel):
    """Start ``workflow_id`` as a child execution and complete with its result.

    ``input_mapping`` ``{target: source}`` builds the child's input from the node's input
    (``source`` is a dotted path; no mapping: the whole input); ``output_mapping`` does the
    same from the child's output to the node's data. ``continue_on_fail``: a failed child
    gives the node a successful result carrying the error instead of failing it.
    """

    workflow_id: str = Field(pattern=WORKFLOW_ID_PATTERN, max_length=128)
    input_mapping: dict[str, str] | None = None
    output_mapping: dict[str, str] | None = None
    continue_on_fail: bool = False


class WaitConfig(SpaneModel):
    """Suspend until ``engine.resume(token, data)``; the node's data is ``data``.

    ``timeout_seconds`` (or ``timeout``, ms): after it, ``on_timeout`` "fail" fails the node
    and "continue" completes it with ``default_output``. The token expires with the timeout,
    or after ``token_ttl_seconds`` (7 days) when there is none. Each is at most 10 years.
    """

    timeout: float | None = Field(None, gt=0, le=MAX_DELAY_MS, description="ms")
    timeout_seconds: float | None = Field(None, gt=0, le=MAX_DELAY_SECONDS)
    on_timeout: Literal["fail", "continue"] = "fail"
    default_output: Any = None
    token_ttl_seconds: float = Field(DEFAULT_TOKEN_TTL_S, gt=0, le=MAX_DELAY_SECONDS)

    @property
    def timeout_s(self) -> float | None:
        if self.timeout is not None:
            return self.timeout / 1000
        return self.timeout_seconds


class MapConfig(SpaneModel):
    """Run the executor of ``node_type`` once per item of a list, in parallel.

    The list is the node's input, or the value at the dotted path ``items`` in it. Each
    item runs with ``config`` as its node config and the item as its input. ``concurrency``
    caps how many run at once; ``on_item_error`` "fail" fails the node at the first failed
    item, "collect" puts ``{"error": message}`` in that item's place. The node's data is the
    list of the items' data, in order.
    """

    node_type: str = Field(min_length=1, max_length=200)
    items: str | None = None
    concurrency: int | None = Field(None, ge=1, le=10_000)
    on_item_error: Literal["fail", "collect"] = "fail"
    config: dict[str, Any] = Field(default_factory=dict)


CONFIG_MODELS: dict[str, type[SpaneModel]] = {
    DELAY: DelayConfig,
    SUB_WORKFLOW: SubWorkflowConfig,
    WAIT: WaitConfig,
    MAP: MapConfig,
}


def pick(data: Any, path: str | None) -> Any:
    """The value at a dotted ``path`` in ``data`` (None when a step is missing)."""
    if not path:
        return data
    value = data
    for step in path.split("."):
        if isinstance(value, dict):
            value = value.get(step)
        elif isinstance(value, list) and step.lstrip("-").isdigit():
            index = int(step)
            value = value[index] if -len(value) <= index < len(value) else None
        else:
            return None
    return value


def apply_mapping(data: Any, mapping: dict[str, str] | None) -> Any:
    """``{target: value at source}``, or ``data`` itself without a mapping."""
    if not mapping:
        return data
    return {target: pick(data, source) for target, source in mapping.items()}
