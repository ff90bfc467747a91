"""Engine features the API uses when the engine has them: the event stream, Prometheus
metrics and webhook triggers.

They are built apart from the API, so the API looks for them on the engine at request
time instead of importing them, and answers 501 with a message naming what is missing
while they are not there. Once an engine has a method of the shape below, its route works
with no change here:

- ``engine.subscribe(execution_id=..., workflow_id=...)``: an async iterator of events
  (objects or mappings with a stable ``event`` name, ``node.completed`` and the like, and
  JSON fields), across processes; only the filters a request gives are passed;
- ``engine.metrics_text()``: the Prometheus text exposition (sync or async);
- ``engine.trigger_webhook(path, method, body, headers)``: the ids of the executions the
  webhook started (sync or async); ``body`` is the request's body unread (an async iterable
  of its chunks), which it reads within its limit once the signature header passed.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import AsyncIterator, Mapping
from typing import Any, cast

import orjson
from pydantic_core import to_jsonable_python

from spane_py.api.errors import ApiError


def feature(engine: object, name: str, what: str) -> Any:
    """``engine.<name>``, or a 501 naming the missing feature."""
    method = getattr(engine, name, None)
    if method is None or not callable(method):
        raise ApiError(
            501,
            "NOT_IMPLEMENTED",
            f"{what} is not available: this engine has no {name}()",
            details={"missing": name},
        )
    return method


async def call(method: Any, *args: Any, **kwargs: Any) -> Any:
    """Call a method that may be sync or async."""
    result = method(*args, **kwargs)
    if inspect.isawaitable(result):
        result = await result
    return result


async def subscribe(engine: object, **filters: str | None) -> AsyncIterator[Any]:
    """The engine's subscription, made now: what is emitted once this returns is in it (a
    response that started streaming first would lose what came in between)."""
    method = feature(engine, "subscribe", "the event stream")
    given = {k: v for k, v in filters.items() if v is not None}
    stream = method(**given)
    if inspect.isawaitable(stream):  # an async function returning the iterator
        stream = await stream
    return cast(AsyncIterator[Any], stream)


def event_fields(event: Any) -> tuple[str, dict[str, Any]]:
    """An event's stable name and its fields as JSON-ready values."""
    data: dict[str, Any]
    if hasattr(event, "model_dump"):
        data = event.model_dump(mode="json")
    elif dataclasses.is_dataclass(event) and not isinstance(event, type):
        data = dataclasses.asdict(event)
    elif isinstance(event, Mapping):
        data = dict(event)
    else:
        data = {"value": event}
    name = data.get("event") or data.get("name") or data.get("type") or "message"
    # Datetimes, enums and the like become JSON; anything stranger its str().
    return str(name), to_jsonable_python(data, fallback=str)


def sse_frame(name: str, data: Mapping[str, Any], event_id: str | None = None) -> bytes:
    """One Server-Sent Events frame (data is one line of JSON: it never has newlines)."""
    lines = [f"event: {name}"]
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.append(f"data: {orjson.dumps(data).decode()}")
    return ("\n".join(lines) + "\n\n").encode()


__all__ = ["call", "event_fields", "feature", "sse_frame", "subscribe"]
