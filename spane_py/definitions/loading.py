"""Loading definitions from models, dicts and JSON text, with errors that name the node."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from spane_py import _json
from spane_py.definitions.models import WorkflowDefinition
from spane_py.errors import ValidationIssue, WorkflowValidationError


def parse_definition(
    definition: WorkflowDefinition | Mapping[str, Any] | str | bytes,
) -> WorkflowDefinition:
    """A ``WorkflowDefinition`` from a model, a dict or JSON text; clear errors otherwise."""
    if isinstance(definition, WorkflowDefinition):
        return definition
    raw: Any = definition
    if isinstance(definition, str | bytes):
        try:
            raw = _json.loads(definition)
        except Exception as exc:
            raise WorkflowValidationError(f"the definition is not valid JSON: {exc}") from exc
    if not isinstance(raw, Mapping):
        raise WorkflowValidationError(
            f"a workflow definition must be an object, got {type(raw).__name__}"
        )
    try:
        return WorkflowDefinition.model_validate(dict(raw))
    except ValidationError as exc:
        wid = raw.get("id") if isinstance(raw.get("id"), str) else None
        raise WorkflowValidationError(
            issues=[ValidationIssue(_pydantic_issue(e, raw)) for e in exc.errors()],
            workflow_id=wid,
        ) from None


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
