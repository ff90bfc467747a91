"""The in-memory store's versioned workflow definitions (``DefinitionStore``; a part of
``InMemoryExecutionStore``). Definitions are never forgotten."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from spane_py.definitions.models import WorkflowDefinition
from spane_py.records import SavedWorkflow, WorkflowVersionRecord
from spane_py.stores.memory_state import MemoryState, check_window, detach_version


class MemoryDefinitions(MemoryState):
    async def save_workflow(
        self, definition: WorkflowDefinition, *, content_hash: str, change_notes: str | None
    ) -> SavedWorkflow:
        versions = self._workflows.setdefault(definition.id, [])
        if versions and versions[-1].content_hash == content_hash:
            if not versions[-1].active:
                versions[:] = [replace(v, active=True) for v in versions]
            return SavedWorkflow(detach_version(versions[-1]), created=False)
        record = WorkflowVersionRecord(
            workflow_id=definition.id,
            version=len(versions) + 1,
            definition=definition.model_copy(deep=True),
            content_hash=content_hash,
            created_at=datetime.now(UTC),
            change_notes=change_notes,
        )
        if versions and not versions[-1].active:
            versions[:] = [replace(v, active=True) for v in versions]
        versions.append(record)
        return SavedWorkflow(detach_version(record), created=True)

    async def get_workflow(
        self, workflow_id: str, version: int | None = None
    ) -> WorkflowVersionRecord | None:
        versions = self._workflows.get(workflow_id)
        if not versions:
            return None
        if version is None:
            return detach_version(versions[-1]) if versions[-1].active else None
        if 1 <= version <= len(versions):
            return detach_version(versions[version - 1])
        return None

    async def get_workflow_version(self, workflow_id: str) -> int | None:
        versions = self._workflows.get(workflow_id)
        if not versions or not versions[-1].active:
            return None
        return versions[-1].version

    async def list_workflows(
        self, *, active_only: bool = True, limit: int = 100, offset: int = 0
    ) -> list[WorkflowVersionRecord]:
        check_window(limit=limit, offset=offset)
        latest = self._latest_versions(active_only)
        return [detach_version(r) for r in latest[offset : offset + limit]]

    async def list_workflow_versions(self, workflow_id: str) -> list[WorkflowVersionRecord]:
        return [detach_version(v) for v in self._workflows.get(workflow_id, [])]

    async def deactivate_workflow(self, workflow_id: str) -> bool:
        versions = self._workflows.get(workflow_id)
        if not versions or not versions[-1].active:
            return False
        versions[:] = [replace(v, active=False) for v in versions]
        return True

    async def get_workflow_count(self, *, active_only: bool = True) -> int:
        return len(self._latest_versions(active_only))

    def _latest_versions(self, active_only: bool) -> list[WorkflowVersionRecord]:
        latest = [v[-1] for _, v in sorted(self._workflows.items()) if v]
        return [r for r in latest if r.active] if active_only else latest
