"""``PostgresExecutionStore``: the durable ``ExecutionStore`` (asyncpg), made of one part
per job, each a mixin on ``PostgresStoreBase``:

- store_base.py: settings, ``start``/``close``, the pool and the retried statements;
- transitions.py: creating executions, transitions (optimistic, guarded by the
  execution's revision), metadata and admission;
- queries.py: reads of executions and nodes;
- workflow_versions.py, dead_letters.py, resume_tokens.py, logs.py (and spans),
  triggers.py (schedules and webhook bindings), artifacts.py, events.py (the event
  history), retention.py (deleting expired executions), partitions.py (the month
  partitions of logs and spans).

Below them: sql.py (the statements), rows.py (rows -> records), params.py (checks and JSON
of parameters), coalesce.py (batched reads and writes), latest.py (what this process knows
of the executions it transitions).
"""

from __future__ import annotations

from types import TracebackType

from spane_py.stores.postgres.artifacts import PostgresArtifacts
from spane_py.stores.postgres.dead_letters import PostgresDeadLetters
from spane_py.stores.postgres.events import PostgresEvents
from spane_py.stores.postgres.logs import PostgresLogs
from spane_py.stores.postgres.partitions import PostgresPartitions
from spane_py.stores.postgres.resume_tokens import PostgresResumeTokens
from spane_py.stores.postgres.retention import PostgresRetention
from spane_py.stores.postgres.store_base import DEFAULT_SCHEMA
from spane_py.stores.postgres.transitions import OPTIMISTIC_ATTEMPTS, PostgresTransitions
from spane_py.stores.postgres.triggers import PostgresTriggers
from spane_py.stores.postgres.workflow_versions import PostgresWorkflows

__all__ = ["DEFAULT_SCHEMA", "OPTIMISTIC_ATTEMPTS", "PostgresExecutionStore"]


class PostgresExecutionStore(
    PostgresTransitions,
    PostgresWorkflows,
    PostgresDeadLetters,
    PostgresResumeTokens,
    PostgresLogs,
    PostgresTriggers,
    PostgresArtifacts,
    PostgresEvents,
    PostgresRetention,
    PostgresPartitions,
):
    """Executions, node results, definitions and logs in PostgreSQL (schedules and webhook
    bindings: ``PostgresTriggers``).

    ``dsn`` defaults to ``$DATABASE_URL``; with neither (or with ``embedded=True``), an
    embedded server (pgserver) is started under ``embedded_dir`` and migrated. Against any
    other database the schema must already be at this code's revision (``spane db
    upgrade``), or ``start()`` refuses.
    """

    async def __aenter__(self) -> PostgresExecutionStore:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
