"""Which queue a node's jobs go to: the node's own ``queue`` in its definition, else its
type's (``NodeRegistry.register(queue=)`` or ``route``), else its workflow's, else
``default``. An execution's deadline rides with its first entry node."""

from __future__ import annotations

from spane_py._queue_names import DEFAULT_QUEUE
from spane_py.definitions.graph import WorkflowGraph
from spane_py.registry import NodeRegistry


class Routes:
    """The queue of each node, by this process's registry."""

    def __init__(self, registry: NodeRegistry) -> None:
        self.registry = registry

    def node(self, graph: WorkflowGraph, node_id: str) -> str:
        node = graph.nodes[node_id]
        if node.queue is not None:
            return node.queue
        typed = self.registry.queue_of(node.type)
        if typed is not None:
            return typed
        return graph.definition.queue or DEFAULT_QUEUE

    def deadline(self, graph: WorkflowGraph) -> str:
        """The queue of an execution's deadline job: its first entry node's (a worker that
        starts the execution can end it)."""
        return self.node(graph, graph.entry_nodes[0])
