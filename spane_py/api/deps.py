"""What routes depend on: the engine the app serves, and the bearer-token check."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request

from spane_py.api.errors import ApiError
from spane_py.engine.engine import WorkflowEngine


def get_engine(request: Request) -> WorkflowEngine:
    engine: WorkflowEngine = request.app.state.engine
    return engine


Engine = Annotated[WorkflowEngine, Depends(get_engine)]

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="spane"'}


def presented_token(request: Request, *, allow_query: bool = False) -> str | None:
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise ApiError(
                401,
                "UNAUTHORIZED",
                "the Authorization header must be 'Bearer <token>'",
                headers=_CHALLENGE,
            )
        return value.strip()
    if allow_query:
        # For clients that cannot send headers (a browser's EventSource), the event stream
        # also takes the token as ?access_token=. The dashboard does not use it (it reads
        # the stream with fetch and the header): a URL gets logged, and though the access
        # log of ``spane api`` redacts it (spane_py/api/access_log.py), proxies may not.
        return request.query_params.get("access_token")
    return None


def check_token(request: Request, *, allow_query: bool = False) -> None:
    """Refuse the request unless auth is off or it presents the right token."""
    expected: str | None = request.app.state.api_token
    if expected is None:
        return
    given = presented_token(request, allow_query=allow_query)
    if given is None:
        raise ApiError(
            401,
            "UNAUTHORIZED",
            "this API needs a bearer token: send 'Authorization: Bearer <token>' "
            "(the server's SPANE_API_TOKEN)",
            headers=_CHALLENGE,
        )
    # Constant time: the comparison must not tell how much of a guess was right.
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise ApiError(401, "UNAUTHORIZED", "the bearer token is wrong", headers=_CHALLENGE)


async def require_token(request: Request) -> None:
    check_token(request)


async def require_token_or_query(request: Request) -> None:
    check_token(request, allow_query=True)


__all__ = [
    "Engine",
    "check_token",
    "get_engine",
    "presented_token",
    "require_token",
    "require_token_or_query",
]
