"""Contract: ``transition`` — the one atomic read-decide-write primitive.

The concurrency tests are the ones a Postgres store must pass with row locks: many
transitions of one execution at once, none of whose writes may be lost, and the real
planner's join claimed exactly once when both parents finish together.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from spane_py.definitions.graph import WorkflowGraph
from spane_py.engine import decisions, planner
from spane_py.errors import ExecutionNotFoundError
from spane_py.state import ExecutionStatus, NodeStatus
from spane_py.stores.base import Decide, ExecutionSnapshot, ExecutionStore, Transition

from .records import Carried, at, diamond, execution, node


def _now() -> datetime:
    return datetime.now(UTC)


class TestTransition:
    async def test_decide_sees_the_execution_and_its_nodes(
        self, contract_store: ExecutionStore
    ) -> None:
        record = execution(metadata={"m": 1})
        nodes = [node("a", NodeStatus.SUCCEEDED, output="0"), node("b")]
        await contract_store.create_execution(record, nodes)
        other = execution()
        await contract_store.create_execution(other, [node("x")])
        seen: list[ExecutionSnapshot] = []

        def decide(snap: ExecutionSnapshot) -> Transition:
            seen.append(snap)
            return Transition()

        await contract_store.transition(record.execution_id, decide)
        assert len(seen) == 1
        assert seen[0].execution == record
        assert dict(seen[0].nodes) == {n.node_id: n for n in nodes}  # not the other's "x"

    async def test_writes_nodes_and_execution_together(
        self, contract_store: ExecutionStore
    ) -> None:
        record = execution()
        await contract_store.create_execution(record, [node("a", NodeStatus.RUNNING, attempts=1)])
        a_done = node("a", NodeStatus.SUCCEEDED, attempts=1, output="false", completed_at=at(2))
        b_new = node("b", queued_at=at(2))
        settled = replace(record, status=ExecutionStatus.COMPLETED, completed_at=at(2))

        result = await contract_store.transition(
            record.execution_id,
            lambda snap: Transition(nodes=(a_done, b_new), execution=settled, enqueue=("b",)),
        )
        assert result.enqueue == ("b",)
        assert await contract_store.get_execution(record.execution_id) == settled
        assert await contract_store.get_node_results(record.execution_id) == {
            "a": a_done,
            "b": b_new,
        }

    async def test_each_transition_sees_the_previous_writes(
        self, contract_store: ExecutionStore
    ) -> None:
        record = execution()
        await contract_store.create_execution(record, [])
        history: list[list[str]] = []

        def add(node_id: str) -> Decide:
            def decide(snap: ExecutionSnapshot) -> Transition:
                history.append(sorted(snap.nodes))
                return Transition(nodes=(node(node_id),))

            return decide

        for node_id in ("a", "b", "c"):
            await contract_store.transition(record.execution_id, add(node_id))
        assert history == [[], ["a"], ["a", "b"]]

    async def test_the_decision_comes_back_unchanged(self, contract_store: ExecutionStore) -> None:
        record = execution()
        await contract_store.create_execution(record, [node("a")])
        decision = Carried({"not": "stored", "obj": object()})
        wanted = Transition(
            nodes=(node("a", NodeStatus.RUNNING),), enqueue=("x", "y"), decision=decision
        )
        result = await contract_store.transition(record.execution_id, lambda snap: wanted)
        assert result == wanted
        assert result.decision is decision
        noop = await contract_store.transition(
            record.execution_id, lambda snap: Transition(decision=Carried(42))
        )
        assert (noop.decision, noop.is_noop) == (Carried(42), True)

    async def test_a_noop_transition_changes_nothing(self, contract_store: ExecutionStore) -> None:
        record = execution(metadata={"a": 1})
        nodes = [node("a", NodeStatus.RUNNING, attempts=2)]
        await contract_store.create_execution(record, nodes)
        before = await contract_store.list_executions()
        result = await contract_store.transition(
            record.execution_id, lambda snap: Transition(enqueue=("a",), decision=Carried("x"))
        )
        assert result.is_noop
        assert await contract_store.get_execution(record.execution_id) == record
        assert await contract_store.get_node_results(record.execution_id) == {"a": nodes[0]}
        assert await contract_store.list_executions() == before

    async def test_unknown_execution_raises_without_calling_decide(
        self, contract_store: ExecutionStore
    ) -> None:
        called = []

        def decide(snap: ExecutionSnapshot) -> Transition:
            called.append(snap)
            return Transition()

        with pytest.raises(ExecutionNotFoundError) as info:
            await contract_store.transition("no-such-execution", decide)
        assert info.value.execution_id == "no-such-execution"
        assert called == []

    async def test_a_failing_decide_writes_nothing(self, contract_store: ExecutionStore) -> None:
        record = execution()
        await contract_store.create_execution(record, [node("a")])

        class Boom(Exception):
            pass

        def decide(snap: ExecutionSnapshot) -> Transition:
            raise Boom

        with pytest.raises(Boom):
            await contract_store.transition(record.execution_id, decide)
        assert await contract_store.get_execution(record.execution_id) == record
        assert await contract_store.get_node_results(record.execution_id) == {"a": node("a")}
        # The execution is not left locked: the next transition goes through.
        result = await contract_store.transition(
            record.execution_id, lambda snap: Transition(nodes=(node("b"),))
        )
        assert not result.is_noop
        assert set(await contract_store.get_node_results(record.execution_id)) == {"a", "b"}

    async def test_an_execution_of_another_id_is_refused(
        self, contract_store: ExecutionStore
    ) -> None:
        one, two = execution(), execution()
        await contract_store.create_execution(one, [node("a")])
        await contract_store.create_execution(two, [])
        wrong = replace(two, status=ExecutionStatus.FAILED)
        with pytest.raises(ValueError, match="execution"):
            await contract_store.transition(
                one.execution_id,
                lambda snap: Transition(nodes=(node("a", NodeStatus.RUNNING),), execution=wrong),
            )
        assert await contract_store.get_execution(one.execution_id) == one
        assert await contract_store.get_execution(two.execution_id) == two
        assert await contract_store.get_node_results(one.execution_id) == {"a": node("a")}

    async def test_the_snapshot_is_a_copy(self, contract_store: ExecutionStore) -> None:
        record = execution(metadata={"tags": ["x"]})
        await contract_store.create_execution(record, [node("a"), node("b")])
        kept: list[ExecutionSnapshot] = []

        def meddle(snap: ExecutionSnapshot) -> Transition:
            kept.append(snap)
            # Mutating the snapshot is not a way to write.
            snap.nodes.pop("a")  # type: ignore[attr-defined]
            snap.nodes["z"] = node("z")  # type: ignore[index]
            snap.execution.metadata["tags"].append("y")
            snap.execution.metadata["new"] = 1  # type: ignore[index]
            return Transition()

        await contract_store.transition(record.execution_id, meddle)
        got = await contract_store.get_execution(record.execution_id)
        assert got is not None
        assert got.metadata == {"tags": ["x"]}
        assert replace(got, metadata={}) == replace(record, metadata={})
        assert set(await contract_store.get_node_results(record.execution_id)) == {"a", "b"}

        def take(snap: ExecutionSnapshot) -> Transition:
            kept.append(snap)
            return Transition()

        await contract_store.transition(record.execution_id, take)
        held = kept[-1]
        # Later writes do not reach a snapshot already handed out.
        done = replace(record, status=ExecutionStatus.COMPLETED, metadata={"tags": []})
        await contract_store.transition(
            record.execution_id,
            lambda snap: Transition(nodes=(node("a", NodeStatus.SUCCEEDED),), execution=done),
        )
        await contract_store.update_execution_metadata(record.execution_id, {"later": True})
        assert held.execution.status is ExecutionStatus.RUNNING
        assert held.execution.metadata == {"tags": ["x"]}
        assert held.nodes["a"] == node("a")
        assert set(held.nodes) == {"a", "b"}


def _increment(node_id: str) -> Decide:
    """Read-modify-write: the attempts counter goes up by one; carries the value it saw."""

    def decide(snap: ExecutionSnapshot) -> Transition:
        current = snap.nodes.get(node_id) or node(node_id)
        return Transition(
            nodes=(replace(current, attempts=current.attempts + 1),),
            decision=Carried(current.attempts),
        )

    return decide


def _carried(done: Transition) -> Any:
    assert isinstance(done.decision, Carried)
    return done.decision.value


class TestConcurrentTransitions:
    async def test_no_update_is_lost(self, contract_store: ExecutionStore) -> None:
        record = execution()
        await contract_store.create_execution(record, [node("counter")])
        results = await asyncio.gather(
            *(
                contract_store.transition(record.execution_id, _increment("counter"))
                for _ in range(200)
            )
        )
        nodes = await contract_store.get_node_results(record.execution_id)
        assert nodes["counter"].attempts == 200
        # Serialisable: every transition saw a different value.
        assert sorted(_carried(r) for r in results) == list(range(200))

    async def test_no_update_is_lost_across_nodes_and_executions(
        self, contract_store: ExecutionStore
    ) -> None:
        records = [execution() for _ in range(5)]
        for record in records:
            await contract_store.create_execution(record, [])
        calls = [
            (record.execution_id, node_id)
            for record in records
            for node_id in ("x", "y", "z")
            for _ in range(20)
        ]
        random.Random(7).shuffle(calls)
        await asyncio.gather(
            *(contract_store.transition(eid, _increment(node_id)) for eid, node_id in calls)
        )
        for record in records:
            nodes = await contract_store.get_node_results(record.execution_id)
            assert {n: r.attempts for n, r in nodes.items()} == {"x": 20, "y": 20, "z": 20}

    async def test_every_snapshot_is_consistent(self, contract_store: ExecutionStore) -> None:
        """Moving units between two nodes and the execution: totals never change."""
        total = 100
        record = execution(metadata={"moves": 0})
        await contract_store.create_execution(
            record, [node("from", attempts=total), node("to", attempts=0)]
        )
        broken: list[str] = []

        def move(snap: ExecutionSnapshot) -> Transition:
            src, dst = snap.nodes["from"], snap.nodes["to"]
            moves = snap.execution.metadata["moves"]
            if src.attempts + dst.attempts != total or dst.attempts != moves:
                broken.append(f"{src.attempts}+{dst.attempts}, moves={moves}")
            return Transition(
                nodes=(
                    replace(src, attempts=src.attempts - 1),
                    replace(dst, attempts=dst.attempts + 1),
                ),
                execution=replace(snap.execution, metadata={"moves": moves + 1}),
            )

        await asyncio.gather(
            *(contract_store.transition(record.execution_id, move) for _ in range(total))
        )
        assert broken == []
        nodes = await contract_store.get_node_results(record.execution_id)
        assert (nodes["from"].attempts, nodes["to"].attempts) == (0, total)
        got = await contract_store.get_execution(record.execution_id)
        assert got is not None
        assert got.metadata == {"moves": total}


# The real planner --------------------------------------------------------------------


async def _start(store: ExecutionStore, graph: WorkflowGraph) -> str:
    record = execution(graph.workflow_id, initial_data='{"n":1}')
    await store.create_execution(record, planner.initial_nodes(graph, _now()))
    return record.execution_id


async def _run_node(
    store: ExecutionStore,
    graph: WorkflowGraph,
    eid: str,
    node_id: str,
    log: list[tuple[str, Transition]],
    *,
    status: NodeStatus = NodeStatus.SUCCEEDED,
    yields: int = 1,
) -> Transition:
    """What a worker does: decide to run the node, run it (yielding), record its completion
    — deciding first on the snapshot the start saw, as the runner does (``cached``)."""
    started_at = _now()
    start = await store.transition(eid, planner.plan_start(node_id, 0, started_at))
    assert isinstance(start.decision, decisions.Run), (node_id, start.decision)
    for _ in range(yields):
        await asyncio.sleep(0)
    outcome = planner.NodeOutcome(
        status=status,
        output=f'"{node_id}"' if status is NodeStatus.SUCCEEDED else None,
        error="boom" if status is NodeStatus.FAILED else None,
        attempt=start.decision.attempt,
        started_at=started_at,
    )
    done = await store.transition(
        eid,
        planner.plan_completion(graph, node_id, 0, outcome, _now()),
        cached=start.decision.snapshot,
    )
    log.append((node_id, done))
    return done


async def _drive(
    store: ExecutionStore,
    graph: WorkflowGraph,
    eid: str,
    node_id: str,
    log: list[tuple[str, Transition]],
    rng: random.Random,
) -> None:
    """Run a node, then all the children it claimed, concurrently (like many workers)."""
    done = await _run_node(store, graph, eid, node_id, log, yields=rng.randint(0, 3))
    await asyncio.gather(*(_drive(store, graph, eid, c, log, rng) for c in done.enqueue))


class TestPlannerOnTheStore:
    async def test_join_claimed_once_when_both_parents_finish_together(
        self, contract_store: ExecutionStore
    ) -> None:
        graph = diamond()
        eid = await _start(contract_store, graph)
        log: list[tuple[str, Transition]] = []
        a = await _run_node(contract_store, graph, eid, "a", log)
        assert sorted(a.enqueue) == ["b", "c"]
        # Both middle nodes start, then both finish at the same moment.
        for middle in ("b", "c"):
            start = await contract_store.transition(eid, planner.plan_start(middle, 0, _now()))
            assert isinstance(start.decision, decisions.Run)
        ok = planner.NodeOutcome(status=NodeStatus.SUCCEEDED, output="1")
        b_done, c_done = await asyncio.gather(
            contract_store.transition(eid, planner.plan_completion(graph, "b", 0, ok, _now())),
            contract_store.transition(eid, planner.plan_completion(graph, "c", 0, ok, _now())),
        )
        assert sorted(b_done.enqueue + c_done.enqueue) == ["d"]
        assert {b_done.decision, c_done.decision} == {decisions.Recorded()}
        d = await _run_node(contract_store, graph, eid, "d", log)
        assert d.decision == decisions.Settled(ExecutionStatus.COMPLETED)
        got = await contract_store.get_execution(eid)
        assert got is not None
        assert got.status is ExecutionStatus.COMPLETED
        nodes = await contract_store.get_node_results(eid)
        assert planner.node_input(graph, "d", got, nodes) == {"b": 1, "c": 1}

    @pytest.mark.parametrize("seed", range(5))
    async def test_many_diamonds_at_once_settle_exactly_once(
        self, contract_store: ExecutionStore, seed: int
    ) -> None:
        graph = diamond()
        rng = random.Random(seed)
        eids = [await _start(contract_store, graph) for _ in range(20)]
        logs: dict[str, list[tuple[str, Transition]]] = {eid: [] for eid in eids}
        await asyncio.gather(
            *(_drive(contract_store, graph, eid, "a", logs[eid], rng) for eid in eids)
        )
        for eid in eids:
            log = logs[eid]
            claimed = Counter(c for _, t in log for c in t.enqueue)
            assert claimed == {"b": 1, "c": 1, "d": 1}, eid
            settled = [n for n, t in log if isinstance(t.decision, decisions.Settled)]
            assert settled == ["d"], eid
            assert sorted(n for n, _ in log) == ["a", "b", "c", "d"]
            record = await contract_store.get_execution(eid)
            assert record is not None
            assert record.status is ExecutionStatus.COMPLETED
            assert record.completed_at is not None
            nodes = await contract_store.get_node_results(eid)
            assert {n: r.status for n, r in nodes.items()} == dict.fromkeys(
                "abcd", NodeStatus.SUCCEEDED
            )
            assert all(r.attempts == 1 for r in nodes.values())
            assert planner.node_input(graph, "d", record, nodes) == {"b": "b", "c": "c"}
        assert await contract_store.get_execution_count(status=ExecutionStatus.COMPLETED) == 20

    async def test_a_redelivered_completion_is_a_duplicate(
        self, contract_store: ExecutionStore
    ) -> None:
        graph = diamond()
        eid = await _start(contract_store, graph)
        await contract_store.transition(eid, planner.plan_start("a", 0, _now()))
        ok = planner.NodeOutcome(status=NodeStatus.SUCCEEDED, output="1")
        results = await asyncio.gather(
            *(
                contract_store.transition(eid, planner.plan_completion(graph, "a", 0, ok, _now()))
                for _ in range(10)
            )
        )
        assert Counter(type(r.decision) for r in results) == {
            decisions.Recorded: 1,
            decisions.Duplicate: 9,
        }
        assert sorted(c for r in results for c in r.enqueue) == ["b", "c"]
        nodes = await contract_store.get_node_results(eid)
        assert nodes["a"].status is NodeStatus.SUCCEEDED
        assert (nodes["b"].status, nodes["c"].status) == (NodeStatus.QUEUED, NodeStatus.QUEUED)

    async def test_two_failures_at_once_fail_the_execution_once(
        self, contract_store: ExecutionStore
    ) -> None:
        graph = diamond()
        eid = await _start(contract_store, graph)
        log: list[tuple[str, Transition]] = []
        await _run_node(contract_store, graph, eid, "a", log)
        for middle in ("b", "c"):
            await contract_store.transition(eid, planner.plan_start(middle, 0, _now()))
        failed = planner.NodeOutcome(status=NodeStatus.FAILED, error="boom")
        results = await asyncio.gather(
            *(
                contract_store.transition(eid, planner.plan_completion(graph, m, 0, failed, _now()))
                for m in ("b", "c")
            )
        )
        assert Counter(r.decision for r in results) == {
            decisions.Settled(ExecutionStatus.FAILED): 1,
            decisions.Recorded(): 1,
        }
        assert all(r.enqueue == () for r in results)
        record = await contract_store.get_execution(eid)
        assert record is not None
        assert record.status is ExecutionStatus.FAILED
        nodes = await contract_store.get_node_results(eid)
        assert "d" not in nodes
        assert (nodes["b"].status, nodes["c"].status) == (NodeStatus.FAILED, NodeStatus.FAILED)
