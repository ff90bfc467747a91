"""Checking a definition in full: its fields, its graph and its nodes, every problem at once.

``validate_workflow`` is what ``register_workflow`` runs. It reads the definition
(``load_definition``), checks the graph (``graph_issues`` / ``compile_workflow``) and hands
the nodes to ``check_nodes`` (the registry: node types and their configs). A problem never
hides another: a node whose own fields are invalid is left out of the later checks, and the
rest is still checked. Everything found is raised together as one error
(``spane_py.errors.invalid_workflow``). Text that is not a JSON object and a definition over
the limits are the exceptions: they are refused at once, alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from spane_py.definitions.graph import WorkflowGraph, compile_workflow, graph_issues
from spane_py.definitions.loading import load_definition
from spane_py.definitions.models import NodeDefinition, WorkflowDefinition
from spane_py.errors import ValidationIssue, invalid_workflow
from spane_py.limits import DEFAULT_LIMITS, Limits

NodeCheck = Callable[[Sequence[NodeDefinition]], list[ValidationIssue]]


def validate_workflow(
    definition: WorkflowDefinition | Mapping[str, Any] | str | bytes,
    limits: Limits = DEFAULT_LIMITS,
    check_nodes: NodeCheck | None = None,
) -> WorkflowGraph:
    """The compiled graph of ``definition``, or one ``WorkflowValidationError`` (a
    ``NodeNotRegisteredError`` when every problem is an unregistered node type) listing
    every problem: of the fields first, then of the graph, then of the nodes."""
    loaded = load_definition(definition, limits)
    node_issues = check_nodes(loaded.nodes) if check_nodes is not None else []
    if loaded.definition is not None:
        return compile_workflow(loaded.definition, also=node_issues)
    issues = [
        *loaded.issues,
        *graph_issues(
            loaded.nodes,
            loaded.entry_node_id,
            broken=loaded.broken,
            require_nodes=loaded.no_nodes,
        ),
        *node_issues,
    ]
    raise invalid_workflow(issues, loaded.workflow_id)
