"""``Attempt``: one run of one node, from its start decision to its result — what the
runner and the built-in node types share about it (its job, graph, context and start) —
and ``node_context``, the context its executor is given."""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from datetime import datetime

from spane_py.artifacts import Artifacts
from spane_py.clock import SYSTEM_CLOCK, Clock
from spane_py.context import ExecutionContext
from spane_py.definitions.graph import WorkflowGraph
from spane_py.definitions.models import NodeDefinition
from spane_py.engine import dataflow, spans
from spane_py.engine.decisions import Started
from spane_py.observability import events
from spane_py.queue.jobs import NodeJob
from spane_py.records import SpanRecord

# Names the process in spans: host and pid.
WORKER_ID = f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True, slots=True)
class Attempt:
    """One run of one node, from its start decision to its result."""

    job: NodeJob
    graph: WorkflowGraph
    node: NodeDefinition
    ctx: ExecutionContext
    started: Started  # the start decision (Run, or Wake for a waiting node)
    started_at: datetime
    clock: Clock = SYSTEM_CLOCK  # the engine's

    def span(
        self, status: str, *, error: str | None = None, traceback: str | None = None
    ) -> SpanRecord:
        """This attempt as a span of the execution's trace, ending now. A node whose wait
        ends here (due, timed out, its child ended) spans its wait, marked so. Announced
        (``emit_span``) only once the store has recorded it."""
        ctx = self.ctx
        # Ended here, an event wait timed out: a resume ends it in Control.resume_token.
        waited = spans.wait_attributes(
            spans.wait_kind(self.started.nodes.get(ctx.node_id)), resumed=False
        )
        span = spans.node_span(
            ctx.execution_id,
            ctx.node_id,
            node=self.node,
            generation=self.job.generation,
            attempt=ctx.attempt,
            status=status,
            started_at=self.started_at,
            ended_at=self.clock.now(),
            workflow_version=self.job.workflow_version,
            worker_id=WORKER_ID,
            error=error,
            traceback=traceback,
            extra=waited,
        )
        return span

    def emit_span(self, span: SpanRecord) -> None:
        events.emit(events.NODE_SPAN, logging.DEBUG, span=span, execution=self.started.execution)


def node_context(
    job: NodeJob,
    graph: WorkflowGraph,
    node: NodeDefinition,
    started: Started,
    artifacts: Artifacts | None,
) -> ExecutionContext:
    """The context of a node about to run (or wake), built from its start decision."""
    execution = started.execution
    return ExecutionContext(
        workflow_id=job.workflow_id,
        execution_id=job.execution_id,
        node=node,
        input_data=dataflow.node_input(graph, node.id, execution, started.nodes),
        records=started.nodes,
        parent_ids=graph.parents[node.id],
        workflow_version=job.workflow_version,
        parent_execution_id=execution.parent_execution_id,
        depth=execution.depth,
        attempt=started.attempt,
        metadata=execution.metadata,
        initial_data=execution.initial_data,
        artifacts=artifacts,
    )
