"""The ``sub-workflow`` node: starts a child execution and waits for it without holding a
worker; its data is the child's output (``ExecutionState.output``: its final node's data;
several: ``{node_id: data}``), mapped."""

from __future__ import annotations

from typing import Any, ClassVar

from spane_py import _json
from spane_py.definitions.builtin_configs import (
    MAX_DEPTH,
    SUB_WORKFLOW,
    SubWorkflowConfig,
    apply_mapping,
)
from spane_py.engine import planner, starting
from spane_py.engine.attempt import Attempt
from spane_py.engine.builtin_base import Services, Step, suspend
from spane_py.engine.dataflow import final_output
from spane_py.engine.ids import new_execution_id
from spane_py.errors import MaxDepthExceededError, StatePersistenceError
from spane_py.observability.trace_ids import TRACEPARENT, child_traceparent
from spane_py.state import ExecutionStatus, NodeStatus


class SubWorkflowNode:
    name: ClassVar[str] = SUB_WORKFLOW
    waits_for: ClassVar[str] = "child"

    def __init__(self, services: Services) -> None:
        self.services = services

    async def begin(self, attempt: Attempt) -> Step:
        config = SubWorkflowConfig.model_validate(attempt.node.config)
        parent = attempt.started.execution
        ctx = attempt.ctx
        if parent.depth + 1 > MAX_DEPTH:
            raise MaxDepthExceededError(
                f"node {ctx.node_id!r} would start workflow {config.workflow_id!r} at depth "
                f"{parent.depth + 1}; sub-workflows nest at most {MAX_DEPTH} deep",
                execution_id=ctx.execution_id,
                node_id=ctx.node_id,
                workflow_id=ctx.workflow_id,
            )
        start = await self._prepare_child(attempt, config)  # unknown workflow: fails here
        child_id = new_execution_id()
        wait = {"kind": "child", "child": child_id, "workflow_id": config.workflow_id}
        if not await suspend(self.services, attempt, wake_at=None, wait=wait, wait_child=child_id):
            return None
        await self._create_child(attempt, config, start, child_id)
        return None

    async def _prepare_child(self, attempt: Attempt, config: SubWorkflowConfig) -> starting.Start:
        parent = attempt.started.execution
        return await starting.prepare(
            self.services.cache,
            config.workflow_id,
            priority=parent.priority,
            delay=0,
            clock=self.services.clock,
            routes=self.services.routes,
            metadata={
                "parent_node_id": attempt.node.id,
                # The child's spans join this trace, under this attempt's span.
                TRACEPARENT: child_traceparent(
                    parent.execution_id,
                    parent.metadata,
                    attempt.node.id,
                    attempt.job.generation,
                    attempt.ctx.attempt,
                ),
            },
        )

    async def _create_child(
        self, attempt: Attempt, config: SubWorkflowConfig, start: starting.Start, child_id: str
    ) -> None:
        ctx = attempt.ctx
        initial = _json.dumps(
            apply_mapping(ctx.input_data, config.input_mapping),
            what=f"the input of sub-workflow node {ctx.node_id!r}",
        )
        now = self.services.clock.now()
        record = start.record(
            initial,
            now,
            None,
            execution_id=child_id,
            parent=attempt.started.execution,
            parent_node_id=ctx.node_id,
        )
        try:
            await self.services.store.create_execution(record, start.first_nodes(now))
        except StatePersistenceError:
            if await self.services.store.get_execution(child_id) is None:
                raise
            return  # created by an earlier delivery of this job
        await start.send_entry_jobs(self.services.queue, [record], self.services.admit)

    async def wake(self, attempt: Attempt, info: dict[str, Any]) -> Step:
        config = SubWorkflowConfig.model_validate(attempt.node.config)
        child_id = str(info.get("child"))
        snap = await self.services.store.get_snapshot(child_id)
        if snap is None:
            # The process that suspended the node died before creating the child.
            start = await self._prepare_child(attempt, config)
            await self._create_child(attempt, config, start, child_id)
            return None
        child = snap.execution
        if not child.status.is_terminal:
            return None  # the child's end sends this job again
        if child.status is ExecutionStatus.COMPLETED:
            # The child's output (dataflow.final_output), stored when it completed; a child
            # completed before outputs were stored (schema 0005) has it computed here.
            text = child.output
            if text is None:
                graph = await self.services.cache.get(child.workflow_id, child.workflow_version)
                text = final_output(graph, snap.nodes)
            output = _json.loads(text)
            data = apply_mapping(output, config.output_mapping)
            return planner.NodeOutcome(NodeStatus.SUCCEEDED, output=_json.dumps(data))
        error = (
            f"sub-workflow {child.workflow_id!r} (execution {child.execution_id}) "
            f"{child.status.value}: {child.error or 'no error recorded'}"
        )
        if config.continue_on_fail:
            data = {"error": error, "continued_on_fail": True, "execution_id": child_id}
            return planner.NodeOutcome(NodeStatus.SUCCEEDED, output=_json.dumps(data), error=error)
        return planner.NodeOutcome(NodeStatus.FAILED, error=error)
