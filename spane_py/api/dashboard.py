"""The web dashboard: static pages served by the API itself (no build step, no CDN).

Pages are plain HTML whose scripts call the JSON API of the same origin. They are sent
with a Content-Security-Policy that allows only this origin's scripts and styles, so the
data they show (node outputs, error messages: user content) can never run as script.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

router = APIRouter(include_in_schema=False)


def _page(name: str) -> FileResponse:
    return FileResponse(STATIC / name, media_type="text/html", headers=_HEADERS)


@router.get("/")
async def executions_page() -> FileResponse:
    return _page("index.html")


@router.get("/executions/{execution_id}")
async def execution_page(execution_id: str) -> FileResponse:
    return _page("execution.html")  # the script reads the id from the URL


@router.get("/dlq")
async def dlq_page() -> FileResponse:
    return _page("dlq.html")


@router.get("/workflows")
async def workflows_page() -> FileResponse:
    return _page("workflows.html")  # ?workflow=<id> selects one


@router.get("/workers")
async def workers_page() -> FileResponse:
    return _page("workers.html")


@router.get("/approvals")
async def approvals_page() -> FileResponse:
    return _page("approvals.html")


def mount(app: FastAPI) -> None:
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")


__all__ = ["CSP", "STATIC", "mount"]
