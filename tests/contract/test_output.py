"""An execution's output (``ExecutionRecord.output``, JSON text) is stored with the execution:
written by the transition that settles it, read back by every read of the execution."""

from __future__ import annotations

import json
from dataclasses import replace

from spane_py.state import ExecutionStatus, NodeStatus
from spane_py.stores.base import ExecutionStore, Transition
from tests.contract.records import at, execution, node


async def test_the_output_is_written_with_the_settling_transition(
    contract_store: ExecutionStore,
) -> None:
    record = execution()
    await contract_store.create_execution(record, [node("a", NodeStatus.RUNNING)])
    created = await contract_store.get_execution(record.execution_id)
    assert created is not None
    assert created.output is None
    output = '{"a": [1, "x", {"z": 0}], "b": null, "c": ""}'
    done = replace(record, status=ExecutionStatus.COMPLETED, completed_at=at(2), output=output)
    await contract_store.transition(
        record.execution_id,
        lambda snap: Transition(nodes=(node("a", NodeStatus.SUCCEEDED),), execution=done),
    )

    def value(text: str | None) -> object:
        assert text is not None
        return json.loads(text)

    got = await contract_store.get_execution(record.execution_id)
    assert got is not None
    assert value(got.output) == json.loads(output)
    snapshot = await contract_store.get_snapshot(record.execution_id)
    assert snapshot is not None
    assert value(snapshot.execution.output) == json.loads(output)
    page = await contract_store.list_executions()
    assert [value(r.output) for r in page.items] == [json.loads(output)]

    # Running again (a retry) clears it.
    again = replace(done, status=ExecutionStatus.RUNNING, completed_at=None, output=None)
    await contract_store.transition(record.execution_id, lambda snap: Transition(execution=again))
    assert (await contract_store.get_execution(record.execution_id)) == again


async def test_json_null_and_no_output_stay_apart(contract_store: ExecutionStore) -> None:
    null = execution(status=ExecutionStatus.COMPLETED, completed_at=at(1), output="null")
    none = execution(status=ExecutionStatus.COMPLETED, completed_at=at(1))
    await contract_store.create_execution(null, [])
    await contract_store.create_execution(none, [])
    await contract_store.create_executions([(execution(output="[0, false]"), [])])
    assert (await contract_store.get_execution(null.execution_id)) == null
    assert (await contract_store.get_execution(none.execution_id)) == none
    outputs = sorted(
        json.dumps(json.loads(r.output)) if r.output is not None else "-"
        for r in (await contract_store.list_executions()).items
    )
    assert outputs == ["-", "[0, false]", "null"]
