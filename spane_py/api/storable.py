"""Path and query parameters are text the stores can hold.

A NUL character (``%00``) in an id, a filter or a note would reach PostgreSQL, which refuses
it (and the in-memory store would quietly find nothing): every route refuses it first with
a 422 naming the parameter, in the shape of FastAPI's own validation errors. Body fields
are checked by their models (``spane_py.api.models``) and by the engine.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError

from spane_py._text import text_problem


async def storable_params(request: Request) -> None:
    """Refuse the request when a path or query parameter holds text that cannot be stored."""
    problems: list[dict[str, Any]] = []
    for source, items in (
        ("path", list(request.path_params.items())),
        ("query", request.query_params.multi_items()),
    ):
        for name, value in items:
            problem = text_problem(value) if isinstance(value, str) else None
            if problem is not None:
                problems.append(
                    {"loc": (source, name), "msg": problem, "type": "string_unstorable"}
                )
    if problems:
        raise RequestValidationError(problems)


__all__ = ["storable_params"]
