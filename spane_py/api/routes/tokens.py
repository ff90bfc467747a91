"""Resume tokens: list them, check one, resume a waiting node with one, revoke one.

Tokens travel in request bodies, never in URLs, which access logs and browser histories
keep.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from spane_py.api import models, responses
from spane_py.api.deps import Engine
from spane_py.api.errors import ErrorBody
from spane_py.errors import ResumeTokenError

router = APIRouter(tags=["resume tokens"])

TOKEN_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "Unknown token"},
    409: {"model": ErrorBody, "description": "Its node no longer waits for it"},
    410: {"model": ErrorBody, "description": "Used, revoked or expired"},
}


@router.get("/resume-tokens", response_model=list[models.ResumeToken], summary="List resume tokens")
async def list_resume_tokens(
    engine: Engine,
    execution_id: Annotated[str | None, Query(max_length=100)] = None,
    active_only: bool = True,
) -> list[models.ResumeToken]:
    """Oldest first; by default only those that can still resume their node."""
    records = await engine.list_resume_tokens(execution_id, active_only=active_only)
    now = engine.clock.now()
    return [responses.resume_token(r, now) for r in records]


@router.post(
    "/resume-tokens/validate",
    response_model=models.ResumeToken,
    summary="Check a resume token",
    responses=TOKEN_ERRORS,
)
async def validate_resume_token(engine: Engine, body: models.TokenRequest) -> models.ResumeToken:
    """The token's record when it can resume its node now; 404/410 say why not."""
    record = await engine.validate_resume_token(body.token)
    return responses.resume_token(record, engine.clock.now())


@router.post(
    "/resume",
    response_model=models.Resumed,
    summary="Resume a waiting node",
    responses=TOKEN_ERRORS,
)
async def resume_with_token(engine: Engine, body: models.ResumeRequest) -> models.Resumed:
    """Complete the wait node waiting for ``token`` with ``data`` as its output. A token
    works once."""
    execution_id = await engine.resume(body.token, body.data)
    return models.Resumed(execution_id=execution_id)


@router.post(
    "/resume-tokens/revoke",
    response_model=models.Revoked,
    summary="Revoke a resume token",
    responses=TOKEN_ERRORS,
)
async def revoke_resume_token(engine: Engine, body: models.TokenRequest) -> models.Revoked:
    """The token can no longer be used; its node keeps waiting (until its timeout or a
    cancel)."""
    await engine.store.start()
    record = await engine.store.get_token(body.token)
    if record is None:
        raise ResumeTokenError("unknown resume token", details={"reason": "unknown"})
    if not await engine.revoke_resume_token(body.token):
        state = record.state(engine.clock.now())
        state = state if state in ("used", "revoked") else "revoked"
        raise ResumeTokenError(
            f"the resume token is {state} already",
            execution_id=record.execution_id,
            node_id=record.node_id,
            details={"reason": state},
        )
    return models.Revoked(token=body.token, revoked=True)


__all__ = ["router"]
