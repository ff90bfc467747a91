"""The event history: engine events recorded in the store (``EventStore``) as well as
streamed, read back with ``engine.get_events``.

``EventHistory`` is an event sink like the stream's publisher: it costs a node hop an
append to a buffer (and a reading of the engine's clock, which dates the event). The
buffer goes to the store as one statement holding all its events (``add_events``) every
``flush_interval`` (0.1 s) — at once when the last write is that old, as soon as
``max_batch`` (500) events wait, and once at a time: while a write is under way the next
events wait for it. A busy process so writes at most ten statements a second, however
many nodes it runs. Their fields are made storable when written, off the hop's path:
text PostgreSQL refuses becomes U+FFFD, a value JSON cannot carry its ``repr``.

What the stream leaves out (the span records) the history leaves out too. A write the
store failed keeps its events for the next one (at most ``MAX_BUFFERED``, the oldest
dropped beyond) and waits ``RETRY_AFTER_S``; one it refused (a value it cannot take) is
dropped and logged. The history is best effort, like the stream, and never holds up a
node. (The buffering is ``BufferedSink``'s, in buffered.py, which the stream's publisher
shares.)
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson

from spane_py._text import storable, storable_value, text_problem
from spane_py.clock import Clock
from spane_py.errors import SpaneError, StatePersistenceError
from spane_py.observability.buffered import BufferedSink
from spane_py.records import EventRecord
from spane_py.stores.base_history import EventStore

logger = logging.getLogger("spane_py.events")

MAX_BUFFERED = 10_000
RETRY_AFTER_S = 1.0
_IDS = ("execution_id", "workflow_id", "node_id")


class EventHistory(BufferedSink[datetime]):
    """The sink that writes events to the store (see the module docstring)."""

    task_name = "spane-history"
    task_failed = "recording events failed"

    def __init__(
        self,
        store: EventStore,
        clock: Clock,
        *,
        flush_interval: float = 0.1,
        max_batch: int = 500,
    ) -> None:
        super().__init__(flush_interval=flush_interval, max_batch=max_batch)
        self.store = store
        self.clock = clock

    def _now(self) -> datetime:
        return self.clock.now()

    async def _write(self, batch: list[tuple[str, datetime, Mapping[str, Any]]]) -> None:
        try:
            await self.store.add_events([_record(name, at, fields) for name, at, fields in batch])
        except Exception as exc:
            if isinstance(exc, TypeError | ValueError | SpaneError) and not isinstance(
                exc, StatePersistenceError
            ):  # the batch itself is wrong: trying it again would fail again, forever
                logger.error("dropped %d event(s) the event history refused: %s", len(batch), exc)
                return
            # The store failed (a lost connection, say): they go back in front of the buffer.
            dropped = self._retry_later(batch, max_buffered=MAX_BUFFERED, retry_after=RETRY_AFTER_S)
            logger.warning(
                "could not record %d event(s) in the event history: %s%s", len(batch), exc, dropped
            )


def _record(name: str, at: datetime, fields: Mapping[str, Any]) -> EventRecord:
    rest = {k: v for k, v in fields.items() if k not in _IDS and v is not None}
    return EventRecord(
        type=name,
        at=at,
        execution_id=_text(fields.get("execution_id")),
        workflow_id=_text(fields.get("workflow_id")),
        node_id=_text(fields.get("node_id")),
        fields=_storable_fields(rest) if rest else {},
    )


def _text(value: object) -> str | None:
    return None if value is None else storable(str(value))


def _plain(value: object) -> bool:
    """A value every store keeps as it is: an int, a finite float, storable text."""
    if isinstance(value, int):
        return -(1 << 63) <= value < 1 << 64  # what JSON encoders take
    if isinstance(value, str):
        return text_problem(value) is None
    return isinstance(value, float) and math.isfinite(value)


def _storable_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """Fields as every store keeps them: plain JSON (a datetime as its ISO text, a value
    JSON cannot carry as its ``repr``), with text the store can keep (as ``ctx.log``)."""
    if all(_plain(v) for v in fields.values()):  # the usual: attempt, error, delay_ms
        return fields
    out: dict[str, Any] = {}
    for key, value in storable_value(fields).items():
        if _plain(value):
            out[key] = value
            continue
        try:
            out[key] = orjson.loads(
                orjson.dumps(value, default=repr, option=orjson.OPT_NON_STR_KEYS)
            )
        except TypeError:  # what ``default`` does not reach: an int past 64 bits, say
            out[key] = storable(repr(value))
    return out
