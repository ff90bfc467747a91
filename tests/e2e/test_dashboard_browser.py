"""The dashboard in a real browser: headless Chromium (Debian's chromium and
chromium-driver) driven by Selenium, against uvicorn serving the API on a free port with
an engine on the test Redis, the in-memory store and a worker in the server's process.

A person's path: open the dashboard, start an execution with the form, watch it complete
without reloading, open its page, find the graph and the timeline, press a control button;
then retry a dead letter; then watch a wait node wait and, once resumed, keep its bar.
Screenshots go to the test's temporary directory and are checked to be real pictures of
the window.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import struct
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import uvicorn

from spane_py.api import ApiSettings, create_app
from tests.e2e import dashboard_app
from tests.e2e.conftest import delete_keys

pytestmark = pytest.mark.slow

WINDOW = (1400, 1000)
T = TypeVar("T")


def _find(*names: str) -> str | None:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    return None


CHROMIUM = os.environ.get("SPANE_CHROMIUM") or _find("chromium", "chromium-browser")
CHROMEDRIVER = os.environ.get("SPANE_CHROMEDRIVER") or _find("chromedriver")


class DashboardServer:
    """uvicorn in a thread of its own (its own event loop), on a socket bound to a free
    port before it starts: no race for the port."""

    def __init__(self, redis_url: str, key_prefix: str) -> None:
        self.redis_url = redis_url
        self.key_prefix = key_prefix
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server: uvicorn.Server | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="dashboard-server", daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported by start() / the test
            self.error = exc

    async def _serve(self) -> None:
        engine = dashboard_app.build_engine(
            [*dashboard_app.WORKFLOWS, dashboard_app.approval],
            redis_url=self.redis_url,
            key_prefix=self.key_prefix,
            poll_delay=0.2,
        )
        app = create_app(engine, ApiSettings(token=None), worker_concurrency=4)
        config = uvicorn.Config(app, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        await self.server.serve(sockets=[self.sock])

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not (self.server is not None and self.server.started):
            if self.error is not None or not self.thread.is_alive():
                raise RuntimeError(f"the dashboard server did not start: {self.error!r}")
            if time.monotonic() > deadline:
                raise TimeoutError("the dashboard server did not start within 30 s")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.server is not None:
            self.server.should_exit = True
        self.thread.join(timeout=30)
        self.sock.close()


@pytest.fixture(scope="module")
def dashboard(redis_url: str) -> Iterator[DashboardServer]:
    prefix = f"tb{uuid.uuid4().hex[:10]}"
    server = DashboardServer(redis_url, prefix)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        delete_keys(redis_url, f"{prefix}:*", f"arq:*:{prefix}:*")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip(
            "needs Chromium and ChromeDriver: apt-get install chromium chromium-driver "
            "(or set SPANE_CHROMIUM and SPANE_CHROMEDRIVER)"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
        "--hide-scrollbars",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(check: Callable[[], T], *, timeout: float = 15.0, what: str = "") -> T:
    """Poll ``check`` until it returns something truthy (exceptions count as not yet)."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = check()
            if value:
                return value
            last = value
        except Exception as exc:
            last = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}: last {last!r}")
        time.sleep(0.05)


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def screenshot(driver: Any, path: Path) -> None:
    """Save the viewport as a PNG, and check it is one: the page's size, not blank."""
    assert driver.save_screenshot(str(path))
    assert path.stat().st_size > 10_000, f"{path} is too small to show anything"
    width, height, ratio = driver.execute_script(
        "return [window.innerWidth, window.innerHeight, window.devicePixelRatio]"
    )
    assert png_size(path) == (round(width * ratio), round(height * ratio))
    assert png_size(path)[0] == WINDOW[0]


def no_script_errors(driver: Any) -> None:
    """Nothing went wrong in the page's scripts. (The event stream's 501 is expected: the
    engine has no subscribe() yet, and the dashboard polls instead.)"""
    errors = [
        entry["message"]
        for entry in driver.get_log("browser")
        if entry["level"] == "SEVERE" and "/api/events" not in entry["message"]
    ]
    assert errors == []


