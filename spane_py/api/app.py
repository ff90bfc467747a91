"""``create_app(engine)``: the HTTP API and the dashboard, as one FastAPI application.

    /            the dashboard (executions), /executions/{id}, /workflows, /workers,
                 /approvals, /dlq
    /api/...     the JSON API (OpenAPI at /openapi.json, docs at /docs)
    /healthz     Redis, the store and live workers (always open)
    /metrics     Prometheus text

The app owns the engine's lifetime when it runs under a server: its lifespan starts the
engine (and, with ``worker_concurrency``, a worker in this process) and closes it at
shutdown.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from spane_py import __version__
from spane_py.api import access_log, dashboard, errors
from spane_py.api.deps import require_token, require_token_or_query
from spane_py.api.routes import (
    approvals,
    control,
    dlq,
    events,
    executions,
    system,
    tokens,
    triggers,
    webhooks,
    workflows,
)
from spane_py.api.settings import ApiSettings
from spane_py.api.storable import storable_params
from spane_py.engine.engine import WorkflowEngine

DEFAULT_MAX_BODY_BYTES = 32 << 20


class BodyLimit:
    """Refuse request bodies over ``max_bytes`` with a 413: at once when Content-Length
    says so, else (a chunked body) as soon as more has arrived. A plain ASGI middleware:
    Starlette's ``BaseHTTPMiddleware`` would wrap the event stream's responses."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await self._too_large(value.decode())(scope, receive, send)
                return
        seen = 0

        async def counting() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                # Raised where the route reads the body; FastAPI lets HTTPException (only)
                # through its body parsing, to the error handlers.
                raise HTTPException(413, self._message(f"over {seen}"))
            return message

        await self.app(scope, counting, send)

    def _message(self, size: str) -> str:
        return f"the request body has {size} bytes, over the limit of {self.max_bytes}"

    def _too_large(self, size: str) -> ASGIApp:
        return errors.error_response(413, "PAYLOAD_TOO_LARGE", self._message(size))


def create_app(
    engine: WorkflowEngine,
    settings: ApiSettings | None = None,
    *,
    worker_concurrency: int = 0,
    close_engine: bool = True,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> FastAPI:
    """The API and dashboard for ``engine``.

    ``settings`` defaults to ``ApiSettings()`` (the token and CORS origins from the
    environment). ``worker_concurrency`` > 0 also runs a worker in the server's process
    (needed with the in-memory store, which other processes cannot see).
    ``close_engine=False`` leaves the engine open at shutdown (its owner closes it).
    """
    settings = settings if settings is not None else ApiSettings()
    access_log.install()  # whichever server runs the app: no token of a URL in its log

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await engine.start()
        if worker_concurrency > 0:
            await engine.start_workers(worker_concurrency)
        try:
            yield
        finally:
            if close_engine:  # running nodes of an in-process worker get the usual grace
                await engine.close(grace_seconds=engine.shutdown_grace)
            elif worker_concurrency > 0:
                await engine.stop_workers()

    app = FastAPI(
        title="spane_py",
        version=__version__,
        summary="Workflows, executions, control, resume tokens and the dead-letter queue.",
        lifespan=lifespan,
        # Operation ids are the route functions' names (unique): clean generated clients.
        generate_unique_id_function=lambda route: route.name,
        # A NUL character in a path or query parameter: a 422 naming it, on every route.
        dependencies=[Depends(storable_params)],
    )
    app.state.engine = engine
    app.state.api_token = settings.token_value
    errors.install(app)

    api = "/api"
    auth = [Depends(require_token)]
    app.include_router(workflows.router, prefix=api, dependencies=auth)
    app.include_router(control.router, prefix=api, dependencies=auth)  # before executions/{id}
    app.include_router(executions.router, prefix=api, dependencies=auth)
    app.include_router(tokens.router, prefix=api, dependencies=auth)
    app.include_router(approvals.router, prefix=api, dependencies=auth)
    app.include_router(triggers.router, prefix=api, dependencies=auth)
    app.include_router(dlq.router, prefix=api, dependencies=auth)
    app.include_router(system.router, prefix=api, dependencies=auth)
    app.include_router(events.history, prefix=api, dependencies=auth)
    app.include_router(events.router, prefix=api, dependencies=[Depends(require_token_or_query)])
    app.include_router(webhooks.router, prefix=api)
    app.include_router(system.probes)
    dashboard.mount(app)

    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    if settings.origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
        )
    return app


__all__ = ["DEFAULT_MAX_BODY_BYTES", "create_app"]
