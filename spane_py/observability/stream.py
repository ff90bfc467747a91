"""The event stream: engine events in a Redis stream, read by ``engine.subscribe``.

Every process of an engine (the API, each worker) publishes the events it emits to the
stream ``<prefix>:events``, so a subscriber anywhere sees all of them. A Redis stream
rather than pub/sub because a stream keeps what was added while nobody was reading:
a subscription remembers the stream's last entry id when it is created and reads from
there, so no event between ``subscribe()`` and the first read is lost, nor any while the
subscriber is busy — as long as it keeps within the stream's length cap (about
``maxlen`` events, 10,000 by default), past which the oldest are trimmed.

Publishing costs a node hop next to nothing: the sink appends the event to a buffer,
which goes out as one stream entry holding all the events buffered (one ``XADD`` in one
round trip, whatever their number): at once when the last send is ``flush_interval``
(10 ms) old or more, else when it is — a lone event is sent right away, a busy process
sends at most 100 entries a second, one at a time. So the events of one process reach the
stream in order; those of different processes in the order they reach Redis, which may
differ from the order of their ``at`` by up to that interval. (The buffering is
``BufferedSink``'s, in buffered.py, which the event history shares.)

An event's id is its place in the stream: ``<entry id>.<index in the entry>``; a
subscription resumes after any such id (``after=``), or after a whole entry given by its
entry id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field
from redis.asyncio import Redis
from redis.exceptions import RedisError

from spane_py.errors import ConfigurationError
from spane_py.observability import events
from spane_py.observability.buffered import BufferedSink

logger = logging.getLogger("spane_py.events")

DEFAULT_MAXLEN = 10_000
# Events kept in memory while Redis cannot be reached; past it the oldest are dropped.
MAX_BUFFERED = 10_000
# A stream nobody has written to for this long expires: a deployment (or a test's key
# prefix) that is gone leaves nothing behind.
STREAM_TTL_MS = 7 * 24 * 3600 * 1000
# After a failed send, the next one waits this long (plus flush_interval).
RETRY_AFTER_S = 1.0
# How long one XREAD waits for news before looking again (a closed subscription notices).
READ_BLOCK_MS = 1_000
# A subscription that lost Redis tries again, waiting longer each time up to this.
MAX_RETRY_DELAY_S = 5.0

# The entry's one field: the events as JSON objects ({"event", "at", "fields"}), one per
# line (JSON text holds no raw newline).
FIELD = b"e"
# The largest id below every id of a millisecond (what XREAD needs to read an entry again).
_MAX_SEQ = 2**64 - 1

# The status an event leaves its execution or node in (``EngineEvent.status``).
STATUS = {
    events.EXECUTION_STARTED: "running",
    events.EXECUTION_COMPLETED: "completed",
    events.EXECUTION_FAILED: "failed",
    events.EXECUTION_CANCELLED: "cancelled",
    events.EXECUTION_PAUSED: "paused",
    events.EXECUTION_RESUMED: "running",
    events.EXECUTION_RETRIED: "running",
    events.EXECUTION_REPLAYED: "running",
    events.NODE_STARTED: "running",
    events.NODE_COMPLETED: "succeeded",
    events.NODE_FAILED: "failed",
    events.NODE_RETRYING: "retrying",
    events.NODE_SKIPPED: "skipped",
    events.NODE_DROPPED: "cancelled",
    events.NODE_WAITING: "waiting",
    events.NODE_RESUMED: "succeeded",
}
SETTLING = frozenset(
    {events.EXECUTION_COMPLETED, events.EXECUTION_FAILED, events.EXECUTION_CANCELLED}
)


class EngineEvent(BaseModel):
    """One event of the engine, as the stream delivers it.

    ``name`` is a stable event name (``node.completed``, ``execution.failed``, ...);
    ``status`` the status it leaves its node (``node.*``) or execution (``execution.*``)
    in; ``fields`` the event's other fields (``attempt``, ``error``, ...); ``id`` its
    place in the stream, ``<entry id>.<index>`` (``subscribe(after=id)`` resumes after it).
    """

    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    at: datetime
    execution_id: str | None = None
    workflow_id: str | None = None
    node_id: str | None = None
    status: str | None = None
    fields: dict[str, Any] = Field(default_factory=dict)

    @property
    def settles_execution(self) -> bool:
        """The execution completed, failed or was cancelled."""
        return self.name in SETTLING


class StreamPublisher(BufferedSink[float]):
    """The sink that sends events to the stream (see the module docstring)."""

    task_name = "spane-events"
    task_failed = "publishing events failed"

    def __init__(
        self,
        redis: Redis,
        key: str,
        *,
        maxlen: int = DEFAULT_MAXLEN,
        flush_interval: float = 0.01,
    ) -> None:
        super().__init__(flush_interval=flush_interval)
        self.redis = redis
        self.key = key
        self.maxlen = maxlen

    def _now(self) -> float:
        return time.time()

    async def _write(self, batch: list[tuple[str, float, Mapping[str, Any]]]) -> None:
        lines = b"\n".join(
            [
                orjson.dumps({"event": name, "at": at, "fields": fields}, default=str)
                for name, at, fields in batch
            ]
        )
        # The cap counts entries: about maxlen events at this entry's size.
        entries = -(-self.maxlen // len(batch))
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.xadd(self.key, {FIELD: lines}, maxlen=entries, approximate=True)
                pipe.pexpire(self.key, STREAM_TTL_MS)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            # Keep them for the next try, within bounds: the stream is best effort.
            dropped = self._retry_later(batch, max_buffered=MAX_BUFFERED, retry_after=RETRY_AFTER_S)
            logger.warning(
                "could not publish %d event(s) to %s: %s%s", len(batch), self.key, exc, dropped
            )


class EventSubscription:
    """An async iterator of ``EngineEvent``; ``aclose()`` (or ``async with``) ends it.

    Created by ``engine.subscribe``; reads the stream from the id it was given (the last
    entry when it was created), keeping the events that match its filter.
    """

    def __init__(
        self,
        client: Redis,
        key: str,
        after: str,
        *,
        execution_id: str | None = None,
        workflow_id: str | None = None,
    ) -> None:
        self.key = key
        self.execution_id = execution_id
        self.workflow_id = workflow_id
        # Resuming inside an entry: read that entry again, skipping what was delivered.
        self._skip: tuple[str, int] | None = None
        entry, _, index = after.partition(".")
        if index:
            self._skip = (entry, int(index))
            after = _before(entry)
        self.last_id = after
        self._client: Redis | None = client
        self._ready: list[EngineEvent] = []
        self._failures = 0

    def __aiter__(self) -> EventSubscription:
        return self

    async def __anext__(self) -> EngineEvent:
        while not self._ready:
            if self._client is None:
                raise StopAsyncIteration
            try:
                reply = await self._client.xread(
                    {self.key: self.last_id}, count=500, block=READ_BLOCK_MS
                )
            except (RedisError, OSError) as exc:
                # Read again from the same id once Redis answers: nothing is skipped.
                self._failures += 1
                delay = min(0.1 * 2**self._failures, MAX_RETRY_DELAY_S)
                logger.warning("event subscription lost Redis (%s); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                continue
            self._failures = 0
            # No await from here on: a cancelled read loses nothing.
            for _stream, entries in reply or ():
                for entry_id, data in entries:
                    self.last_id = _text(entry_id)
                    events = decode(self.last_id, data)
                    if self._skip is not None:
                        if self._skip[0] == self.last_id:
                            events = events[self._skip[1] + 1 :]
                        self._skip = None
                    self._ready += [e for e in events if self.matches(e)]
        return self._ready.pop(0)

    def matches(self, event: EngineEvent) -> bool:
        if self.execution_id is not None and event.execution_id != self.execution_id:
            return False
        return self.workflow_id is None or event.workflow_id == self.workflow_id

    async def aclose(self) -> None:
        client, self._client = self._client, None
        self._ready.clear()
        if client is not None:
            with contextlib.suppress(RedisError, OSError):
                await client.aclose()

    async def __aenter__(self) -> EventSubscription:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


async def subscribe(
    make_client: Callable[[], Redis],
    key: str,
    *,
    execution_id: str | None = None,
    workflow_id: str | None = None,
    after: str | None = None,
) -> EventSubscription:
    """A subscription to the events of ``key`` added after this call returns (or after
    ``after``: an event's id, or an entry's; ``"0"``: everything the stream still holds)."""
    if after is not None and not _valid_position(after):
        raise ConfigurationError(
            f"after must be an event id ('<ms>-<seq>.<index>'), an entry id ('<ms>-<seq>') "
            f"or '0', got {after!r}"
        )
    client = make_client()
    try:
        if after is None:
            last = await client.xrevrange(key, count=1)
            after = _text(last[0][0]) if last else "0-0"
    except BaseException:
        await client.aclose()
        raise
    return EventSubscription(client, key, after, execution_id=execution_id, workflow_id=workflow_id)


def decode(entry_id: str, data: Mapping[Any, Any]) -> list[EngineEvent]:
    """The events of one stream entry (none when it is not one of ours)."""
    lines = data.get(FIELD)
    if not isinstance(lines, bytes):
        return []
    events = []
    for index, line in enumerate(lines.split(b"\n")):
        event = _decode_one(f"{entry_id}.{index}", line)
        if event is not None:
            events.append(event)
    return events


def _decode_one(event_id: str, line: bytes) -> EngineEvent | None:
    try:
        entry = orjson.loads(line)
        name = str(entry["event"])
        at = datetime.fromtimestamp(float(entry["at"]), UTC)
        fields = entry["fields"]
    except (KeyError, ValueError, TypeError, orjson.JSONDecodeError):
        return None
    if not isinstance(fields, dict):
        return None
    fields = {k: v for k, v in fields.items() if v is not None}
    return EngineEvent(
        id=event_id,
        name=name,
        at=at,
        execution_id=_opt(fields.pop("execution_id", None)),
        workflow_id=_opt(fields.pop("workflow_id", None)),
        node_id=_opt(fields.pop("node_id", None)),
        status=STATUS.get(name),
        fields=fields,
    )


def _valid_position(value: str) -> bool:
    entry, dot, index = value.partition(".")
    if dot and not index.isdigit():
        return False
    if entry == "0":
        return not dot
    ms, dash, seq = entry.partition("-")
    return ms.isdigit() and (not dash or seq.isdigit())


def _before(entry_id: str) -> str:
    """The id just below ``entry_id``: reading after it reads that entry again."""
    ms, _, seq = entry_id.partition("-")
    if seq and int(seq) > 0:
        return f"{ms}-{int(seq) - 1}"
    return f"{int(ms) - 1}-{_MAX_SEQ}" if int(ms) > 0 else "0-0"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _opt(value: object) -> str | None:
    return None if value is None else str(value)
