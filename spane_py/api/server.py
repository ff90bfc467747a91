"""Serving the app with uvicorn, for ``spane api``."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import uvicorn
from fastapi import FastAPI

from spane_py.api import access_log


class _Server(uvicorn.Server):
    """uvicorn, minus one habit: once stopped by SIGTERM/SIGINT it raises the signal again
    for an outer handler (it expects to be embedded). Here the signal only means "stop":
    ``serve`` returns, the caller closes the engine (running nodes get their grace period)
    and the process exits 0."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        with super().capture_signals():
            try:
                yield
            finally:
                captured = getattr(self, "_captured_signals", None)
                if isinstance(captured, list):
                    captured.clear()


def build_server(app: FastAPI, *, host: str, port: int, log_level: str) -> uvicorn.Server:
    """The uvicorn server of ``spane api``: its access log shows no credential of a query
    string (``spane_py/api/access_log.py``)."""
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, lifespan="on")
    access_log.install()  # after Config: it has configured uvicorn's loggers
    return _Server(config)


async def serve(app: FastAPI, *, host: str, port: int, log_level: str) -> None:
    """Serve until SIGTERM or SIGINT. The app's lifespan starts (and closes) its engine."""
    await build_server(app, host=host, port=port, log_level=log_level).serve()


__all__ = ["build_server", "serve"]
