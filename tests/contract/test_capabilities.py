"""What a store says of itself: whether other processes share it, and where its data is."""

from __future__ import annotations

from spane_py import ExecutionStore, InMemoryExecutionStore


async def test_a_store_says_whether_other_processes_share_it(
    contract_store: ExecutionStore,
) -> None:
    in_memory = isinstance(contract_store, InMemoryExecutionStore)
    assert contract_store.shared is not in_memory


async def test_a_store_names_where_its_data_lives_without_a_password(
    contract_store: ExecutionStore,
) -> None:
    text = contract_store.describe()
    assert text
    assert "\n" not in text
    if isinstance(contract_store, InMemoryExecutionStore):
        assert text == "in-memory"
    else:
        assert text.startswith("PostgreSQL ")
        assert "schema" in text


def test_a_postgres_store_hides_the_password_of_its_url() -> None:
    from spane_py.stores.postgres.store import PostgresExecutionStore

    store = PostgresExecutionStore("postgresql://spane:hunter2@db.example:5432/app", schema="s")
    text = store.describe()
    assert "hunter2" not in text
    assert "db.example" in text
    assert "'s'" in text
