"""``/api/approvals``: what waits for a person — every ``wait`` node waiting for its resume
token, with the token, its execution, when the wait times out and the input to decide on.

One read per execution over ``GET /api/resume-tokens``: a token is listed only while its
node still waits for it (its execution not ended, the node waiting in the same
generation), so a cancelled execution's token drops out although it is not expired.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from spane_py.api import ops_models
from spane_py.api.deps import Engine
from spane_py.definitions.builtin_configs import WAIT, WaitConfig
from spane_py.definitions.graph import WorkflowGraph
from spane_py.engine import planner
from spane_py.errors import WorkflowNotFoundError
from spane_py.records import ExecutionSnapshot, ResumeTokenRecord
from spane_py.state import NodeStatus

router = APIRouter(tags=["resume tokens"])


@router.get("/approvals", response_model=list[ops_models.Approval], summary="List approvals")
async def list_approvals(
    engine: Engine,
    execution_id: Annotated[str | None, Query(max_length=100)] = None,
) -> list[ops_models.Approval]:
    """The nodes waiting for a resume token now (all executions, or ``execution_id``'s),
    oldest token first: resume one with ``POST /api/resume {"token", "data"}``."""
    tokens = await engine.list_resume_tokens(execution_id, active_only=True)
    snapshots: dict[str, ExecutionSnapshot | None] = {}
    graphs: dict[tuple[str, int], WorkflowGraph | None] = {}
    out = []
    for token in tokens:
        if token.execution_id not in snapshots:
            snapshots[token.execution_id] = await engine.store.get_snapshot(token.execution_id)
        snapshot = snapshots[token.execution_id]
        if snapshot is None or snapshot.execution.status.is_terminal:
            continue
        node = snapshot.nodes.get(token.node_id)
        if node is None or node.status is not NodeStatus.WAITING:
            continue
        if node.generation != token.generation:
            continue  # a token of an earlier run of the node
        key = (snapshot.execution.workflow_id, snapshot.execution.workflow_version)
        if key not in graphs:
            try:
                graphs[key] = await engine.cache.get(*key)
            except WorkflowNotFoundError:
                graphs[key] = None  # the in-memory store may have dropped the version
        out.append(_approval(token, snapshot, graphs[key]))
    return out


def _approval(
    token: ResumeTokenRecord, snapshot: ExecutionSnapshot, graph: WorkflowGraph | None
) -> ops_models.Approval:
    execution = snapshot.execution
    node = snapshot.nodes[token.node_id]
    approval = ops_models.Approval(
        token=token.token,
        token_created_at=token.created_at,
        token_expires_at=token.expires_at,
        execution_id=execution.execution_id,
        workflow_id=execution.workflow_id,
        workflow_version=execution.workflow_version,
        execution_status=execution.status,
        execution_created_at=execution.created_at,
        node_id=token.node_id,
        waiting_since=node.started_at,
        times_out_at=node.wake_at,
    )
    definition = graph.nodes.get(token.node_id) if graph is not None else None
    if graph is None or definition is None:
        return approval
    approval.node_name = definition.name
    approval.node_description = definition.description
    approval.input = planner.node_input(graph, token.node_id, execution, dict(snapshot.nodes))
    if definition.type == WAIT:
        config = WaitConfig.model_validate(definition.config)
        if config.timeout_s is not None:
            approval.on_timeout = config.on_timeout
            if config.on_timeout == "continue":
                approval.default_output = config.default_output
    return approval


__all__ = ["router"]
