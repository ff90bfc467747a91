"""``GET /api/events``: the engine's events as Server-Sent Events; and
``GET /api/events/history``: the events recorded in the store (``engine.get_events``).

The stream itself comes from ``engine.subscribe`` (see ``spane_py.api.optional``); until
the engine has it, the route answers 501 and the dashboard falls back to polling. A
comment line goes out every ``KEEPALIVE_S`` so proxies keep an idle stream open. The
history is a plain JSON route (``history``, mounted with the header-only token check).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import AwareDatetime

from spane_py.api import models, optional
from spane_py.api.deps import Engine
from spane_py.api.errors import ApiError, ErrorBody

router = APIRouter(tags=["events"])
history = APIRouter(tags=["events"])

KEEPALIVE_S = 15.0


@router.get(
    "/events",
    summary="Event stream (SSE)",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "One frame per event"},
        501: {"model": ErrorBody, "description": "The engine has no subscribe()"},
    },
)
async def stream_events(
    request: Request,
    engine: Engine,
    execution_id: Annotated[str | None, Query(max_length=100)] = None,
    workflow_id: Annotated[str | None, Query(max_length=128)] = None,
    access_token: Annotated[
        str | None,
        Query(
            description="The API token, for clients that cannot send headers (prefer the "
            "Authorization header: URLs get logged)"
        ),
    ] = None,
) -> StreamingResponse:
    """Each frame is ``event: <name>`` (``execution.completed``, ``node.started``, ...)
    and ``data: <JSON>``; filter by execution or workflow."""
    optional.feature(engine, "subscribe", "the event stream")  # 501 before streaming
    # Subscribed before the response starts: a client that acts once it sees the headers
    # gets every event its action causes.
    stream = await optional.subscribe(engine, execution_id=execution_id, workflow_id=workflow_id)
    return StreamingResponse(
        _frames(request, stream),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _frames(request: Request, stream: AsyncIterator[Any]) -> AsyncIterator[bytes]:
    yield b"retry: 3000\n: connected\n\n"
    iterator = aiter(stream)
    pending: asyncio.Task[Any] | None = None
    try:
        while not await request.is_disconnected():
            if pending is None:
                pending = asyncio.ensure_future(anext(iterator))
            done, _ = await asyncio.wait({pending}, timeout=KEEPALIVE_S)
            if not done:
                yield b": keepalive\n\n"
                continue
            try:
                event = pending.result()
            except StopAsyncIteration:
                return
            finally:
                pending = None
            name, data = optional.event_fields(event)
            yield optional.sse_frame(name, data)
    finally:
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(BaseException):
                await pending
        closer = getattr(iterator, "aclose", None)
        if closer is not None:
            with contextlib.suppress(Exception):
                await closer()


@history.get(
    "/events/history",
    response_model=list[models.HistoryEvent],
    summary="Event history",
    responses={400: {"model": ErrorBody}},
)
async def event_history(
    engine: Engine,
    execution_id: Annotated[str | None, Query(max_length=100)] = None,
    types: Annotated[
        list[str] | None,
        Query(alias="type", max_length=50, description="An event name; repeat for several"),
    ] = None,
    since: Annotated[AwareDatetime | None, Query(description="At or after (ISO 8601)")] = None,
    until: Annotated[AwareDatetime | None, Query(description="Before (ISO 8601)")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[models.HistoryEvent]:
    """Recorded events, oldest first: of one execution, of some types, in a time range."""
    if since is not None and until is not None and since >= until:
        raise ApiError(400, "INVALID_RANGE", "since must be earlier than until")
    found = await engine.get_events(
        execution_id, types=types, since=since, until=until, limit=limit
    )
    return [
        models.HistoryEvent(
            type=e.type,
            at=e.at,
            execution_id=e.execution_id,
            workflow_id=e.workflow_id,
            node_id=e.node_id,
            fields=dict(e.fields),
        )
        for e in found
    ]


__all__ = ["KEEPALIVE_S", "history", "router"]
