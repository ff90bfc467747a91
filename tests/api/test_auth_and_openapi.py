"""Bearer-token auth, CORS, the OpenAPI document, and the dashboard's static pages."""

from __future__ import annotations

import tomllib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openapi_spec_validator import validate

from spane_py import WorkflowEngine
from spane_py.api import ApiSettings, create_app
from spane_py.api.dashboard import CSP, STATIC
from tests.api._support import error_of, make_client

TOKEN = "s3cret-token"
REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def locked(running: WorkflowEngine) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app whose API needs the token (it sends none by itself)."""
    app = create_app(running, ApiSettings(token=TOKEN), close_engine=False)
    async with make_client(app) as c:
        yield c


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize(
    ("headers", "needle"),
    [
        ({}, "this API needs a bearer token"),
        (_bearer("wrong"), "the bearer token is wrong"),
        (_bearer(TOKEN + "x"), "the bearer token is wrong"),
        ({"Authorization": f"Basic {TOKEN}"}, "must be 'Bearer <token>'"),
        ({"Authorization": "Bearer "}, "must be 'Bearer <token>'"),
    ],
)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/workflows"),
        ("POST", "/api/workflows/greet/executions"),
        ("GET", "/api/executions"),
        ("POST", "/api/executions/bulk/pause"),
        ("GET", "/api/dlq"),
        ("POST", "/api/resume"),
        ("GET", "/api/stats"),
        ("GET", "/api/events"),
        ("GET", "/api/events/history"),
        ("GET", "/api/approvals"),
        ("GET", "/api/schedules"),
        ("POST", "/api/schedules/any/pause"),
        ("GET", "/api/webhook-triggers"),
        ("GET", "/metrics"),
    ],
)
async def test_without_the_right_token_is_401(
    locked: httpx.AsyncClient, method: str, path: str, headers: dict[str, str], needle: str
) -> None:
    res = await locked.request(method, path, headers=headers)
    assert res.status_code == 401, res.text
    assert res.headers["www-authenticate"].startswith("Bearer")
    error = error_of(res)
    assert error["code"] == "UNAUTHORIZED"
    assert needle in error["message"]


async def test_with_the_token(locked: httpx.AsyncClient) -> None:
    res = await locked.get("/api/workflows", headers=_bearer(TOKEN))
    assert res.status_code == 200
    res = await locked.post(
        "/api/workflows/greet/executions", json={"input": 1}, headers=_bearer(TOKEN)
    )
    assert res.status_code == 201


async def test_event_stream_takes_the_token_as_a_query_parameter(
    locked: httpx.AsyncClient, running: WorkflowEngine
) -> None:
    async def one_event(**filters: Any) -> AsyncIterator[Any]:
        yield {"event": "execution.completed", "execution_id": "e1"}

    running.subscribe = one_event  # type: ignore[method-assign]  # a finite stream
    # EventSource cannot send headers.
    res = await locked.get("/api/events", params={"access_token": TOKEN})
    assert res.status_code == 200
    assert "execution.completed" in res.text
    res = await locked.get("/api/events", params={"access_token": "wrong"})
    assert res.status_code == 401
    # Other routes do not take it from the URL.
    res = await locked.get("/api/workflows", params={"access_token": TOKEN})
    assert res.status_code == 401


@pytest.mark.parametrize(
    "path",
    [
        "/healthz",
        "/",
        "/dlq",
        "/executions/x",
        "/workflows",
        "/workers",
        "/approvals",
        "/static/common.js",
        "/openapi.json",
    ],
)
async def test_probes_pages_and_schema_stay_open(locked: httpx.AsyncClient, path: str) -> None:
    res = await locked.get(path)
    assert res.status_code == 200, res.text


async def test_webhooks_are_not_behind_the_token(locked: httpx.AsyncClient) -> None:
    res = await locked.post("/api/webhooks/anything", json={})
    assert res.status_code == 404  # reached the route: triggers check their own secrets
    assert res.json()["error"]["code"] == "WEBHOOK_NOT_FOUND"


async def test_empty_token_means_auth_off(running: WorkflowEngine) -> None:
    app = create_app(running, ApiSettings(token=""), close_engine=False)
    async with make_client(app) as c:
        assert (await c.get("/api/workflows")).status_code == 200


async def test_token_from_the_environment(
    running: WorkflowEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPANE_API_TOKEN", TOKEN)
    app = create_app(running, close_engine=False)
    async with make_client(app) as c:
        assert (await c.get("/api/workflows")).status_code == 401
        assert (await c.get("/api/workflows", headers=_bearer(TOKEN))).status_code == 200


async def test_cors_is_off_by_default(client: httpx.AsyncClient) -> None:
    res = await client.options(
        "/api/workflows",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
    )
    assert "access-control-allow-origin" not in res.headers
    res = await client.get("/api/workflows", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in res.headers


async def test_cors_for_configured_origins(running: WorkflowEngine) -> None:
    app = create_app(
        running, ApiSettings(cors_origins="https://ops.example, https://b.example"),
        close_engine=False,
    )  # fmt: skip
    async with make_client(app) as c:
        res = await c.get("/api/workflows", headers={"Origin": "https://ops.example"})
        assert res.headers["access-control-allow-origin"] == "https://ops.example"
        res = await c.get("/api/workflows", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in res.headers


async def test_openapi_schema_validates(client: httpx.AsyncClient) -> None:
    res = await client.get("/openapi.json")
    assert res.status_code == 200
    spec = res.json()
    validate(spec)  # raises on an invalid OpenAPI 3.1 document
    paths = spec["paths"]
    expected = {
        "/api/workflows": {"get", "post"},
        "/api/workflows/{workflow_id}": {"get"},
        "/api/workflows/{workflow_id}/versions": {"get"},
        "/api/workflows/{workflow_id}/versions/{version}": {"get"},
        "/api/workflows/{workflow_id}/executions": {"post"},
        "/api/workflows/{workflow_id}/executions/bulk": {"post"},
        "/api/executions": {"get"},
        "/api/executions/{execution_id}": {"get"},
        "/api/executions/{execution_id}/trace": {"get"},
        "/api/executions/{execution_id}/artifacts": {"get"},
        "/api/executions/{execution_id}/artifacts/{name}": {"get"},
        "/api/executions/{execution_id}/pause": {"post"},
        "/api/executions/{execution_id}/resume": {"post"},
        "/api/executions/{execution_id}/cancel": {"post"},
        "/api/executions/{execution_id}/retry": {"post"},
        "/api/executions/{execution_id}/replay": {"post"},
        "/api/executions/bulk/{action}": {"post"},
        "/api/resume-tokens": {"get"},
        "/api/resume-tokens/validate": {"post"},
        "/api/resume-tokens/revoke": {"post"},
        "/api/resume": {"post"},
        "/api/approvals": {"get"},
        "/api/schedules": {"get"},
        "/api/schedules/{schedule_id}/pause": {"post"},
        "/api/schedules/{schedule_id}/resume": {"post"},
        "/api/webhook-triggers": {"get"},
        "/api/dlq": {"get", "delete"},
        "/api/dlq/{dlq_id}/retry": {"post"},
        "/api/dlq/retry": {"post"},
        "/api/queue": {"get"},
        "/api/queues": {"get"},
        "/api/workers": {"get"},
        "/api/stats": {"get"},
        "/api/events": {"get"},
        "/api/events/history": {"get"},
        "/api/webhooks/{path}": {"get", "post", "put", "patch", "delete"},
        "/healthz": {"get"},
        "/metrics": {"get"},
    }
    assert {p: set(ops) for p, ops in paths.items()} == expected
    ids = [op["operationId"] for ops in paths.values() for op in ops.values()]
    assert len(ids) == len(set(ids))
    assert "enqueue_execution" in ids
    error = spec["components"]["schemas"]["ErrorBody"]
    assert error["properties"]["error"]["$ref"].endswith("/ErrorDetail")


PAGES = [
    "index.html",
    "execution.html",
    "dlq.html",
    "workflows.html",
    "workers.html",
    "approvals.html",
]


@pytest.mark.parametrize(
    ("path", "page"),
    [
        ("/", "index.html"),
        ("/executions/abc", "execution.html"),
        ("/dlq", "dlq.html"),
        ("/workflows", "workflows.html"),
        ("/workers", "workers.html"),
        ("/approvals", "approvals.html"),
    ],
)
async def test_dashboard_pages(client: httpx.AsyncClient, path: str, page: str) -> None:
    res = await client.get(path)
    assert res.status_code == 200
    assert res.headers["content-type"].startswith("text/html")
    assert res.headers["content-security-policy"] == CSP
    assert res.text == (STATIC / page).read_text()


async def test_dashboard_assets_exist_and_load_nothing_from_outside(
    client: httpx.AsyncClient,
) -> None:
    for page in PAGES:
        html = (STATIC / page).read_text()
        for ref in [part.split('"')[0] for part in html.split('src="')[1:]] + [
            part.split('"')[0] for part in html.split('href="/static/')[1:]
        ]:
            path = ref if ref.startswith("/") else f"/static/{ref}"
            assert (await client.get(path)).status_code == 200, (page, path)
        assert "http://" not in html
        assert "https://" not in html
        assert "<script>" not in html  # no inline script: the CSP forbids it


def test_every_page_links_to_every_page() -> None:
    for page in PAGES:
        html = (STATIC / page).read_text()
        nav = html.split("<nav>")[1].split("</nav>")[0]
        links = [part.split('"')[0] for part in nav.split('href="')[1:]]
        assert links == ["/", "/workflows", "/workers", "/approvals", "/dlq", "/docs"], page


def test_static_files_ship_with_the_package() -> None:
    with open(REPO_ROOT / "pyproject.toml", "rb") as f:
        patterns = tomllib.load(f)["tool"]["setuptools"]["package-data"]["spane_py.api.static"]
    shipped = {p.name for pattern in patterns for p in STATIC.glob(pattern)}
    assert shipped == {p.name for p in STATIC.iterdir()}
