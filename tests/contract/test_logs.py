"""Contract: execution logs."""

from __future__ import annotations

from spane_py.stores.base import ExecutionStore

from .records import T0, at, execution, log


class TestLogs:
    async def test_logs_come_back_in_the_order_written(
        self, contract_store: ExecutionStore
    ) -> None:
        record = execution()
        await contract_store.create_execution(record, [])
        eid = record.execution_id
        # The same timestamp for all: order is the order written, not a sort on time.
        written = [
            log(eid, "execution.started", level="info"),
            log(eid, "node.started", node_id="a"),
            log(eid, "node.started", node_id="b", level="debug"),
            log(eid, "node.completed", node_id="a", fields={"duration_ms": 1.5}),
            log(eid, "node.failed", node_id="b", level="error", fields={"error": "boom"}),
            log(eid, "execution.failed", level="error"),
        ]
        for record_ in written:
            await contract_store.add_log(record_)
        assert await contract_store.get_logs(eid) == written
        assert await contract_store.get_logs(eid, node_id="a") == [written[1], written[3]]
        assert await contract_store.get_logs(eid, "b") == [written[2], written[4]]
        assert await contract_store.get_logs(eid, node_id="nope") == []

    async def test_every_field_round_trips(self, contract_store: ExecutionStore) -> None:
        record = execution()
        await contract_store.create_execution(record, [])
        entry = log(
            record.execution_id,
            "h\u00e9llo \U0001f600",
            node_id="n1",
            level="warning",
            timestamp=at(0.000001),
            fields={"nested": {"list": [0, False, "", None]}, "n": 0},
        )
        await contract_store.add_log(entry)
        [got] = await contract_store.get_logs(record.execution_id)
        assert got == entry
        assert got.timestamp == at(0.000001)
        assert got.timestamp.tzinfo is not None

    async def test_logs_belong_to_their_execution(self, contract_store: ExecutionStore) -> None:
        one, two = execution(), execution()
        for record in (one, two):
            await contract_store.create_execution(record, [])
        await contract_store.add_log(log(one.execution_id, "one", timestamp=T0))
        await contract_store.add_log(log(two.execution_id, "two", timestamp=at(1)))
        assert [r.message for r in await contract_store.get_logs(one.execution_id)] == ["one"]
        assert [r.message for r in await contract_store.get_logs(two.execution_id)] == ["two"]
        assert await contract_store.get_logs("no-such-execution") == []

    async def test_returned_logs_are_detached_from_the_store(
        self, contract_store: ExecutionStore
    ) -> None:
        record = execution()
        await contract_store.create_execution(record, [])
        fields = {"tags": ["a"]}
        await contract_store.add_log(log(record.execution_id, "m", fields=fields))
        fields["tags"].append("changed-after-add")
        [got] = await contract_store.get_logs(record.execution_id)
        got.fields["tags"].append("changed-after-read")
        [again] = await contract_store.get_logs(record.execution_id)
        assert again.fields == {"tags": ["a"]}
