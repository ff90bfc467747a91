"""The statements of the event history (``EventStore``): the table ``events``."""

from __future__ import annotations

# Events in the order given (their ids in that order); those of an execution that does not
# exist are left out.
ADD_EVENTS = """
INSERT INTO events (execution_id, workflow_id, node_id, type, at, fields)
SELECT x.execution_id, x.workflow_id, x.node_id, x.type, x.at, coalesce(x.fields, '{}')
FROM ROWS FROM (jsonb_to_recordset($1::jsonb) AS (execution_id uuid, workflow_id text,
     node_id text, type text, at timestamptz, fields jsonb))
     WITH ORDINALITY AS x(execution_id, workflow_id, node_id, type, at, fields, ord)
WHERE x.execution_id IS NULL
   OR EXISTS (SELECT 1 FROM executions e WHERE e.execution_id = x.execution_id)
ORDER BY x.ord
"""

_SELECT = "SELECT execution_id::text, workflow_id, node_id, type, at, fields::text FROM events"


def get_events(
    *, execution_id: bool, types: bool, since: bool, until: bool
) -> tuple[str, list[str]]:
    """The query for the filters that are given, and the order their values are bound in
    (then the limit). Only the conditions in use are written, so that each form is planned
    for what it filters on: an execution's events by ``ix_events_execution``, a type's by
    ``ix_events_type``, both in time order."""
    conditions, names = [], []
    for given, name, condition in (
        (execution_id, "execution_id", "execution_id = ${}"),
        (types, "types", "type = ANY(${}::text[])"),
        (since, "since", "at >= ${}"),
        (until, "until", "at < ${}"),
    ):
        if given:
            names.append(name)
            conditions.append(condition.format(len(names)))
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    return f"{_SELECT}{where} ORDER BY at, event_id LIMIT ${len(names) + 1}", names
