"""``WorkflowEngine``: the facade users hold — register, enqueue, run workers, wait, query."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from spane_py._text import check_argument
from spane_py.artifacts import name_problem
from spane_py.definitions.models import WorkflowDefinition
from spane_py.engine.control import BulkResult, check_token
from spane_py.engine.core import EngineCore, RegisteredWorkflow, WorkflowSource
from spane_py.engine.observe_methods import ObserveMethods
from spane_py.engine.observing import scoped
from spane_py.engine.states import to_artifact, to_log, to_span, to_state
from spane_py.engine.trigger_methods import TriggerMethods
from spane_py.engine.worker_methods import WorkerMethods
from spane_py.errors import (
    ArtifactNotFoundError,
    ExecutionNotFoundError,
    ExecutionWaitTimeoutError,
    InvalidEnqueueOptionsError,
    WorkflowNotFoundError,
)
from spane_py.execution_search import FieldMatch
from spane_py.records import DlqRecord, ExecutionPage, ResumeTokenRecord, WorkflowVersionRecord
from spane_py.state import (
    Artifact,
    ArtifactInfo,
    ExecutionState,
    ExecutionStatus,
    ExecutionTrace,
)

__all__ = ["RegisteredWorkflow", "WorkflowEngine", "WorkflowSource"]


class WorkflowEngine(WorkerMethods, TriggerMethods, ObserveMethods, EngineCore):
    """Registers workflows, enqueues executions, runs workers and answers queries.

    ``redis_url`` defaults to ``$REDIS_URL``; with neither, an embedded Redis is started for
    this engine and stopped by ``close()``. ``store`` defaults to a fresh in-memory store;
    ``start()`` starts it and ``close()`` closes it (``close_store=False`` to keep it open).
    Use as ``async with WorkflowEngine(registry) as engine: ...``. ``producer_only=True``:
    an engine that registers and enqueues workflows whose executors are only in the
    workers (node types are not looked up in ``registry``) and runs no worker.

    Observability (docs/observability.md): every process publishes its events to the
    stream ``engine.subscribe`` reads (``event_stream=False``: not this one) and, with
    ``event_history=True``, records them in the store's event history, read with
    ``get_events``; metrics are counted per engine (``metrics_text``, and ``/metrics`` on
    ``metrics_port``); ``tracing`` (True: the global OpenTelemetry tracer provider, or a
    provider) exports a span per node attempt and per execution.
    """

    async def list_workflows(
        self, *, active_only: bool = True, limit: int = 100, offset: int = 0
    ) -> list[WorkflowVersionRecord]:
        """Registered workflows (latest version of each), ordered by id."""
        await self.store.start()
        return await self.store.list_workflows(active_only=active_only, limit=limit, offset=offset)

    async def list_workflow_versions(self, workflow_id: str) -> list[WorkflowVersionRecord]:
        check_argument("workflow_id", workflow_id)
        await self.store.start()
        return await self.store.list_workflow_versions(workflow_id)

    async def get_workflow(
        self, workflow_id: str, version: int | None = None
    ) -> WorkflowDefinition:
        check_argument("workflow_id", workflow_id)
        await self.store.start()
        record = await self.store.get_workflow(workflow_id, version)
        if record is None:
            what = f"version {version} of workflow" if version is not None else "workflow"
            raise WorkflowNotFoundError(
                f"{what} {workflow_id!r} is not registered", workflow_id=workflow_id
            )
        return record.definition

    async def schedule_workflow(
        self,
        workflow_id: str,
        initial_data: Any = None,
        at: datetime | None = None,
        **options: Any,
    ) -> str:
        """Start an execution at ``at`` (a timezone-aware datetime; one in the past starts
        now). SPANE's ``scheduleWorkflow``; the other options are ``enqueue_workflow``'s."""
        if not isinstance(at, datetime) or at.tzinfo is None:
            raise InvalidEnqueueOptionsError(
                f"workflow {workflow_id!r}: schedule_workflow needs `at` as a timezone-aware "
                f"datetime, got {at!r}",
                workflow_id=str(workflow_id),
            )
        if "delay" in options:
            raise InvalidEnqueueOptionsError(
                f"workflow {workflow_id!r}: give schedule_workflow `at` or enqueue_workflow "
                "`delay`, not both",
                workflow_id=str(workflow_id),
            )
        delay = max((at - self.clock.now()).total_seconds(), 0.0)
        return await self.enqueue_workflow(workflow_id, initial_data, delay=delay, **options)

    async def run_workflow(
        self,
        workflow_id: str,
        initial_data: Any = None,
        *,
        timeout: float | None = 60.0,
        **options: Any,
    ) -> ExecutionState:
        """Enqueue and wait: the execution's final state."""
        execution_id = await self.enqueue_workflow(workflow_id, initial_data, **options)
        return await self.wait_for_execution(execution_id, timeout=timeout)

    async def get_execution(self, execution_id: str) -> ExecutionState:
        await self.store.start()
        snapshot = await self.store.get_snapshot(execution_id)
        if snapshot is None:
            raise ExecutionNotFoundError(
                f"execution {execution_id!r} does not exist", execution_id=execution_id
            )
        return to_state(snapshot.execution, snapshot.nodes)

    async def list_executions(
        self,
        *,
        workflow_id: str | None = None,
        status: ExecutionStatus | None = None,
        waiting: bool = False,
        id_prefix: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        where: Sequence[FieldMatch | str] = (),
        parent_ids: Sequence[str] | None = None,
        roots_only: bool = False,
        limit: int = 50,
        cursor: str | None = None,
    ) -> ExecutionPage:
        """Executions newest first, narrowed by each filter given: its workflow, status,
        ``waiting`` (running, with a node waiting: a timer, a person, a sub-workflow), a
        prefix of its id, its creation time (``since`` inclusive, ``until`` exclusive),
        ``where`` (equalities on its metadata or input: ``"metadata.tenant=acme"``,
        ``"input.customer_id=7"``, or ``FieldMatch`` objects; see
        ``spane_py.execution_search``), its parent (``parent_ids``) or none
        (``roots_only``). Pass a page's ``next_cursor`` as ``cursor`` for the next one:
        keyset pagination, as fast for the 50th page as for the first."""
        matches = [m if isinstance(m, FieldMatch) else FieldMatch.parse(m) for m in where]
        await self.store.start()
        return await self.store.list_executions(
            workflow_id=workflow_id,
            status=status,
            since=since,
            until=until,
            limit=limit,
            cursor=cursor,
            id_prefix=id_prefix,
            waiting=waiting,
            where=matches,
            parent_ids=parent_ids,
            roots_only=roots_only,
        )

    async def get_trace(self, execution_id: str) -> ExecutionTrace:
        """The execution, its nodes, one span per node attempt (oldest first), its log lines,
        its child executions (sub-workflows) and its artifacts, as one object."""
        execution = await self.get_execution(execution_id)
        spans = await self.store.get_spans(execution_id)
        logs = await self.store.get_logs(execution_id)
        artifacts = await self.store.list_artifacts(execution_id)
        children = []
        for child in await self.store.get_child_executions(execution_id):
            snap = await self.store.get_snapshot(child.execution_id)
            if snap is not None:
                children.append(to_state(snap.execution, snap.nodes))
        return ExecutionTrace(
            execution=execution,
            spans=[to_span(s) for s in spans],
            logs=[to_log(line) for line in logs],
            children=children,
            artifacts=[to_artifact(a) for a in artifacts],
        )

    async def get_artifact(self, execution_id: str, name: str) -> Artifact:
        """An execution's artifact with its bytes (``value()`` decodes one put as JSON);
        ``ArtifactNotFoundError`` when it has none of that name (docs/artifacts.md)."""
        check_argument("execution_id", execution_id)
        await self.store.start()
        found = None if name_problem(name) else await self.store.get_artifact(execution_id, name)
        if found is None:
            raise ArtifactNotFoundError(
                f"execution {execution_id!r} has no artifact {name!r}", execution_id=execution_id
            )
        record, data = found
        return Artifact(**to_artifact(record).model_dump(), data=data)

    async def list_artifacts(self, execution_id: str) -> list[ArtifactInfo]:
        """An execution's artifacts by name: node, content type, size, when put (no bytes).
        ``ExecutionNotFoundError`` for an unknown execution."""
        check_argument("execution_id", execution_id)
        await self.store.start()
        if await self.store.get_execution(execution_id) is None:
            raise ExecutionNotFoundError(
                f"execution {execution_id!r} does not exist", execution_id=execution_id
            )
        return [to_artifact(a) for a in await self.store.list_artifacts(execution_id)]

    async def wait_for_execution(
        self, execution_id: str, timeout: float | None = 60.0
    ) -> ExecutionState:
        """Wait until the execution completes, fails or is cancelled; its final state.

        Raises ``ExecutionWaitTimeoutError`` (a ``TimeoutError``) after ``timeout`` seconds.
        Works across processes: the store is checked again every so often.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        interval = 0.05
        notifier = self.notifier
        while True:
            fut = notifier.waiter(execution_id)
            try:
                state = await self.get_execution(execution_id)
                if state.status.is_terminal:
                    return state
                wait = interval
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise ExecutionWaitTimeoutError(
                            f"execution {execution_id!r} is still {state.status.value} after "
                            f"{timeout} s",
                            execution_id=execution_id,
                            workflow_id=state.workflow_id,
                        )
                    wait = min(wait, left)
                await asyncio.wait([fut], timeout=wait)
                interval = min(interval * 2, 1.0)
            finally:
                notifier.discard(execution_id, fut)

    @scoped
    async def pause_execution(self, execution_id: str) -> bool:
        """Stop starting new nodes of a running execution; running nodes finish. Returns
        False when it was paused already; refuses one that is not running."""
        await self.start()
        return await self.control.pause(execution_id)

    @scoped
    async def resume_execution(self, execution_id: str) -> bool:
        """Continue a paused execution exactly where it stopped."""
        await self.start()
        return await self.control.resume(execution_id)

    @scoped
    async def cancel_execution(self, execution_id: str, reason: str | None = None) -> bool:
        """Cancel a queued, running or paused execution and its sub-workflows: nothing more
        starts, running nodes see ``ctx.is_cancelled`` and are cancelled after
        ``cancel_grace_seconds``, the execution is marked cancelled."""
        check_argument("reason", reason, execution_id=execution_id)
        await self.start()
        return await self.control.cancel(execution_id, reason)

    @scoped
    async def pause_executions(self, execution_ids: Sequence[str]) -> BulkResult:
        await self.start()
        return await self.control.bulk(self.control.pause, execution_ids)

    @scoped
    async def resume_executions(self, execution_ids: Sequence[str]) -> BulkResult:
        await self.start()
        return await self.control.bulk(self.control.resume, execution_ids)

    @scoped
    async def cancel_executions(
        self, execution_ids: Sequence[str], reason: str | None = None
    ) -> BulkResult:
        check_argument("reason", reason)
        await self.start()

        async def cancel(execution_id: str) -> bool:
            return await self.control.cancel(execution_id, reason)

        return await self.control.bulk(cancel, execution_ids)

    @scoped
    async def retry_executions(self, execution_ids: Sequence[str]) -> BulkResult:
        """``retry_execution`` on each; one that refuses (not failed, unknown) is listed
        under ``errors`` and does not stop the others."""
        await self.start()

        async def retry(execution_id: str) -> bool:
            await self.control.retry(execution_id)
            return True

        return await self.control.bulk(retry, execution_ids)

    @scoped
    async def replay_executions(self, execution_ids: Sequence[str]) -> BulkResult:
        """``replay_execution`` on each; ``created`` maps each id to its new execution."""
        await self.start()
        result = BulkResult()

        async def replay(execution_id: str) -> bool:
            result.created[execution_id] = await self.replay_execution(execution_id)
            return True

        done = await self.control.bulk(replay, execution_ids)
        done.created.update(result.created)
        return done

    @scoped
    async def retry_execution(self, execution_id: str) -> None:
        """Re-run a failed execution from its failures, on its pinned version: failed nodes
        and what is downstream of them run again; results that succeeded are kept."""
        await self.start()
        await self.control.retry(execution_id)

    @scoped
    async def replay_execution(self, execution_id: str) -> str:
        """A new execution of the same workflow version with the same input; its metadata
        has ``replayed_from``. Returns the new execution's id."""
        await self.start()
        return await self.control.replay(execution_id, self.lifecycle.admit, self._parts().resender)

    @scoped
    async def resume(self, token: str, data: Any = None) -> str:
        """Complete the wait node waiting for ``token`` with ``data``; returns the
        execution id. A token works once; unknown, used, revoked or expired tokens raise
        ``ResumeTokenError`` (``details["reason"]`` says which)."""
        check_argument("token", token)
        await self.start()
        return await self.control.resume_token(token, data)

    async def validate_resume_token(self, token: str) -> ResumeTokenRecord:
        """The token's record if it can resume its node now; ``ResumeTokenError`` if not."""
        check_argument("token", token)
        await self.store.start()
        return await check_token(self.store, token, self.clock.now())

    async def list_resume_tokens(
        self, execution_id: str | None = None, *, active_only: bool = True
    ) -> list[ResumeTokenRecord]:
        check_argument("execution_id", execution_id)
        await self.store.start()
        return await self.store.list_tokens(
            execution_id=execution_id, active_only=active_only, now=self.clock.now()
        )

    async def revoke_resume_token(self, token: str) -> bool:
        """The token can no longer be used (its node keeps waiting, until its timeout or a
        cancel). False when it was unknown, used or revoked already."""
        check_argument("token", token)
        await self.store.start()
        return await self.store.revoke_token(token, self.clock.now())

    async def get_dlq_items(
        self, limit: int = 100, offset: int = 0, *, include_retried: bool = False
    ) -> list[DlqRecord]:
        """Nodes that failed for good, newest first (SPANE's ``getDLQItems``)."""
        await self.store.start()
        return await self.store.list_dlq_items(
            limit=limit, offset=offset, include_retried=include_retried
        )

    @scoped
    async def retry_dlq_item(self, dlq_id: int) -> DlqRecord:
        """Run the item's node again (and what follows it): its execution goes back to
        running and can complete."""
        await self.start()
        return await self.control.retry_dlq(dlq_id)

    async def purge_dlq(self, *, older_than: datetime | None = None) -> int:
        await self.store.start()
        return await self.store.purge_dlq(older_than=older_than)
