"""Graph checks for workflow definitions, and the compiled graph the planner walks.

``compile_workflow`` normalises a definition (a node that omits ``inputs`` or ``outputs``
gets them derived from its neighbours), checks it, and returns a ``WorkflowGraph``.
Every problem is collected (a problem never hides another: edges to unknown nodes are left
out of the cycle check, not a reason to skip it) and raised together as one
``WorkflowValidationError``; unreachable nodes are only warnings.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from spane_py.definitions.models import NodeDefinition, WorkflowDefinition
from spane_py.errors import IssueKind, ValidationIssue, invalid_workflow


@dataclass(frozen=True, slots=True)
class WorkflowGraph:
    """A checked definition with its edges indexed. Immutable; shared between executions."""

    definition: WorkflowDefinition
    nodes: dict[str, NodeDefinition]
    parents: dict[str, tuple[str, ...]]
    children: dict[str, tuple[str, ...]]
    entry_nodes: tuple[str, ...]
    reachable: frozenset[str]
    warnings: tuple[str, ...] = ()
    content_hash: str = ""
    order: tuple[str, ...] = field(default=())

    @property
    def workflow_id(self) -> str:
        return self.definition.id

    @property
    def unreachable(self) -> tuple[str, ...]:
        return tuple(n for n in self.order if n not in self.reachable)


_LATER_FIELDS = ("queue", "concurrency", "retention")


def _drop_unset(data: dict[str, Any], names: tuple[str, ...]) -> None:
    for name in names:
        if data.get(name, 0) is None:
            del data[name]


def content_hash(definition: WorkflowDefinition) -> str:
    """Stable hash of a (normalised) definition: equal definitions, equal hashes."""
    data = definition.model_dump(mode="json")
    # Fields added since the first release hash as if absent while unset: a definition
    # registered again after an upgrade keeps its version.
    _drop_unset(data, _LATER_FIELDS)
    for node in data["nodes"]:
        _drop_unset(node, _LATER_FIELDS)
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class _Structure:
    """The edges of the well-formed part of a definition, for the checks and the graph."""

    by_id: dict[str, NodeDefinition]
    order: tuple[str, ...]
    parents: dict[str, tuple[str, ...]]
    children: dict[str, tuple[str, ...]]


def graph_issues(
    nodes: Sequence[NodeDefinition],
    entry_node_id: str | None,
    *,
    broken: frozenset[str] = frozenset(),
    require_nodes: bool = True,
) -> list[ValidationIssue]:
    """Every problem of the graph of ``nodes``: duplicate ids, bad references, edges whose
    two sides disagree, cycles (one per group of nodes that reach each other) and an unknown
    entry node. ``broken``: ids of nodes left out because their own fields are invalid
    (already reported); references to them are not reported again."""
    return _check(nodes, entry_node_id, broken=broken, require_nodes=require_nodes)[0]


def compile_workflow(
    definition: WorkflowDefinition, *, also: Sequence[ValidationIssue] = ()
) -> WorkflowGraph:
    """Check ``definition`` and compile it; one ``WorkflowValidationError`` (or
    ``NodeNotRegisteredError``) lists every problem of the graph, then those of ``also``."""
    issues, structure = _check(definition.nodes, definition.entry_node_id)
    issues.extend(also)
    if issues:
        raise invalid_workflow(issues, definition.id)
    by_id, order = structure.by_id, structure.order
    parents, children = structure.parents, structure.children
    entries = (
        (definition.entry_node_id,)
        if definition.entry_node_id is not None
        else tuple(n for n in order if not parents[n])
    )
    reachable = _reachable(entries, children)
    warnings = tuple(
        f"node {n!r} is not reachable from the entry node and will be skipped"
        for n in order
        if n not in reachable
    )

    normalized = definition.model_copy(
        update={
            "nodes": [
                by_id[n].model_copy(
                    update={"inputs": list(parents[n]), "outputs": list(children[n])}
                )
                for n in order
            ]
        }
    )
    return WorkflowGraph(
        definition=normalized,
        nodes={n.id: n for n in normalized.nodes},
        parents=parents,
        children=children,
        entry_nodes=entries,
        reachable=frozenset(reachable),
        warnings=warnings,
        content_hash=content_hash(normalized),
        order=order,
    )


def _check(
    nodes: Sequence[NodeDefinition],
    entry_node_id: str | None,
    *,
    broken: frozenset[str] = frozenset(),
    require_nodes: bool = True,
) -> tuple[list[ValidationIssue], _Structure]:
    issues: list[ValidationIssue] = []
    if not nodes and require_nodes:
        issues.append(ValidationIssue("the workflow has no nodes", kind=IssueKind.NO_NODES))

    by_id: dict[str, NodeDefinition] = {}
    for node in nodes:
        if node.id in by_id:
            issues.append(
                ValidationIssue(
                    f"duplicate node id {node.id!r}",
                    node_id=node.id,
                    kind=IssueKind.DUPLICATE_NODE_ID,
                )
            )
        else:
            by_id[node.id] = node

    for node in nodes:
        for side in ("inputs", "outputs"):
            refs: list[str] = getattr(node, side)
            seen: set[str] = set()
            for ref in refs:
                edge = (ref, node.id) if side == "inputs" else (node.id, ref)
                if ref == node.id:
                    issues.append(
                        ValidationIssue(
                            f"node {node.id!r} lists itself in its {side}",
                            node.id,
                            (side,),
                            IssueKind.SELF_REFERENCE,
                            edge,
                        )
                    )
                elif ref not in by_id and ref not in broken:
                    issues.append(
                        ValidationIssue(
                            f"node {node.id!r} lists {ref!r} in its {side}, "
                            f"but there is no node {ref!r}",
                            node.id,
                            (side,),
                            IssueKind.UNKNOWN_REFERENCE,
                            edge,
                        )
                    )
                if ref in seen:
                    issues.append(
                        ValidationIssue(
                            f"node {node.id!r} lists {ref!r} twice",
                            node.id,
                            (side,),
                            IssueKind.DUPLICATE_REFERENCE,
                            edge,
                        )
                    )
                seen.add(ref)

    # Edges between known nodes (a duplicate id counts once, as its first node): a node that
    # omits inputs (or outputs) entirely gets them from its neighbours; where both ends are
    # written they must agree.
    edges: set[tuple[str, str]] = set()
    for node in by_id.values():
        edges.update((node.id, child) for child in node.outputs if child in by_id)
        edges.update((parent, node.id) for parent in node.inputs if parent in by_id)
    edges = {(p, c) for p, c in edges if p != c}
    for parent, child in sorted(edges):
        p, c = by_id[parent], by_id[child]
        in_outputs = child in p.outputs
        in_inputs = parent in c.inputs
        if in_outputs and not in_inputs and "inputs" in c.model_fields_set:
            issues.append(
                ValidationIssue(
                    f"node {parent!r} lists {child!r} in its outputs, "
                    f"but {child!r} does not list {parent!r} in its inputs",
                    child,
                    ("inputs",),
                    IssueKind.EDGE_MISMATCH,
                    (parent, child),
                )
            )
        if in_inputs and not in_outputs and "outputs" in p.model_fields_set:
            issues.append(
                ValidationIssue(
                    f"node {child!r} lists {parent!r} in its inputs, "
                    f"but {parent!r} does not list {child!r} in its outputs",
                    parent,
                    ("outputs",),
                    IssueKind.EDGE_MISMATCH,
                    (parent, child),
                )
            )

    order = tuple(by_id)
    parents = {n: tuple(p for p in order if (p, n) in edges) for n in order}
    children = {n: tuple(c for c in order if (n, c) in edges) for n in order}
    # Keep each node's own listing order where it wrote one.
    for n, node in by_id.items():
        if node.inputs:
            own = tuple(p for p in node.inputs if p in parents[n])
            parents[n] = own + tuple(p for p in parents[n] if p not in own)
        if node.outputs:
            own = tuple(c for c in node.outputs if c in children[n])
            children[n] = own + tuple(c for c in children[n] if c not in own)

    for cycle in _cycles(order, children):
        issues.append(
            ValidationIssue(
                "cycle detected: " + " -> ".join(cycle),
                cycle[0],
                kind=IssueKind.CYCLE,
                edge=(cycle[-2], cycle[-1]),
            )
        )

    if entry_node_id is not None and entry_node_id not in by_id and entry_node_id not in broken:
        issues.append(
            ValidationIssue(
                f"entry node {entry_node_id!r} is not a node of the workflow",
                path=("entryNodeId",),
                kind=IssueKind.UNKNOWN_ENTRY_NODE,
            )
        )
    return issues, _Structure(by_id, order, parents, children)


def _cycles(order: tuple[str, ...], children: dict[str, tuple[str, ...]]) -> list[list[str]]:
    """One cycle for each group of nodes that all reach each other (a strongly connected
    component of more than one node), in the order of the group's first node."""
    cycles = []
    for group in _strong_components(order, children):
        if len(group) < 2:
            continue
        members = set(group)
        inside = {n: tuple(c for c in children[n] if c in members) for n in group}
        cycles.append(_find_cycle(tuple(group), inside))
    return cycles


