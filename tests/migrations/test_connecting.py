"""Database URLs: the forms accepted, passwords kept out of messages, and one clear error
per failure (bad URL: ConfigurationError; no server, no answer, no database:
StatePersistenceError), never a driver traceback."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from spane_py.errors import ConfigurationError, StatePersistenceError
from spane_py.stores.postgres import migrate


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://u@h:5432/db", "postgresql://u@h:5432/db"),
        ("postgres://u@h/db", "postgresql://u@h/db"),
        ("postgresql+asyncpg://u:p@h/db", "postgresql://u:p@h/db"),
        ("POSTGRESQL+psycopg://u@h/db", "postgresql://u@h/db"),
        ("postgresql://postgres:@/postgres?host=/tmp/x", "postgresql://postgres:@/postgres?host=/tmp/x"),
        ("postgresql://u@h1:5432,h2:5433/db", "postgresql://u@h1:5432,h2:5433/db"),
        ("postgresql://u@[::1]:5432/db", "postgresql://u@[::1]:5432/db"),
        ("  postgresql://u@h/db\n", "postgresql://u@h/db"),
    ],
)  # fmt: skip
def test_accepted_urls(given: str, expected: str) -> None:
    assert migrate.parse_dsn(given) == (expected, None)


def test_connect_timeout_is_taken_out_of_the_url() -> None:
    assert migrate.parse_dsn("postgresql://h/db?connect_timeout=2.5&sslmode=disable") == (
        "postgresql://h/db?sslmode=disable",
        2.5,
    )


@pytest.mark.parametrize(
    ("given", "why"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("mysql://u@h/db", "must start with postgresql://"),
        ("127.0.0.1:5432", "must start with postgresql://"),
        ("postgresql:/h/db", "must start with postgresql://"),
        ("postgresql://h:abc/db", "bad port 'abc'"),
        ("postgresql://h:0/db", "bad port '0'"),
        ("postgresql://h:70000/db", "bad port '70000'"),
        ("postgresql://h1:5432,h2:x/db", "bad port 'x'"),
        ("postgresql://[::1/db", "Invalid IPv6 URL"),
        ("postgresql://h/db?connect_timeout=soon", "connect_timeout must be a positive number"),
        ("postgresql://h/db?connect_timeout=0", "connect_timeout must be a positive number"),
    ],
)
def test_malformed_urls(given: str, why: str) -> None:
    with pytest.raises(ConfigurationError, match="database URL") as exc:
        migrate.parse_dsn(given)
    assert why in str(exc.value)


@pytest.mark.parametrize(
    ("given", "shown"),
    [
        ("postgresql://u:s3cret@h/db", "postgresql://u:***@h/db"),
        ("postgresql://u@h/db?password=s3cret&sslmode=require",
         "postgresql://u@h/db?password=***&sslmode=require"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
        ("postgresql://postgres:@/postgres?host=/tmp/x", "postgresql://postgres:***@/postgres?host=/tmp/x"),
    ],
)  # fmt: skip
def test_redact(given: str, shown: str) -> None:
    assert migrate.redact(given) == shown


async def test_malformed_url_in_upgrade() -> None:
    with pytest.raises(ConfigurationError, match=r"invalid database URL .mysql://u:\*\*\*@h/db."):
        await migrate.upgrade("mysql://u:pw@h/db")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_nothing_listening() -> None:
    url = f"postgresql://u:s3cret@127.0.0.1:{_free_port()}/db"
    with pytest.raises(StatePersistenceError) as exc:
        await migrate.upgrade(url)
    message = str(exc.value)
    assert message.startswith(f"cannot connect to PostgreSQL at {migrate.redact(url)}: ")
    assert "ConnectionRefusedError" in message
    assert "s3cret" not in message
    assert isinstance(exc.value.__cause__, OSError)


async def test_no_socket_in_the_host_directory(tmp_path: Path) -> None:
    with pytest.raises(StatePersistenceError, match="cannot connect to PostgreSQL at"):
        await migrate.upgrade(f"postgresql://postgres@/postgres?host={tmp_path}")


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP port that accepts connections and never says a word."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield int(s.getsockname()[1])


async def test_a_server_that_does_not_answer(silent_server: int) -> None:
    url = f"postgresql://u@127.0.0.1:{silent_server}/db?connect_timeout=0.3"
    with pytest.raises(StatePersistenceError) as exc:
        await migrate.upgrade(url)
    assert str(exc.value) == (f"cannot connect to PostgreSQL at {url}: no answer within 0.3 s")


def _with_database(url: str, database: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{database}"))


async def test_missing_database(database_url: str) -> None:
    url = _with_database(database_url, "no_such_database_here")
    with pytest.raises(StatePersistenceError) as exc:
        await migrate.upgrade(url)
    assert 'InvalidCatalogNameError: database "no_such_database_here" does not exist' in str(
        exc.value
    )


async def test_connect_returns_a_working_connection(database_url: str) -> None:
    conn = await migrate.connect(database_url)
    try:
        assert await conn.fetchval("SELECT 41 + 1") == 42
    finally:
        await conn.close()


async def test_unknown_url_parameter(database_url: str) -> None:
    separator = "&" if "?" in database_url else "?"
    with pytest.raises(ConfigurationError, match=r"invalid database URL .*no_such_setting"):
        await migrate.connect(f"{database_url}{separator}no_such_setting=1")
