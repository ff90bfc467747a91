"""The API served by uvicorn as ``spane api`` serves it (``server.build_server``), on a real
socket: what its access log writes, and a webhook body refused by its Content-Length
before a byte of it is read."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from spane_py import WorkflowEngine
from spane_py.api import ApiSettings, access_log, create_app
from spane_py.api.server import build_server
from tests.api._support import eventually

TOKEN = "s3cr3t-t0ken-value"
STATIC = Path(__file__).resolve().parents[2] / "spane_py" / "api" / "static"


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
async def served(running: WorkflowEngine) -> AsyncIterator[str]:
    """The base URL of the app, token-protected, served by uvicorn in this event loop."""
    app = create_app(running, ApiSettings(token=TOKEN, cors_origins=""), close_engine=False)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    host, port = sock.getsockname()
    server = build_server(app, host=host, port=port, log_level="info")
    task = asyncio.create_task(server.serve(sockets=[sock]))

    async def started() -> bool:
        if task.done():
            task.result()  # its error, if it failed to start
        return bool(server.started)

    try:
        await eventually(started, timeout=60)
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=60)
        sock.close()


@pytest.fixture
def access_lines() -> Iterator[Lines]:
    handler = Lines()
    logger = logging.getLogger(access_log.ACCESS_LOGGER)
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


async def test_the_access_log_shows_no_token_of_a_url(served: str, access_lines: Lines) -> None:
    async with httpx.AsyncClient(base_url=served, timeout=60) as client:
        # the event stream takes ?access_token= (clients that cannot send headers)
        async with client.stream(
            "GET", "/api/events", params={"access_token": TOKEN, "workflow_id": "greet"}
        ) as res:
            assert res.status_code == 200
            async for chunk in res.aiter_bytes():
                assert b"connected" in chunk
                break
        wrong = await client.get("/api/events", params={"access_token": TOKEN[::-1]})
        assert wrong.status_code == 401
        # elsewhere the query token is refused, and still kept out of the log
        other = await client.get(
            "/api/workflows", params={"limit": "5", "token": TOKEN, "api_key": TOKEN}
        )
        assert other.status_code == 401

    async def logged() -> bool:
        return len(access_lines.lines) >= 3

    await eventually(logged)
    text = "\n".join(access_lines.lines)
    assert TOKEN not in text
    assert TOKEN[::-1] not in text
    assert "/api/events?access_token=***&workflow_id=greet" in text, text
    assert "/api/workflows?limit=5&token=***&api_key=***" in text, text


async def test_a_webhook_body_over_the_limit_is_refused_by_its_length(
    served: str, running: WorkflowEngine
) -> None:
    await running.register_workflow(
        {
            "id": "open-hook",
            "nodes": [{"id": "a", "type": "echo"}],
            "triggers": [{"type": "webhook", "path": "big"}],
        }
    )
    host, _, port = served.removeprefix("http://").partition(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        # 2 MiB announced (under the API's 32 MiB body limit, over the webhook's 1 MiB),
        # none sent: an answer can only come from the length alone.
        writer.write(
            b"POST /api/webhooks/big HTTP/1.1\r\nHost: test\r\n"
            b"Content-Type: application/json\r\nContent-Length: 2097152\r\n\r\n"
        )
        await writer.drain()
        status = await asyncio.wait_for(reader.readline(), timeout=60)
        assert status.startswith(b"HTTP/1.1 413"), status
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=60)
        assert b"content-type: application/json" in head.lower()
    finally:
        writer.close()
    assert await running.store.get_execution_count(workflow_id="open-hook") == 0


def test_the_dashboard_sends_the_token_in_a_header_only() -> None:
    for script in STATIC.glob("*.js"):
        text = script.read_text(encoding="utf-8")
        assert "access_token" not in text, script.name
        assert "EventSource(" not in text, script.name  # it cannot send headers
    common = (STATIC / "common.js").read_text(encoding="utf-8")
    assert "headers.Authorization = `Bearer ${t}`" in common


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/api/events?access_token=abc", "/api/events?access_token=***"),
        ("/x?a=1&Token=abc&b=2", "/x?a=1&Token=***&b=2"),
        ("/x?access%5Ftoken=abc", "/x?access%5Ftoken=***"),
        (
            "/x?api-key=k&secret=s&password=p&sig=x",
            "/x?api-key=***&secret=***&password=***&sig=***",
        ),
        ("/x?author=bob&cursor=c&key=k", "/x?author=bob&cursor=c&key=***"),
        ("/x?token", "/x?token"),  # no value: nothing to hide
        ("/x", "/x"),
    ],
)
def test_redact(target: str, expected: str) -> None:
    assert access_log.redact(target) == expected
