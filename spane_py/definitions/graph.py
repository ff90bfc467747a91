"""Graph checks for workflow definitions, and the compiled graph the planner walks.

``compile_workflow`` normalises a definition (a node that omits ``inputs`` or ``outputs``
gets them derived from its neighbours), checks it, and returns a ``WorkflowGraph``.
Problems are collected and raised together as one ``WorkflowValidationError``;
unreachable nodes are only warnings.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from spane_py.definitions.models import NodeDefinition, WorkflowDefinition
from spane_py.errors import ValidationIssue, WorkflowValidationError


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


def content_hash(definition: WorkflowDefinition) -> str:
    """Stable hash of a (normalised) definition: equal definitions, equal hashes."""
    canonical = json.dumps(
        definition.model_dump(mode="json"), sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def compile_workflow(definition: WorkflowDefinition) -> WorkflowGraph:
    issues: list[ValidationIssue] = []
    wid = definition.id

    if not definition.nodes:
        raise WorkflowValidationError(
            issues=[ValidationIssue("the workflow has no nodes")], workflow_id=wid
        )

    by_id: dict[str, NodeDefinition] = {}
    for node in definition.nodes:
        if node.id in by_id:
            issues.append(ValidationIssue(f"duplicate node id {node.id!r}", node_id=node.id))
        else:
            by_id[node.id] = node

    for node in definition.nodes:
        for kind in ("inputs", "outputs"):
            refs: list[str] = getattr(node, kind)
            seen: set[str] = set()
            for ref in refs:
                if ref == node.id:
                    issues.append(
                        ValidationIssue(f"node {node.id!r} lists itself in its {kind}", node.id)
                    )
                elif ref not in by_id:
                    issues.append(
                        ValidationIssue(
                            f"node {node.id!r} lists {ref!r} in its {kind}, "
                            f"but there is no node {ref!r}",
                            node.id,
                        )
                    )
                if ref in seen:
                    issues.append(ValidationIssue(f"node {node.id!r} lists {ref!r} twice", node.id))
                seen.add(ref)
    if issues:
        raise WorkflowValidationError(issues=issues, workflow_id=wid)

    # Edges: a node that omits inputs (or outputs) entirely gets them from its neighbours;
    # where both ends are written they must agree.
    edges: set[tuple[str, str]] = set()
    for node in definition.nodes:
        edges.update((node.id, child) for child in node.outputs)
        edges.update((parent, node.id) for parent in node.inputs)
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
                )
            )
        if in_inputs and not in_outputs and "outputs" in p.model_fields_set:
            issues.append(
                ValidationIssue(
                    f"node {child!r} lists {parent!r} in its inputs, "
                    f"but {parent!r} does not list {child!r} in its outputs",
                    parent,
                )
            )
    if issues:
        raise WorkflowValidationError(issues=issues, workflow_id=wid)

    order = tuple(by_id)
    parents = {n: tuple(p for p in order if (p, n) in edges) for n in order}
    children = {n: tuple(c for c in order if (n, c) in edges) for n in order}
    # Keep each node's own listing order where it wrote one.
    for n, node in by_id.items():
        if node.inputs:
            parents[n] = tuple(node.inputs) + tuple(p for p in parents[n] if p not in node.inputs)
        if node.outputs:
            children[n] = tuple(node.outputs) + tuple(
                c for c in children[n] if c not in node.outputs
            )

    cycle = _find_cycle(order, children)
    if cycle:
        raise WorkflowValidationError(
            issues=[ValidationIssue("cycle detected: " + " -> ".join(cycle), cycle[0])],
            workflow_id=wid,
        )

    if definition.entry_node_id is not None:
        if definition.entry_node_id not in by_id:
            raise WorkflowValidationError(
                issues=[
                    ValidationIssue(
                        f"entry node {definition.entry_node_id!r} is not a node of the workflow"
                    )
                ],
                workflow_id=wid,
            )
        entries: tuple[str, ...] = (definition.entry_node_id,)
    else:
        entries = tuple(n for n in order if not parents[n])
        if not entries:  # pragma: no cover - a DAG always has a root; kept for clarity
            raise WorkflowValidationError(
                issues=[ValidationIssue("no entry node: every node has inputs")],
                workflow_id=wid,
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