def _strong_components(
    order: tuple[str, ...], children: dict[str, tuple[str, ...]]
) -> list[list[str]]:
    """Kosaraju's algorithm, iteratively: each component's nodes in ``order``, the
    components sorted by their first node's position in ``order``."""
    position = {n: i for i, n in enumerate(order)}
    finished: list[str] = []
    seen: set[str] = set()
    for root in order:
        if root in seen:
            continue
        seen.add(root)
        stack: list[tuple[str, int]] = [(root, 0)]
        while stack:
            node, i = stack[-1]
            kids = children[node]
            if i < len(kids):
                stack[-1] = (node, i + 1)
                if kids[i] not in seen:
                    seen.add(kids[i])
                    stack.append((kids[i], 0))
            else:
                finished.append(node)
                stack.pop()
    parents: dict[str, list[str]] = {n: [] for n in order}
    for n in order:
        for c in children[n]:
            parents[c].append(n)
    assigned: set[str] = set()
    components: list[list[str]] = []
    for root in reversed(finished):
        if root in assigned:
            continue
        assigned.add(root)
        component = [root]
        todo = [root]
        while todo:
            for p in parents[todo.pop()]:
                if p not in assigned:
                    assigned.add(p)
                    component.append(p)
                    todo.append(p)
        components.append(sorted(component, key=position.__getitem__))
    return sorted(components, key=lambda c: position[c[0]])


def _find_cycle(order: tuple[str, ...], children: dict[str, tuple[str, ...]]) -> list[str]:
    white, grey, black = 0, 1, 2
    colour = dict.fromkeys(order, white)
    for root in order:
        if colour[root] != white:
            continue
        stack: list[tuple[str, int]] = [(root, 0)]
        path: list[str] = [root]
        colour[root] = grey
        while stack:
            node, i = stack[-1]
            kids = children[node]
            if i < len(kids):
                stack[-1] = (node, i + 1)
                kid = kids[i]
                if colour[kid] == grey:
                    return [*path[path.index(kid) :], kid]
                if colour[kid] == white:
                    colour[kid] = grey
                    stack.append((kid, 0))
                    path.append(kid)
            else:
                colour[node] = black
                stack.pop()
                path.pop()
    return []


def _reachable(entries: tuple[str, ...], children: dict[str, tuple[str, ...]]) -> set[str]:
    seen: set[str] = set()
    todo = list(entries)
    while todo:
        n = todo.pop()
        if n not in seen:
            seen.add(n)
            todo.extend(children[n])
    return seen
