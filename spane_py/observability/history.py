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
node.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson

from spane_py._text import storable, storable_value, text_problem
from spane_py.clock import Clock
from spane_py.errors import SpaneError, StatePersistenceError
from spane_py.observability import events
from spane_py.records import EventRecord
from spane_py.stores.base_history import EventStore

logger = logging.getLogger("spane_py.events")

MAX_BUFFERED = 10_000
RETRY_AFTER_S = 1.0
_NOT_RECORDED = frozenset({events.NODE_SPAN, events.EXECUTION_SPAN})
_IDS = ("execution_id", "workflow_id", "node_id")


class EventHistory:
    """The sink that writes events to the store (see the module docstring)."""

    def __init__(
        self,
        store: EventStore,
        clock: Clock,
        *,
        flush_interval: float = 0.1,
        max_batch: int = 500,
    ) -> None:
        self.store = store
        self.clock = clock
        self.flush_interval = flush_interval
        self.max_batch = max_batch
        self._buffer: list[tuple[str, datetime, Mapping[str, Any]]] = []
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.Handle | None = None
        self._last_flush = 0.0  # loop time
        self._writing: asyncio.Task[None] | None = None
        self._closed = False

    def __call__(self, name: str, fields: Mapping[str, Any]) -> None:
        if name in _NOT_RECORDED or self._closed:
            return
        # Turned into records when written, off the hop's path (``emit`` made ``fields``
        # for its sinks alone).
        self._buffer.append((name, self.clock.now(), fields))
        if self._writing is None and (self._timer is None or len(self._buffer) >= self.max_batch):
            try:
                same_loop = asyncio.get_running_loop() is self._loop
            except RuntimeError:
                same_loop = False
            if same_loop:
                self._schedule()
            else:
                self._loop.call_soon_threadsafe(self._schedule)

    def _schedule(self) -> None:
        if self._writing is not None or not self._buffer:
            return
        if len(self._buffer) >= self.max_batch:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = self._loop.call_soon(self._flush)
            return
        if self._timer is None:
            delay = self._last_flush + self.flush_interval - self._loop.time()
            self._timer = self._loop.call_later(max(delay, 0.0), self._flush)

    def _flush(self) -> None:
        self._timer = None
        if self._writing is not None:
            return
        self._last_flush = self._loop.time()
        batch, self._buffer = self._buffer, []
        if batch:
            self._writing = self._loop.create_task(self._write(batch), name="spane-history")
            self._writing.add_done_callback(self._written)

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
            kept = (batch + self._buffer)[-MAX_BUFFERED:]
            dropped = len(batch) + len(self._buffer) - len(kept)
            self._buffer = kept
            logger.warning(
                "could not record %d event(s) in the event history: %s%s",
                len(batch),
                exc,
                f" ({dropped} dropped)" if dropped else "",
            )
            self._last_flush = self._loop.time() + RETRY_AFTER_S  # the next try waits

    def _written(self, task: asyncio.Task[None]) -> None:
        self._writing = None
        if not task.cancelled() and task.exception() is not None:
            logger.error("recording events failed", exc_info=task.exception())
        if self._buffer and not self._closed:
            self._schedule()

    async def flush(self) -> None:
        """Write what is buffered now; returns once it is in the store (or failed)."""
        if self._writing is not None:
            await asyncio.wait([self._writing])
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._flush()
        if self._writing is not None:
            await asyncio.wait([self._writing])

    async def close(self) -> None:
        """Write what is buffered (one try), then stop."""
        self._closed = True
        await self.flush()
        self._buffer.clear()


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
