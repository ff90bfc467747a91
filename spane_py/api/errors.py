"""Every failure of a request becomes one JSON shape, ``{"error": {"code", "message", ...}}``,
with the HTTP status that says whose fault it is.

spane_py's errors keep their ``code`` and fields (``SpaneError.to_dict()``); FastAPI's
validation errors and Starlette's 404/405 are rewritten into the same shape, with a message
a person can act on (which field, what was wrong) instead of pydantic's raw list.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from spane_py import errors as e

logger = logging.getLogger("spane_py.api")

# Most specific first: the first class the error is an instance of wins.
_STATUS: tuple[tuple[type[e.SpaneError], int], ...] = (
    (e.WorkflowNotFoundError, 404),
    (e.ExecutionNotFoundError, 404),
    (e.ArtifactNotFoundError, 404),
    (e.DlqItemNotFoundError, 404),
    (e.WebhookNotFoundError, 404),
    (e.ScheduleNotFoundError, 404),
    (e.WebhookSignatureError, 401),
    (e.WebhookPayloadTooLargeError, 413),
    (e.WebhookPayloadError, 400),
    (e.InvalidTriggerError, 422),
    (e.WorkflowValidationError, 422),  # NodeNotRegisteredError too
    (e.InvalidEnqueueOptionsError, 422),
    (e.InvalidInputError, 422),
    (e.SerializationError, 422),
    (e.MaxDepthExceededError, 422),
    (e.InvalidExecutionStateError, 409),
    (e.ExecutionWaitTimeoutError, 504),
    (e.ConfigurationError, 503),  # for example: the engine is not started
    (e.StatePersistenceError, 503),
    (e.QueueError, 503),
)

# What a client is told when the store or the queue fails: their messages carry the
# driver's text (a SQL error, a host and port), which is for the server's log only.
_WITHHELD: tuple[tuple[type[e.SpaneError], str], ...] = (
    (e.StatePersistenceError, "the state store (the database) failed"),
    (e.QueueError, "the job queue (Redis) failed"),
)

# ResumeTokenError.details["reason"] -> status: an unknown token is not found; one that
# can never work again is gone; one whose node stopped waiting conflicts with its state.
_TOKEN_STATUS = {"unknown": 404, "expired": 410, "used": 410, "revoked": 410}


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: dict[str, Any] = {}
    workflow_id: str | None = None
    execution_id: str | None = None
    node_id: str | None = None


class ErrorBody(BaseModel):
    """The body of every 4xx and 5xx answer."""

    error: ErrorDetail


class ApiError(Exception):
    """A request the API refuses on its own (bad cursor, missing token, no SSE support)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        details: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = dict(details or {})
        self.headers = dict(headers or {})


def status_for(exc: e.SpaneError) -> int:
    """The HTTP status of a spane_py error."""
    if isinstance(exc, e.ResumeTokenError):
        return _TOKEN_STATUS.get(str(exc.details.get("reason")), 409)
    for cls, status in _STATUS:
        if isinstance(exc, cls):
            return status
    # Errors added later (webhooks, ...) follow their code until they are listed above.
    if exc.code.endswith("_NOT_FOUND"):
        return 404
    if "UNAUTHORIZED" in exc.code or "SIGNATURE" in exc.code:
        return 401
    return 500


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    details: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
    **ids: str | None,
) -> JSONResponse:
    body = ErrorBody(
        error=ErrorDetail(code=code, message=message, details=dict(details or {}), **ids)
    )
    return JSONResponse(body.model_dump(mode="json"), status_code=status, headers=headers)


def describe_validation(errors: Sequence[Any]) -> str:
    """pydantic's errors of a request as one sentence per problem, naming where it is."""
    parts: list[str] = []
    for err in errors:
        loc = [str(p) for p in err.get("loc", ())]
        kind = err.get("type", "")
        source, field = (loc[0], ".".join(loc[1:])) if loc else ("request", "")
        if kind == "json_invalid":
            reason = (err.get("ctx") or {}).get("error", err.get("msg", ""))
            parts.append(f"the request body is not valid JSON: {reason}")
            continue
        if source == "body" and not field and kind == "missing":
            parts.append("the request needs a JSON body")
            continue
        if source == "body" and not field and kind in ("model_attributes_type", "dict_type"):
            parts.append(
                "the request body must be a JSON object (and sent as Content-Type: "
                "application/json)"
            )
            continue
        where = {
            "body": f"body field {field!r}" if field else "the request body",
            "query": f"query parameter {field!r}",
            "path": f"path parameter {field!r}",
            "header": f"header {field!r}",
        }.get(source, ".".join(loc) or "the request")
        msg = str(err.get("msg", "is invalid"))
        if kind == "extra_forbidden":
            msg = "is not a known field"
        parts.append(f"{where}: {msg}")
    return "; ".join(parts) or "the request is invalid"


def install(app: FastAPI) -> None:
    """Register the handlers that give every error the same shape."""

    async def spane_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, e.SpaneError)
        status = status_for(exc)
        message, details = exc.message, exc.details
        if status >= 500:
            logger.error("%s %s failed: %s", request.method, request.url.path, exc)
            for cls, withheld in _WITHHELD:
                if isinstance(exc, cls):
                    message = f"{withheld}; the server's log has the details"
                    details = {}
                    break
        return error_response(
            status,
            exc.code,
            message,
            details=details,
            workflow_id=exc.workflow_id,
            execution_id=exc.execution_id,
            node_id=exc.node_id,
        )

    async def api_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return error_response(
            exc.status, exc.code, exc.message, details=exc.details, headers=exc.headers
        )

    async def invalid_request(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        problems = [
            {"loc": list(err.get("loc", ())), "msg": err.get("msg"), "type": err.get("type")}
            for err in exc.errors()
        ]
        return error_response(
            422,
            "INVALID_REQUEST",
            describe_validation(exc.errors()),
            details={"errors": problems},
        )

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 413: "PAYLOAD_TOO_LARGE"}.get(
            exc.status_code, "HTTP_ERROR"
        )
        message = str(exc.detail)
        if exc.status_code == 404 and message == "Not Found":
            message = f"no route {request.url.path!r}: see /docs for the API's routes"
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path!r}"
        return error_response(exc.status_code, code, message, headers=exc.headers)

    app.add_exception_handler(e.SpaneError, spane_error)
    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(StarletteHTTPException, http_error)


__all__ = [
    "ApiError",
    "ErrorBody",
    "ErrorDetail",
    "describe_validation",
    "error_response",
    "install",
    "status_for",
]
