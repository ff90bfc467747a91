"""``/api/webhooks/{path}``: start the workflows whose webhook trigger has this path.

Not behind the API token: webhook callers are other systems, and each trigger carries its
own secret, which ``engine.trigger_webhook`` checks against the request's headers. The body
goes to the engine unread, as the stream of its chunks: the engine finds the webhook and
checks the signature header first, then reads the body within the payload limit (refusing
by ``Content-Length`` before reading), and the signature is computed over exactly those
bytes. See ``spane_py/triggers/webhooks.py`` for the order of the checks.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request

from spane_py.api import models, optional
from spane_py.api.deps import Engine
from spane_py.api.errors import ErrorBody

router = APIRouter(tags=["webhooks"])

METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


async def trigger_webhook(
    request: Request, engine: Engine, path: Annotated[str, Path(min_length=1, max_length=500)]
) -> models.WebhookTriggered:
    """The JSON body becomes the executions' initial data (an empty body: null)."""
    method = optional.feature(engine, "trigger_webhook", "webhook triggers")
    headers = {k.lower(): v for k, v in request.headers.items()}
    result = await optional.call(method, path.strip("/"), request.method, request.stream(), headers)
    ids = [result] if isinstance(result, str) else list(result or [])
    return models.WebhookTriggered(execution_ids=[str(i) for i in ids])


for _method in METHODS:  # one route per method: OpenAPI operation ids must be unique
    router.add_api_route(
        "/webhooks/{path:path}",
        trigger_webhook,
        methods=[_method],
        name=f"trigger_webhook_{_method.lower()}",
        response_model=models.WebhookTriggered,
        status_code=202,
        summary=f"Trigger a webhook ({_method})",
        responses={
            400: {"model": ErrorBody, "description": "The body is not valid JSON"},
            401: {
                "model": ErrorBody,
                "description": "The signature is missing, malformed, outside its time window "
                "or wrong",
            },
            404: {"model": ErrorBody, "description": "No webhook trigger has this path"},
            413: {"model": ErrorBody, "description": "The body is too large"},
            501: {"model": ErrorBody, "description": "The engine has no trigger_webhook()"},
        },
    )


__all__ = ["router"]
