"""Serving the app with uvicorn, for ``spane api``."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import uvicorn
from fastapi import FastAPI


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


async def serve(app: FastAPI, *, host: str, port: int, log_level: str) -> None:
    """Serve until SIGTERM or SIGINT. The app's lifespan starts (and closes) its engine."""
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, lifespan="on")
    await _Server(config).serve()


__all__ = ["serve"]
