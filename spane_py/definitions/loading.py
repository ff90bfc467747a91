"""Loading definitions from models, dicts and JSON text, with errors that name the node."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from spane_py import _json
from spane_py.definitions.models import NodeDefinition, WorkflowDefinition
from spane_py.errors import (
    IssueKind,
    SerializationError,
    ValidationIssue,
    WorkflowValidationError,
)
from spane_py.limits import DEFAULT_LIMITS, Limits, check_size, json_depth


@dataclass(frozen=True, slots=True)
class LoadedDefinition:
    """What could be read of a definition. ``definition`` when every field is valid; else
    ``issues`` lists the problems of the fields, and ``nodes`` the nodes that are valid on
    their own, so the rest of the definition can still be checked (``broken``: the ids of
    the others; ``no_nodes``: its list of nodes is empty)."""

    definition: WorkflowDefinition | None
    issues: list[ValidationIssue]
    workflow_id: str | None
    nodes: list[NodeDefinition]
    entry_node_id: str | None
    broken: frozenset[str]
    no_nodes: bool


def parse_definition(
    definition: WorkflowDefinition | Mapping[str, Any] | str | bytes,
    limits: Limits = DEFAULT_LIMITS,
) -> WorkflowDefinition:
    """A ``WorkflowDefinition`` from a model, a dict or JSON text; clear errors otherwise.
    ``limits`` bound its size, node count and nesting (checked before anything else)."""
    loaded = load_definition(definition, limits)
    if loaded.definition is None:
        raise WorkflowValidationError(issues=loaded.issues, workflow_id=loaded.workflow_id)
    return loaded.definition


def load_definition(
    definition: WorkflowDefinition | Mapping[str, Any] | str | bytes,
    limits: Limits = DEFAULT_LIMITS,
) -> LoadedDefinition:
    """Like ``parse_definition``, but a definition whose fields are invalid is returned
    with its problems, not raised. Text that is not a JSON object, and a definition over
    the limits, are still raised at once: nothing more is read of them."""
    if isinstance(definition, WorkflowDefinition):
        checked = _within_limits(definition, limits)
        return LoadedDefinition(
            checked, [], checked.id, list(checked.nodes), checked.entry_node_id,
            frozenset(), not checked.nodes,
        )  # fmt: skip
    raw: Any = definition
    if isinstance(definition, str | bytes):
        try:
            check_size(definition, what="the definition", limit=limits.max_definition_bytes)
        except SerializationError as exc:
            raise _refused(exc.message, IssueKind.TOO_LARGE) from None
        try:
            raw = _json.loads(definition)
        except Exception as exc:
            raise _refused(
                f"the definition is not valid JSON: {exc}", IssueKind.INVALID_JSON
            ) from exc
    if not isinstance(raw, Mapping):
        raise _refused(
            f"a workflow definition must be an object, got {type(raw).__name__}",
            IssueKind.INVALID_JSON,
        )
    # A definition nests a few levels itself (nodes, a node, its config) on top of configs.
    if json_depth(raw, limits.max_depth + 4) > limits.max_depth + 4:
        raise _refused(
            f"the definition nests deeper than {limits.max_depth} levels in its configs",
            IssueKind.TOO_LARGE,
        )
    nodes = raw.get("nodes")
    if isinstance(nodes, list) and len(nodes) > limits.max_nodes:
        raise _refused(
            f"the workflow has {len(nodes)} nodes, over the limit of {limits.max_nodes}",
            IssueKind.TOO_LARGE,
        )
    try:
        parsed = _within_limits(WorkflowDefinition.model_validate(dict(raw)), limits)
    except ValidationError as exc:
        return _partly(raw, [_pydantic_issue(e, raw) for e in exc.errors()])
    return LoadedDefinition(
        parsed, [], parsed.id, list(parsed.nodes), parsed.entry_node_id,
        frozenset(), not parsed.nodes,
    )  # fmt: skip


def _partly(raw: Mapping[str, Any], issues: list[ValidationIssue]) -> LoadedDefinition:
    """The nodes of a definition with invalid fields that are valid on their own."""
    wid = raw.get("id") if isinstance(raw.get("id"), str) else None
    raw_nodes = raw.get("nodes")
    nodes: list[NodeDefinition] = []
    broken: set[str] = set()
    for item in raw_nodes if isinstance(raw_nodes, list) else ():
        try:
            nodes.append(NodeDefinition.model_validate(item))
        except ValidationError:
            if isinstance(item, Mapping) and isinstance(item.get("id"), str):
                broken.add(item["id"])
    entry = raw.get("entryNodeId", raw.get("entry_node_id"))
    entry_is_bad = any(
        i.node_id is None and i.path[:1] in (("entryNodeId",), ("entry_node_id",)) for i in issues
    )
    return LoadedDefinition(
        None,
        issues,
        wid,
        nodes,
        entry if isinstance(entry, str) and not entry_is_bad else None,
        frozenset(broken),
        raw_nodes == [],
    )


def _refused(message: str, kind: IssueKind) -> WorkflowValidationError:
    return WorkflowValidationError(message, issues=[ValidationIssue(message, kind=kind)])


def _within_limits(definition: WorkflowDefinition, limits: Limits) -> WorkflowDefinition:
    if len(definition.nodes) > limits.max_nodes:
        message = (
            f"the workflow has {len(definition.nodes)} nodes, over the limit of {limits.max_nodes}"
        )
        raise WorkflowValidationError(
            message,
            issues=[ValidationIssue(message, kind=IssueKind.TOO_LARGE)],
            workflow_id=definition.id,
        )
    try:
        check_size(
            definition.model_dump_json(by_alias=True),
            what="the definition",
            limit=limits.max_definition_bytes,
        )
    except SerializationError as exc:
        raise WorkflowValidationError(
            exc.message,
            issues=[ValidationIssue(exc.message, kind=IssueKind.TOO_LARGE)],
            workflow_id=definition.id,
        ) from None
    return definition


def _pydantic_issue(err: Any, raw: Mapping[str, Any]) -> ValidationIssue:
    loc = [str(p) for p in err["loc"]]
    where = ".".join(loc) or "definition"
    # Name the node rather than its index: nodes.2.type -> node 'fetch': type
    if len(loc) >= 2 and loc[0] == "nodes" and isinstance(err["loc"][1], int):
        index = err["loc"][1]
        nodes = raw.get("nodes")
        if isinstance(nodes, list) and index < len(nodes) and isinstance(nodes[index], dict):
            node_id = nodes[index].get("id")
            if isinstance(node_id, str):
                rest = ".".join(loc[2:]) or "node"
                return ValidationIssue(
                    f"node {node_id!r}: {rest}: {err['msg']}", node_id, tuple(loc[2:])
                )
    if loc == ["id"]:
        return ValidationIssue(
            f"id: {err['msg']} (workflow ids are lowercase letters, digits, '-' and '_')",
            path=("id",),
        )
    return ValidationIssue(f"{where}: {err['msg']}", path=tuple(loc))
