"""Pydantic models for workflow definitions.

Python code uses snake_case; a SPANE JSON definition (camelCase: ``entryNodeId``,
``retryPolicy``, ...) loads into the same models unchanged. ``model_dump()`` gives
snake_case, ``model_dump(by_alias=True)`` gives the SPANE shape back.
"""

from __future__ import annotations

import json
import random
import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from spane_py._queue_names import QUEUE_NAME_PATTERN
from spane_py._text import find_bad_text
from spane_py.definitions.cron import check_timezone, normalize_cron
from spane_py.limits import MAX_DELAY_MS
from spane_py.retention import parse_duration

WORKFLOW_ID_PATTERN = r"^[a-z0-9][a-z0-9\-_]*$"
NODE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_\-.]*$"
MAX_ID_LENGTH = 128
# The validation context of a definition read back from a store (see ScheduleTrigger).
STORED: dict[str, Any] = {"stored": True}

WorkflowId = Annotated[
    str, StringConstraints(pattern=WORKFLOW_ID_PATTERN, max_length=MAX_ID_LENGTH)
]
NodeId = Annotated[str, StringConstraints(pattern=NODE_ID_PATTERN, max_length=MAX_ID_LENGTH)]
QueueName = Annotated[str, StringConstraints(pattern=QUEUE_NAME_PATTERN)]

_workflow_id_re = re.compile(WORKFLOW_ID_PATTERN)


def is_valid_workflow_id(value: str) -> bool:
    return len(value) <= MAX_ID_LENGTH and _workflow_id_re.match(value) is not None


def _check_json(value: Any, where: str) -> None:
    """Refuse what JSON cannot carry: configs and metadata are stored and sent to workers."""
    if value is None or isinstance(value, str | bool | int):
        return
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"{where} is {value!r}, which is not a valid JSON number")
        return
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check_json(item, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"{where} has the key {key!r}; JSON object keys are strings")
            _check_json(item, f"{where}.{key}")
        return
    raise ValueError(f"{where} has type {type(value).__name__}, which is not a JSON value")


class SpaneModel(BaseModel):
    """Base: camelCase aliases accepted next to snake_case names; unknown keys refused."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
    )

    @field_validator("*")
    @classmethod
    def _storable_text(cls, value: Any) -> Any:
        """Every string (config keys too) can be stored: no NUL, no lone surrogate."""
        found = find_bad_text(value)
        if found is not None:
            where, problem = found
            raise PydanticCustomError(
                "string_unstorable",
                "{msg}",
                {"msg": f"at {where}: {problem}" if where else problem},
            )
        return value


# Backoff is capped so that exponential growth stays sane even with many attempts.
DEFAULT_MAX_BACKOFF_MS = 3_600_000


class BackoffPolicy(SpaneModel):
    """How long to wait before the next attempt (milliseconds)."""

    type: Literal["exponential", "fixed"] = "exponential"
    delay: int = Field(
        1000, ge=0, le=MAX_DELAY_MS, description="first (exponential) or every (fixed) delay, ms"
    )
    max_delay: int = Field(
        DEFAULT_MAX_BACKOFF_MS, ge=0, le=MAX_DELAY_MS, description="upper bound, ms"
    )
    jitter: float = Field(0.0, ge=0.0, le=1.0, description="+/- fraction of randomness")

    def delay_ms(self, failed_attempt: int, rng: random.Random | None = None) -> int:
        """Delay after attempt number ``failed_attempt`` (1-based) failed."""
        if self.type == "fixed":
            base = float(self.delay)
        else:
            base = float(self.delay) * 2.0 ** min(max(failed_attempt - 1, 0), 60)
        base = min(base, float(self.max_delay))
        if self.jitter:
            r = (rng or random).uniform(-self.jitter, self.jitter)
            base = min(max(base * (1.0 + r), 0.0), float(self.max_delay))
        return int(base)


class RetryDecision(BaseModel):
    model_config = ConfigDict(frozen=True)

    retry: bool
    delay_ms: int = 0


class RetryPolicy(SpaneModel):
    """SPANE's ``retryPolicy``: attempts in all (first run included), backoff, continue-on-fail."""

    max_attempts: int = Field(3, ge=1, le=1000)
    backoff: BackoffPolicy = Field(default_factory=BackoffPolicy)
    continue_on_fail: bool = False

    def decide(
        self, error: BaseException, attempt: int, rng: random.Random | None = None
    ) -> RetryDecision:
        """Whether attempt number ``attempt`` (1-based), which raised ``error``, is retried."""
        from spane_py.errors import NonRetryableError

        if isinstance(error, NonRetryableError) or attempt >= self.max_attempts:
            return RetryDecision(retry=False)
        return RetryDecision(retry=True, delay_ms=self.backoff.delay_ms(attempt, rng))


