"""Contract: versioned workflow definitions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from spane_py.definitions.graph import compile_workflow
from spane_py.definitions.models import WorkflowDefinition
from spane_py.stores.base import ExecutionStore

from .records import definition, save


class TestSaveWorkflow:
    async def test_first_save_creates_version_1(self, contract_store: ExecutionStore) -> None:
        before = datetime.now(UTC)
        graph = compile_workflow(definition("orders", "fetch", "ship"))
        saved = await contract_store.save_workflow(
            graph.definition, content_hash=graph.content_hash, change_notes="first"
        )
        assert saved.created is True
        record = saved.record
        assert record.workflow_id == "orders"
        assert record.version == 1
        assert record.definition == graph.definition
        assert record.content_hash == graph.content_hash
        assert record.change_notes == "first"
        assert record.active is True
        assert record.created_at.tzinfo is not None
        assert before - timedelta(seconds=5) <= record.created_at <= datetime.now(UTC)
        assert await contract_store.get_workflow("orders") == record

    async def test_changed_content_creates_the_next_version(
        self, contract_store: ExecutionStore
    ) -> None:
        first = await save(contract_store, definition("orders", "fetch"))
        second = await save(contract_store, definition("orders", "fetch", "ship"), "add ship")
        third = await save(contract_store, definition("orders", "fetch", "ship", "bill"))
        assert (first.created, second.created, third.created) == (True, True, True)
        assert [first.record.version, second.record.version, third.record.version] == [1, 2, 3]
        assert second.record.change_notes == "add ship"
        assert third.record.change_notes is None
        assert len({first.record.content_hash, second.record.content_hash}) == 2
        assert await contract_store.get_workflow_version("orders") == 3

    async def test_same_content_as_the_latest_version_is_not_a_new_version(
        self, contract_store: ExecutionStore
    ) -> None:
        await save(contract_store, definition("orders", "fetch"))
        latest = await save(contract_store, definition("orders", "fetch", "ship"))
        again = await save(contract_store, definition("orders", "fetch", "ship"), "ignored")
        assert again.created is False
        assert again.record == latest.record  # the existing version, notes included
        assert [v.version for v in await contract_store.list_workflow_versions("orders")] == [1, 2]

    async def test_content_of_an_older_version_is_a_new_version(
        self, contract_store: ExecutionStore
    ) -> None:
        v1 = await save(contract_store, definition("orders", "fetch"))
        await save(contract_store, definition("orders", "fetch", "ship"))
        back = await save(contract_store, definition("orders", "fetch"))
        assert back.created is True
        assert back.record.version == 3
        assert back.record.content_hash == v1.record.content_hash

    async def test_versions_count_per_workflow(self, contract_store: ExecutionStore) -> None:
        await save(contract_store, definition("a", "x"))
        await save(contract_store, definition("a", "y"))
        b = await save(contract_store, definition("b", "x"))
        assert b.created is True
        assert b.record.version == 1

    async def test_definition_round_trips_exactly(self, contract_store: ExecutionStore) -> None:
        spane_json = {
            "id": "camel",
            "name": "Camel case",
            "entryNodeId": "start",
            "maxConcurrency": 3,
            "metadata": {"owner": "team-a", "tags": ["x", "y"]},
            "triggers": [{"type": "schedule", "config": {"cron": "*/5 * * * *"}}],
            "nodes": [
                {
                    "id": "start",
                    "type": "http",
                    "config": {"url": "https://example.com", "n": 0, "f": False, "s": ""},
                    "outputs": ["end"],
                    "retryPolicy": {"maxAttempts": 5, "backoff": {"type": "fixed", "delay": 10}},
                },
                {"id": "end", "type": "noop", "timeoutMs": 1500},
            ],
        }
        parsed = WorkflowDefinition.model_validate(spane_json)
        saved = await save(contract_store, parsed)
        got = await contract_store.get_workflow("camel")
        assert got is not None
        assert got.definition == saved.record.definition
        assert got.definition.model_dump() == compile_workflow(parsed).definition.model_dump()

    async def test_returned_definitions_are_detached_from_the_store(
        self, contract_store: ExecutionStore
    ) -> None:
        graph = compile_workflow(definition("orders", "fetch", url="https://a"))
        saved = await contract_store.save_workflow(
            graph.definition, content_hash=graph.content_hash, change_notes=None
        )
        # Mutating what was saved, or what a read returned, must not reach the store.
        graph.definition.nodes[0].config["url"] = "https://changed-after-save"
        saved.record.definition.nodes[0].config["url"] = "https://changed-save-result"
        read = await contract_store.get_workflow("orders")
        assert read is not None
        read.definition.nodes[0].config["url"] = "https://changed-read-result"
        again = await contract_store.get_workflow("orders", 1)
        assert again is not None
        assert again.definition.nodes[0].config["url"] == "https://a"


class TestGetWorkflow:
    async def test_latest_or_a_given_version(self, contract_store: ExecutionStore) -> None:
        v1 = await save(contract_store, definition("orders", "fetch"))
        v2 = await save(contract_store, definition("orders", "fetch", "ship"))
        assert await contract_store.get_workflow("orders") == v2.record
        assert await contract_store.get_workflow("orders", 1) == v1.record
        assert await contract_store.get_workflow("orders", 2) == v2.record
        assert await contract_store.get_workflow_version("orders") == 2

    async def test_unknown_workflow_or_version_is_none(
        self, contract_store: ExecutionStore
    ) -> None:
        await save(contract_store, definition("orders", "fetch"))
        assert await contract_store.get_workflow("nope") is None
        assert await contract_store.get_workflow("nope", 1) is None
        for version in (0, -1, 2, 99):
            assert await contract_store.get_workflow("orders", version) is None
        assert await contract_store.get_workflow_version("nope") is None

    async def test_list_workflow_versions(self, contract_store: ExecutionStore) -> None:
        saved = [
            await save(contract_store, definition("orders", *types), f"v{i + 1}")
            for i, types in enumerate([("a",), ("a", "b"), ("a", "b", "c")])
        ]
        await save(contract_store, definition("other", "a"))
        versions = await contract_store.list_workflow_versions("orders")
        assert versions == [s.record for s in saved]
        assert [v.change_notes for v in versions] == ["v1", "v2", "v3"]
        assert await contract_store.list_workflow_versions("nope") == []


class TestListWorkflows:
    async def test_latest_version_of_each_workflow_ordered_by_id(
        self, contract_store: ExecutionStore
    ) -> None:
        for wid in ("charlie", "alpha", "bravo"):
            await save(contract_store, definition(wid, "x"))
        latest_bravo = await save(contract_store, definition("bravo", "x", "y"))
        listed = await contract_store.list_workflows()
        assert [r.workflow_id for r in listed] == ["alpha", "bravo", "charlie"]
        assert [r.version for r in listed] == [1, 2, 1]
        assert listed[1] == latest_bravo.record

    async def test_limit_and_offset(self, contract_store: ExecutionStore) -> None:
        ids = [f"wf-{i:02d}" for i in range(7)]
        for wid in reversed(ids):
            await save(contract_store, definition(wid, "x"))

        async def page(limit: int, offset: int) -> list[str]:
            rows = await contract_store.list_workflows(limit=limit, offset=offset)
            return [r.workflow_id for r in rows]

        assert await page(3, 0) == ids[0:3]
        assert await page(3, 3) == ids[3:6]
        assert await page(3, 6) == ids[6:]
        assert await page(3, 7) == []
        assert await page(100, 0) == ids
        assert await page(1, 4) == [ids[4]]

    async def test_active_only(self, contract_store: ExecutionStore) -> None:
        for wid in ("a", "b", "c"):
            await save(contract_store, definition(wid, "x"))
        assert await contract_store.deactivate_workflow("b") is True
        active = await contract_store.list_workflows()
        assert [r.workflow_id for r in active] == ["a", "c"]
        assert active == await contract_store.list_workflows(active_only=True)
        every = await contract_store.list_workflows(active_only=False)
        assert [(r.workflow_id, r.active) for r in every] == [
            ("a", True),
            ("b", False),
            ("c", True),
        ]
        # Offsets count within the filtered list.
        assert [r.workflow_id for r in await contract_store.list_workflows(offset=1)] == ["c"]

    async def test_negative_limit_or_offset_is_refused(
        self, contract_store: ExecutionStore
    ) -> None:
        with pytest.raises(ValueError, match="negative"):
            await contract_store.list_workflows(limit=-1)
        with pytest.raises(ValueError, match="negative"):
            await contract_store.list_workflows(offset=-1)
        assert await contract_store.list_workflows(limit=0) == []

    async def test_empty_store(self, contract_store: ExecutionStore) -> None:
        assert await contract_store.list_workflows() == []
        assert await contract_store.list_workflows(active_only=False) == []
        assert await contract_store.get_workflow_count() == 0
        assert await contract_store.get_workflow_count(active_only=False) == 0


class TestDeactivateWorkflow:
    async def test_deactivated_workflow_has_no_latest_version(
        self, contract_store: ExecutionStore
    ) -> None:
        await save(contract_store, definition("orders", "fetch"))
        await save(contract_store, definition("orders", "fetch", "ship"))
        assert await contract_store.deactivate_workflow("orders") is True
        assert await contract_store.get_workflow("orders") is None
        assert await contract_store.get_workflow_version("orders") is None
        # Pinned versions stay readable: running executions still need their definition.
        for version in (1, 2):
            record = await contract_store.get_workflow("orders", version)
            assert record is not None
            assert record.version == version
            assert record.active is False
        versions = await contract_store.list_workflow_versions("orders")
        assert [(v.version, v.active) for v in versions] == [(1, False), (2, False)]

    async def test_deactivate_reports_whether_it_changed_anything(
        self, contract_store: ExecutionStore
    ) -> None:
        await save(contract_store, definition("orders", "fetch"))
        assert await contract_store.deactivate_workflow("nope") is False
        assert await contract_store.deactivate_workflow("orders") is True
        assert await contract_store.deactivate_workflow("orders") is False

    async def test_resaving_the_same_content_reactivates(
        self, contract_store: ExecutionStore
    ) -> None:
        await save(contract_store, definition("orders", "fetch"))
        latest = await save(contract_store, definition("orders", "fetch", "ship"))
        await contract_store.deactivate_workflow("orders")
        again = await save(contract_store, definition("orders", "fetch", "ship"))
        assert again.created is False
        assert again.record.version == 2
        assert again.record.active is True
        assert again.record.content_hash == latest.record.content_hash
        assert await contract_store.get_workflow("orders") == again.record
        assert await contract_store.get_workflow_version("orders") == 2
        assert [r.workflow_id for r in await contract_store.list_workflows()] == ["orders"]
        assert all(v.active for v in await contract_store.list_workflow_versions("orders"))

    async def test_saving_new_content_reactivates_with_a_new_version(
        self, contract_store: ExecutionStore
    ) -> None:
        await save(contract_store, definition("orders", "fetch"))
        await contract_store.deactivate_workflow("orders")
        saved = await save(contract_store, definition("orders", "fetch", "ship"))
        assert saved.created is True
        assert saved.record.version == 2
        assert saved.record.active is True
        assert await contract_store.get_workflow("orders") == saved.record
        assert await contract_store.get_workflow_count() == 1

    async def test_workflow_count(self, contract_store: ExecutionStore) -> None:
        for wid in ("a", "b", "c"):
            await save(contract_store, definition(wid, "x"))
        await save(contract_store, definition("a", "x", "y"))  # versions are not workflows
        assert await contract_store.get_workflow_count() == 3
        await contract_store.deactivate_workflow("c")
        assert await contract_store.get_workflow_count() == 2
        assert await contract_store.get_workflow_count(active_only=True) == 2
        assert await contract_store.get_workflow_count(active_only=False) == 3
