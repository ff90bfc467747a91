"""Loading definitions from models, dicts and JSON text, with errors that name the node."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from spane_py import _json
from spane_py.definitions.models import WorkflowDefinition
from spane_py.errors import SerializationError, ValidationIssue, WorkflowValidationError
from spane_py.limits import DEFAULT_LIMITS, Limits, check_size, json_depth


def parse_definition(
    definition: WorkflowDefinition | Mapping[str, Any] | str | bytes,
    limits: Limits = DEFAULT_LIMITS,
) -> WorkflowDefinition:
    """A ``WorkflowDefinition`` from a model, a dict or JSON text; clear errors otherwise.
    ``limits`` bound its size, node count and nesting (checked before anything else)."""
    if isinstance(definition, WorkflowDefinition):
        return _within_limits(definition, limits)
    raw: Any = definition
    if isinstance(definition, str | bytes):
        try:
            check_size(definition, what="the definition", limit=limits.max_definition_bytes)
        except SerializationError as exc:
            raise WorkflowValidationError(exc.message) from None
        try:
            raw = _json.loads(definition)
        except Exception as exc:
            raise WorkflowValidationError(f"the definition is not valid JSON: {exc}") from exc
    if not isinstance(raw, Mapping):
        raise WorkflowValidationError(
            f"a workflow definition must be an object, got {type(raw).__name__}"
        )
    # A definition nests a few levels itself (nodes, a node, its config) on top of configs.
    if json_depth(raw, limits.max_depth + 4) > limits.max_depth + 4:
        raise WorkflowValidationError(
            f"the definition nests deeper than {limits.max_depth} levels in its configs"
        )
    nodes = raw.get("nodes")
    if isinstance(nodes, list) and len(nodes) > limits.max_nodes:
        raise WorkflowValidationError(
            f"the workflow has {len(nodes)} nodes, over the limit of {limits.max_nodes}"
        )
    try:
        return _within_limits(WorkflowDefinition.model_validate(dict(raw)), limits)
    except ValidationError as exc:
        wid = raw.get("id") if isinstance(raw.get("id"), str) else None
        raise WorkflowValidationError(
            issues=[ValidationIssue(_pydantic_issue(e, raw)) for e in exc.errors()],
            workflow_id=wid,
        ) from None


def _within_limits(definition: WorkflowDefinition, limits: Limits) -> WorkflowDefinition:
    if len(definition.nodes) > limits.max_nodes:
        raise WorkflowValidationError(
            f"the workflow has {len(definition.nodes)} nodes, over the limit of {limits.max_nodes}",
            workflow_id=definition.id,
        )
    try:
        check_size(
            definition.model_dump_json(by_alias=True),
            what="the definition",
            limit=limits.max_definition_bytes,
        )
    except SerializationError as exc:
        raise WorkflowValidationError(exc.message, workflow_id=definition.id) from None
    return definition


def _pydantic_issue(err: Any, raw: Mapping[str, Any]) -> str:
    loc = list(err["loc"])
    where = ".".join(str(p) for p in loc) or "definition"
    # Name the node rather than its index: nodes.2.type -> node 'fetch': type
    if len(loc) >= 2 and loc[0] == "nodes" and isinstance(loc[1], int):
        nodes = raw.get("nodes")
        if isinstance(nodes, list) and loc[1] < len(nodes) and isinstance(nodes[loc[1]], dict):
            node_id = nodes[loc[1]].get("id")
            if isinstance(node_id, str):
                rest = ".".join(str(p) for p in loc[2:]) or "node"
                where = f"node {node_id!r}: {rest}"
    if loc == ["id"]:
        return f"id: {err['msg']} (workflow ids are lowercase letters, digits, '-' and '_')"
    return f"{where}: {err['msg']}"