def test_start_an_execution_and_follow_it(
    dashboard: DashboardServer, browser: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    driver = browser
    driver.get(dashboard.url + "/")
    assert driver.title == "spane · executions"
    options = wait_for(
        lambda: [o.text for o in Select(driver.find_element(By.ID, "enqueue-workflow")).options],
        what="the workflows in the form",
    )
    assert "daily-report (v1)" in options
    # A mark on this document: still there at the end means the page never reloaded.
    driver.execute_script("window.__spaneMark = 'same page';")

    Select(driver.find_element(By.ID, "enqueue-workflow")).select_by_value("daily-report")
    field = driver.find_element(By.ID, "enqueue-input")
    field.clear()
    field.send_keys('{"day": "2030-01-01"}')
    driver.find_element(By.ID, "enqueue-button").click()
    link = wait_for(lambda: driver.find_element(By.ID, "started-link"), what="the started link")
    execution_id = link.text
    row = f'tr[data-execution-id="{execution_id}"]'

    seen: list[str] = []

    def status() -> str | None:
        value = driver.find_element(By.CSS_SELECTOR, row).get_attribute("data-status")
        if value and (not seen or seen[-1] != value):
            seen.append(value)
        return value

    wait_for(lambda: status() in ("queued", "running"), what="the new execution, running")
    wait_for(lambda: status() == "completed", timeout=20, what="the execution to complete")
    assert seen[0] != "completed", seen  # seen running first: the list updated live
    assert driver.execute_script("return window.__spaneMark") == "same page"
    live = driver.find_element(By.ID, "live")
    assert "live" in live.text
    screenshot(driver, tmp_path / "executions.png")

    driver.find_element(By.CSS_SELECTOR, f"{row} a").click()
    wait_for(lambda: execution_id in driver.current_url, what="the execution page")
    nodes = wait_for(
        lambda: driver.find_elements(By.CSS_SELECTOR, "#dag-svg g.node"), what="the DAG"
    )
    assert sorted(n.get_attribute("data-node-id") for n in nodes) == [
        "count",
        "fetch",
        "publish",
        "total",
    ]
    assert {n.get_attribute("data-status") for n in nodes} == {"succeeded"}
    assert len(driver.find_elements(By.CSS_SELECTOR, "#dag-svg path.edge")) == 4
    bars = wait_for(
        lambda: driver.find_elements(By.CSS_SELECTOR, "#timeline-svg rect.bar"),
        what="the timeline bars",
    )
    assert len(bars) == 4
    widths = [float(b.get_attribute("width")) for b in bars]
    assert all(w >= 2 for w in widths)
    assert max(widths) > 50  # a 0.5 s node is a visible share of a ~1.3 s execution
    badge = driver.find_element(By.CSS_SELECTOR, "#execution-status .badge")
    assert badge.get_attribute("data-status") == "completed"

    # The selected node's input and output; another node when clicked.
    assert "2030-01-01" in driver.find_element(By.ID, "node-input").text  # fetch's input
    assert '"rows"' in driver.find_element(By.ID, "node-output").text
    driver.find_element(By.CSS_SELECTOR, '#dag-svg g.node[data-node-id="publish"]').click()
    wait_for(lambda: driver.find_element(By.ID, "node-title").text == "publish")
    assert "3 rows, total 16" in driver.find_element(By.ID, "node-output").text
    logs = driver.find_element(By.ID, "logs").text
    assert "fetching rows" in logs
    assert "one row was late" in logs
    screenshot(driver, tmp_path / "execution.png")

    # Control buttons follow the status; Replay starts a new execution.
    buttons = {
        b.get_attribute("data-action"): b.is_enabled()
        for b in driver.find_elements(By.CSS_SELECTOR, "#actions button")
    }
    assert buttons == {
        "pause": False,
        "resume": False,
        "cancel": False,
        "retry": False,
        "replay": True,
    }
    driver.find_element(By.CSS_SELECTOR, '#actions button[data-action="replay"]').click()
    replayed = wait_for(
        lambda: driver.find_element(By.CSS_SELECTOR, "#banner a"), what="the replay link"
    )
    assert replayed.text != execution_id
    replayed.click()
    wait_for(
        lambda: (
            driver.find_element(By.CSS_SELECTOR, "#execution-status .badge").get_attribute(
                "data-status"
            )
            == "completed"
        ),
        timeout=20,
        what="the replay to complete",
    )
    no_script_errors(driver)


def test_retry_a_dead_letter(dashboard: DashboardServer, browser: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    driver = browser
    dashboard_app.FLAKY["up"] = False
    driver.get(dashboard.url + "/")
    wait_for(
        lambda: (
            "flaky-sync"
            in [
                o.get_attribute("value")
                for o in driver.find_elements(By.CSS_SELECTOR, "#enqueue-workflow option")
            ]
        )
    )
    Select(driver.find_element(By.ID, "enqueue-workflow")).select_by_value("flaky-sync")
    driver.find_element(By.ID, "enqueue-button").click()
    execution_id = wait_for(lambda: driver.find_element(By.ID, "started-link")).text
    row = f'tr[data-execution-id="{execution_id}"]'

    def failed_with_its_error() -> bool:
        # One read of a fresh element: the live list may redraw the row between two reads.
        element = driver.find_element(By.CSS_SELECTOR, row)
        return bool(
            element.get_attribute("data-status") == "failed"
            and "the partner API is down" in element.text
        )

    wait_for(failed_with_its_error, what="the execution to fail with its error")

    driver.get(dashboard.url + "/dlq")

    def dead_letter() -> Any:
        rows = driver.find_elements(By.CSS_SELECTOR, "#dlq tbody tr")
        return [r for r in rows if execution_id in r.text and "push" in r.text]

    wait_for(dead_letter, what="the dead letter of node push")
    screenshot(driver, tmp_path / "dlq.png")
    dashboard_app.FLAKY["up"] = True

    def click_retry() -> bool:  # on a fresh row: the page may have redrawn it
        dead_letter()[0].find_element(By.CSS_SELECTOR, "button.retry").click()
        return True

    wait_for(click_retry, what="the retry button")
    wait_for(lambda: "runs again" in driver.find_element(By.ID, "banner").text)
    driver.get(f"{dashboard.url}/executions/{execution_id}")
    wait_for(
        lambda: (
            driver.find_element(By.CSS_SELECTOR, "#execution-status .badge").get_attribute(
                "data-status"
            )
            == "completed"
        ),
        what="the retried execution to complete",
    )
    push = driver.find_element(By.CSS_SELECTOR, '#dag-svg g.node[data-node-id="push"]')
    assert push.get_attribute("data-status") == "succeeded"
    no_script_errors(driver)


def call_api(base: str, path: str, body: Any = None) -> Any:
    """A JSON call to the dashboard's API (no token: the server runs without one)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        base + path, data=data, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())


def test_a_wait_node_keeps_its_bar_after_its_resume(
    dashboard: DashboardServer, browser: Any, tmp_path: Path
) -> None:
    """A wait node is drawn while it waits and, once resumed, as the span of its wait:
    from its start to its resume, before the node after it (issue 12, item 11)."""
    from selenium.webdriver.common.by import By

    driver = browser
    base = dashboard.url
    execution_id = call_api(base, "/api/workflows/approval/executions", {"input": {"order": 7}})[
        "execution_id"
    ]
    tokens = wait_for(
        lambda: call_api(base, f"/api/resume-tokens?execution_id={execution_id}"),
        what="the approval's resume token",
    )
    driver.get(f"{base}/executions/{execution_id}")

    def group(node_id: str) -> Any:
        return driver.find_element(
            By.CSS_SELECTOR, f'#timeline-svg g.span[data-node-id="{node_id}"]'
        )

    waiting = wait_for(lambda: group("approve"), what="the waiting node's open bar")
    assert waiting.get_attribute("data-status") == "waiting"
    assert waiting.get_attribute("data-waited") == "waiting"

    assert call_api(base, "/api/resume", {"token": tokens[0]["token"], "data": "yes"}) == {
        "execution_id": execution_id
    }
    # The page follows on its own (no reload) until the execution completes.
    wait_for(
        lambda: (
            driver.find_element(By.CSS_SELECTOR, "#execution-status .badge").get_attribute(
                "data-status"
            )
            == "completed"
        ),
        timeout=20,
        what="the approval to complete",
    )
    approve = wait_for(
        lambda: (g := group("approve")).get_attribute("data-status") == "succeeded" and g,
        what="the wait's span",
    )
    assert approve.get_attribute("data-waited") == "resumed"
    bar = approve.find_element(By.CSS_SELECTOR, "rect.bar")
    assert "waited" in (bar.get_attribute("class") or "").split()
    assert "waited: resumed" in bar.find_element(By.TAG_NAME, "title").get_attribute("textContent")
    assert approve.find_element(By.CSS_SELECTOR, "text.duration").text.endswith("waited")
    # One bar per node, in order: the wait's bar runs from after "ask" started to no later
    # than the start of "act", which its resume started.
    rows = driver.find_elements(By.CSS_SELECTOR, "#timeline-svg g.span")
    assert [r.get_attribute("data-node-id") for r in rows] == ["ask", "approve", "act"]
    x = {
        r.get_attribute("data-node-id"): (
            float(r.find_element(By.CSS_SELECTOR, "rect.bar").get_attribute("x")),
            float(r.find_element(By.CSS_SELECTOR, "rect.bar").get_attribute("width")),
        )
        for r in rows
    }
    assert x["ask"][0] <= x["approve"][0] <= x["act"][0]
    assert x["approve"][0] + x["approve"][1] <= x["act"][0] + 2.5  # 2 px: the least width
    trace = call_api(base, f"/api/executions/{execution_id}/trace")
    (span,) = [s for s in trace["spans"] if s["node_id"] == "approve"]
    assert span["attributes"]["waited"] is True
    assert span["attributes"]["resumed"] is True
    screenshot(driver, tmp_path / "waited.png")
    no_script_errors(driver)
