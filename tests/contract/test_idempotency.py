"""Contract: idempotency-key expiry (``idempotency_after``), a rule each store writes on its
own (Python in memory, SQL in PostgreSQL). Its one definition is
``ExecutionStateStore.create_execution``'s docstring (spane_py/stores/base.py); the other
idempotency tests are test_executions.py's ``TestIdempotencyKey``."""

from __future__ import annotations

from spane_py.state import ExecutionStatus
from spane_py.stores.base import ExecutionStore

from .records import at, execution, node


class TestIdempotencyExpiry:
    async def test_a_holder_created_exactly_at_the_bound_still_holds_the_key(
        self, contract_store: ExecutionStore
    ) -> None:
        first = execution("a", idempotency_key="k", created_at=at(10))
        await contract_store.create_execution(first, [])
        again = await contract_store.create_execution(
            execution("a", idempotency_key="k", created_at=at(20)), [], idempotency_after=at(10)
        )
        assert again.created is False
        assert again.record.execution_id == first.execution_id
        kept = await contract_store.get_execution(first.execution_id)
        assert kept is not None
        assert kept.idempotency_key == "k"

    async def test_an_expired_holder_is_released_whatever_its_status(
        self, contract_store: ExecutionStore
    ) -> None:
        first = execution("a", idempotency_key="k", status=ExecutionStatus.RUNNING)
        await contract_store.create_execution(first, [node("n")])
        later = execution("a", idempotency_key="k", created_at=at(100))
        created = await contract_store.create_execution(
            later, [node("n")], idempotency_after=at(50)
        )
        assert created.created is True
        old = await contract_store.get_execution(first.execution_id)
        assert old is not None
        assert (old.status, old.idempotency_key) == (ExecutionStatus.RUNNING, None)
        assert await contract_store.get_node_results(first.execution_id) == {"n": node("n")}
        # Without a bound the new holder answers, as any holder does.
        again = await contract_store.create_execution(execution("a", idempotency_key="k"), [])
        assert (again.created, again.record.execution_id) == (False, later.execution_id)

    async def test_expiry_is_scoped_to_the_workflow(self, contract_store: ExecutionStore) -> None:
        elsewhere = execution("b", idempotency_key="k", created_at=at(0))
        await contract_store.create_execution(elsewhere, [])
        created = await contract_store.create_execution(
            execution("a", idempotency_key="k", created_at=at(100)), [], idempotency_after=at(50)
        )
        assert created.created is True
        untouched = await contract_store.get_execution(elsewhere.execution_id)
        assert untouched is not None
        assert untouched.idempotency_key == "k"