NO_RETRY = RetryPolicy(max_attempts=1)


class NodeDefinition(SpaneModel):
    id: NodeId
    type: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    name: str | None = None
    description: str | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    inputs: list[NodeId] = Field(default_factory=list)
    outputs: list[NodeId] = Field(default_factory=list)
    retry_policy: RetryPolicy | None = None
    timeout_ms: int | None = Field(None, gt=0, le=MAX_DELAY_MS)
    # The queue its jobs go to (workers consume the queues they are told to): wins over
    # the node type's queue (``NodeRegistry.register(queue=)``) and the workflow's.
    queue: QueueName | None = None

    @field_validator("config")
    @classmethod
    def _config_is_json(cls, value: dict[str, Any]) -> dict[str, Any]:
        _check_json(value, "config")
        return value

    @model_validator(mode="before")
    @classmethod
    def _lift_retry_policy_from_config(cls, data: Any) -> Any:
        # SPANE accepts ``retryPolicy`` inside ``config`` too. It is moved out of the config
        # (so a type's config model never sees it and the content hash does not depend on
        # where it was written); a top-level policy wins over one in the config.
        if isinstance(data, dict):
            config = data.get("config")
            if isinstance(config, dict) and ("retryPolicy" in config or "retry_policy" in config):
                nested = config.get("retryPolicy", config.get("retry_policy"))
                rest = {k: v for k, v in config.items() if k not in ("retryPolicy", "retry_policy")}
                data = {**data, "config": rest}
                has_top = data.get("retryPolicy", data.get("retry_policy")) is not None
                if nested is not None and not has_top:
                    data.pop("retry_policy", None)  # an explicit None under the other name
                    data["retryPolicy"] = nested
        return data

    @model_serializer(mode="wrap")
    def _omit_unwritten_edges(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # A side of the edges the node did not write (derived at compile time from its
        # neighbours) stays unwritten in a dump, so dumping and loading again gives the same
        # definition: dumping it as [] would turn it into a written, conflicting side.
        data: dict[str, Any] = handler(self)
        for side in ("inputs", "outputs"):
            if side not in self.model_fields_set:
                data.pop(side, None)
        return data

    @property
    def effective_retry_policy(self) -> RetryPolicy:
        return self.retry_policy or NO_RETRY


class ScheduleTrigger(SpaneModel):
    """Start the workflow on a cron schedule (see ``spane_py.definitions.cron``: 5 fields,
    or 6 with seconds first; DST rules). ``missed``: what happens to ticks that passed while
    no worker ran — ``"skip"`` them, or ``"run_once"`` for all of them together."""

    type: Literal["schedule"] = "schedule"
    cron: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    timezone: str = "UTC"
    missed: Literal["skip", "run_once"] = "skip"

    @model_validator(mode="before")
    @classmethod
    def _flatten_config(cls, data: Any) -> Any:
        data = _flatten_trigger_config(data)
        if isinstance(data, dict) and data.get("missed") == "runOnce":  # SPANE's spelling
            data = {**data, "missed": "run_once"}
        return data

    # Checked when a definition is registered; one read back from a store (``context=
    # STORED``) is taken as saved, so a definition saved before these checks stays readable.
    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str, info: ValidationInfo) -> str:
        return value if info.context == STORED else normalize_cron(value)

    @field_validator("timezone")
    @classmethod
    def _valid_timezone(cls, value: str, info: ValidationInfo) -> str:
        return value if info.context == STORED else check_timezone(value)

    @model_serializer(mode="wrap")
    def _omit_default_missed(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Definitions written before ``missed`` existed keep their content hash and their
        # SPANE shape: the default is left out of dumps.
        data: dict[str, Any] = handler(self)
        if self.missed == "skip":
            data.pop("missed", None)
        return data

    def to_spane_json(self) -> dict[str, Any]:
        """SPANE's shape: ``{"type": "schedule", "config": {"cron": ..., "timezone": ...}}``."""
        return _nest_trigger_config(self)


# The longest tolerance a signed webhook may take (its replay memory lives twice as long).
MAX_WEBHOOK_TOLERANCE_S = 86_400


class WebhookTrigger(SpaneModel):
    """Start the workflow when ``method /path`` is called (``spane_py/triggers/webhooks.py``).
    With a ``secret``, requests must be signed: ``signature`` names the scheme
    (``"spane"``: ``X-Spane-Signature: t=...,v1=...``; ``"github"``: GitHub's
    ``X-Hub-Signature-256``), ``tolerance_seconds`` the window (default: the engine's
    ``webhook_tolerance_seconds``, 300)."""

    type: Literal["webhook"] = "webhook"
    path: Annotated[str, StringConstraints(min_length=1, max_length=500)]
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    secret: str | None = None
    signature: Literal["spane", "github"] = "spane"
    tolerance_seconds: int | None = Field(None, ge=1, le=MAX_WEBHOOK_TOLERANCE_S)

    @model_validator(mode="before")
    @classmethod
    def _flatten_config(cls, data: Any) -> Any:
        data = _flatten_trigger_config(data)
        if isinstance(data, dict) and isinstance(data.get("method"), str):
            data = {**data, "method": data["method"].upper()}
        return data

    def to_spane_json(self) -> dict[str, Any]:
        """SPANE's shape: ``{"type": "webhook", "config": {"path": ..., "method": ...}}``."""
        return _nest_trigger_config(self)

    @field_validator("path")
    @classmethod
    def _strip_slashes(cls, value: str) -> str:
        return normalize_webhook_path(value)

    @field_validator("secret")
    @classmethod
    def _secret_not_empty(cls, value: str | None) -> str | None:
        if value is not None and not value:
            raise ValueError("webhook secret must not be empty (leave it out for no signature)")
        return value

    @model_validator(mode="after")
    def _signing_needs_a_secret(self) -> WebhookTrigger:
        if self.secret is None and (
            "signature" in self.model_fields_set or self.tolerance_seconds is not None
        ):
            raise ValueError(
                "webhook 'signature' and 'tolerance_seconds' apply to signed webhooks: give "
                "it a 'secret' too"
            )
        return self

    @model_serializer(mode="wrap")
    def _omit_signing_defaults(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Definitions written before these fields existed keep their content hash and their
        # SPANE shape: the defaults are left out of dumps.
        data: dict[str, Any] = handler(self)
        if self.signature == "spane":
            data.pop("signature", None)
        if self.tolerance_seconds is None:
            for name in ("tolerance_seconds", "toleranceSeconds"):
                data.pop(name, None)
        return data


def normalize_webhook_path(value: str) -> str:
    """A webhook path without its leading and trailing slashes: ``/hooks/x/`` is ``hooks/x``."""
    stripped = value.strip("/")
    if not stripped:
        raise ValueError("webhook path must not be empty")
    return stripped


def _flatten_trigger_config(data: Any) -> Any:
    # SPANE writes ``{type, config: {...}}``; spane_py also accepts the fields flat.
    if isinstance(data, dict) and isinstance(data.get("config"), dict):
        flat = {k: v for k, v in data.items() if k != "config"}
        for key, value in data["config"].items():
            flat.setdefault(key, value)
        return flat
    return data


def _nest_trigger_config(trigger: SpaneModel) -> dict[str, Any]:
    flat = trigger.model_dump(mode="json", by_alias=True, exclude_none=True)
    kind = flat.pop("type")
    return {"type": kind, "config": flat}


Trigger = Annotated[ScheduleTrigger | WebhookTrigger, Field(discriminator="type")]


# What a concurrency key's path starts with: the part of the execution it reads.
CONCURRENCY_KEY_ROOTS = ("input", "metadata")
_MISSING: Any = object()


class ConcurrencyLimit(SpaneModel):
    """At most ``max`` executions of the workflow with the same key value run (or are
    paused) at once; the others wait as ``queued``, oldest first per key.

    ``key`` is a dotted path into the execution: ``input.<path>`` (its initial data) or
    ``metadata.<path>`` (its metadata); a step into a list is an index (``input.items.0``).
    The key value is the JSON value found there, as canonical JSON text (``7`` and ``"7"``
    are different keys); ``key_of`` computes it.
    """

    key: Annotated[str, StringConstraints(min_length=1, max_length=500)]
    max: int = Field(ge=1)

    @field_validator("key")
    @classmethod
    def _key_is_a_path(cls, value: str) -> str:
        root, _, rest = value.partition(".")
        if root not in CONCURRENCY_KEY_ROOTS or not rest or "" in rest.split("."):
            raise ValueError(
                f"{value!r} is not a key expression: write a dotted path that starts with "
                "'input.' (the execution's input) or 'metadata.' (its metadata), such as "
                "'input.customer_id'"
            )
        return value

    def key_of(self, data: Any, metadata: Any) -> str | None:
        """The key value of an execution with this input and metadata: canonical JSON text
        (sorted keys, no spaces); None when the path is missing."""
        root, _, rest = self.key.partition(".")
        value = data if root == "input" else metadata
        for step in rest.split("."):
            if isinstance(value, dict):
                value = value.get(step, _MISSING)
            elif isinstance(value, list) and step.lstrip("-").isdigit():
                index = int(step)
                value = value[index] if -len(value) <= index < len(value) else _MISSING
            else:
                value = _MISSING
            if value is _MISSING:
                return None
        return json.dumps(
            value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )


# A duration of retention: text such as "7d", "12h", "30m", "45s", or seconds.
RetentionDuration = str | int | float


class RetentionSettings(SpaneModel):
    """How long a workflow's finished executions are kept, by status (None: as the
    engine's ``retention`` says); see ``spane_py.retention``."""

    completed: RetentionDuration | None = None
    failed: RetentionDuration | None = None
    cancelled: RetentionDuration | None = None

    @field_validator("completed", "failed", "cancelled")
    @classmethod
    def _a_duration(cls, value: RetentionDuration | None) -> RetentionDuration | None:
        if value is not None:
            parse_duration(value)  # a ValueError names what is wrong
        return value


class WorkflowDefinition(SpaneModel):
    id: WorkflowId
    name: str = ""
    description: str | None = None
    entry_node_id: NodeId | None = None
    nodes: list[NodeDefinition]
    triggers: list[Trigger] = Field(default_factory=list)
    max_concurrency: int | None = Field(None, ge=1)
    # A limit per key value (``{"key": "input.customer_id", "max": 1}``), beside
    # ``max_concurrency``: an execution starts when both have room.
    concurrency: ConcurrencyLimit | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    # SPANE-level enqueue defaults: used when enqueue_workflow is not given its own.
    priority: int | None = Field(None, ge=1, le=10)
    delay: int | None = Field(None, ge=0, le=MAX_DELAY_MS, description="default start delay, ms")
    # An execution still unfinished this long after it started fails (ExecutionTimeoutError).
    timeout: int | None = Field(None, gt=0, le=MAX_DELAY_MS, description="execution timeout, ms")
    # The queue of its nodes that neither name one nor have a type that does (built-in
    # types included); None: ``default``.
    queue: QueueName | None = None
    # How long its finished executions are kept, over the engine's ``retention``.
    retention: RetentionSettings | None = None

    @model_validator(mode="before")
    @classmethod
    def _default_name(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("name") and isinstance(data.get("id"), str):
            data = {**data, "name": data["id"]}
        return data

    @field_validator("metadata")
    @classmethod
    def _metadata_is_json(cls, value: dict[str, Any]) -> dict[str, Any]:
        _check_json(value, "metadata")
        return value

    def node(self, node_id: str) -> NodeDefinition:
        for node in self.nodes:
            if node.id == node_id:
                return node
        raise KeyError(node_id)

    def to_spane_json(self) -> dict[str, Any]:
        """The definition in SPANE's camelCase JSON shape (triggers as ``{type, config}``).

        SPANE needs both ``inputs`` and ``outputs`` on every node: a side the node did not
        write is filled in from its neighbours, as ``compile_workflow`` derives it.
        """
        data = self.model_dump(mode="json", by_alias=True, exclude_none=True)
        data["triggers"] = [trigger.to_spane_json() for trigger in self.triggers]
        for node, out in zip(self.nodes, data["nodes"], strict=True):
            if "inputs" not in node.model_fields_set:
                out["inputs"] = [p.id for p in self.nodes if node.id in p.outputs]
            if "outputs" not in node.model_fields_set:
                out["outputs"] = [c.id for c in self.nodes if node.id in c.inputs]
        return data
