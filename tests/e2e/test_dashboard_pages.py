"""The dashboard's operator pages in headless Chromium (as ``test_dashboard_browser.py``,
whose server, browser and helpers this reuses): workers and queues with the banner of an
unserved queue, workflows (versions, a diff, a schedule paused and resumed, an execution
started), approvals (listed, then approved and rejected from the execution page), and a
150-node graph that fits the window, zooms and pans.

Screenshots go to the test's temporary directory and, when ``SPANE_DOCS_SCREENSHOTS``
names a directory (``SPANE_DOCS_SCREENSHOTS=docs/img``), there too: the pictures of
docs/dashboard.md.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import uvicorn

from spane_py import WorkflowEngine
from spane_py.api import ApiSettings, create_app
from tests.e2e import dashboard_pages_app as pages_app
from tests.e2e.conftest import delete_keys
from tests.e2e.test_dashboard_browser import (
    WINDOW,
    DashboardServer,
    browser,
    call_api,
    no_script_errors,
    screenshot,
    wait_for,
)

pytestmark = pytest.mark.slow
__all__ = ["browser"]  # a fixture of this module too

T = TypeVar("T")
DOCS = os.environ.get("SPANE_DOCS_SCREENSHOTS")


class PagesServer(DashboardServer):
    """The dashboard over ``dashboard_pages_app``, its worker consuming only ``default``;
    ``call`` runs a coroutine on the server's loop (to start another worker)."""

    loop: asyncio.AbstractEventLoop
    engine: WorkflowEngine

    async def _serve(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.engine = pages_app.build_engine(
            redis_url=self.redis_url, key_prefix=self.key_prefix, poll_delay=0.2
        )
        await self.engine.start()
        await pages_app.register_v2(self.engine)
        await self.engine.start_workers(4, queues=["default"])
        app = create_app(self.engine, ApiSettings(token=None))
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
        await self.server.serve(sockets=[self.sock])

    def call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=30)


@pytest.fixture(scope="module")
def site(redis_url: str) -> Iterator[PagesServer]:
    prefix = f"tp{uuid.uuid4().hex[:10]}"
    server = PagesServer(redis_url, prefix)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        delete_keys(redis_url, f"{prefix}:*")


def shoot(driver: Any, tmp_path: Path, name: str) -> None:
    """A checked screenshot (``screenshot``), copied to the docs' directory if asked."""
    path = tmp_path / name
    screenshot(driver, path)
    if DOCS:
        Path(DOCS).mkdir(parents=True, exist_ok=True)
        (Path(DOCS) / name).write_bytes(path.read_bytes())


def status_of(driver: Any) -> str | None:
    from selenium.webdriver.common.by import By

    badge = driver.find_element(By.CSS_SELECTOR, "#execution-status .badge")
    value: str | None = badge.get_attribute("data-status")
    return value


def test_workers_queues_and_the_unserved_banner(
    site: PagesServer, browser: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    driver = browser
    driver.get(site.url + "/workers")
    assert driver.title == "spane · workers"
    worker = wait_for(
        lambda: driver.find_element(By.CSS_SELECTOR, "#workers tbody tr"), what="a live worker"
    )
    cells = [td.text for td in worker.find_elements(By.TAG_NAME, "td")]
    assert cells[0] == worker.get_attribute("data-worker-id")
    assert cells[2] == str(os.getpid())  # the server runs in this process
    assert [c.text for c in worker.find_elements(By.CSS_SELECTOR, ".chip")] == ["default"]
    assert cells[4] == "4"  # its concurrency
    assert cells[6].endswith("s ago")
    default = driver.find_element(By.CSS_SELECTOR, '#queues tr[data-queue="default"]')
    assert default.get_attribute("data-unserved") == "false"
    assert default.find_element(By.CSS_SELECTOR, "td.workers").text == "1"
    banner = driver.find_element(By.ID, "worker-banner")
    assert not banner.is_displayed()
    assert "live (every 3 s)" in driver.find_element(By.ID, "live").text

    # A job on the gpu queue, which no live worker consumes: the banner, on every page.
    execution_id = call_api(site.url, "/api/workflows/render/executions", {"input": {}})[
        "execution_id"
    ]
    gpu = wait_for(
        lambda: driver.find_element(By.CSS_SELECTOR, '#queues tr[data-queue="gpu"]'),
        what="the gpu queue",
    )
    wait_for(lambda: gpu.get_attribute("data-unserved") == "true", what="gpu unserved")
    assert gpu.find_element(By.CSS_SELECTOR, "td.depth").text == "1"
    wait_for(banner.is_displayed, what="the banner")
    assert banner.get_attribute("data-unserved") == "gpu"
    assert "1 job waits on queue gpu" in banner.text
    assert "spane worker APP --queues gpu" in banner.text
    shoot(driver, tmp_path, "workers-unserved.png")

    driver.get(f"{site.url}/executions/{execution_id}")
    banner = wait_for(
        lambda: (b := driver.find_element(By.ID, "worker-banner")).is_displayed() and b,
        what="the banner on the execution page",
    )
    assert "queue gpu" in banner.text
    assert status_of(driver) == "running"

    # A worker for gpu starts: the job runs, the banner goes.
    site.call(site.engine.start_workers(1, queues=["gpu"]))
    wait_for(lambda: status_of(driver) == "completed", timeout=20, what="the render to run")
    wait_for(lambda: not banner.is_displayed(), timeout=12, what="the banner to go")

    driver.get(site.url + "/workers")
    wait_for(
        lambda: len(driver.find_elements(By.CSS_SELECTOR, "#workers tbody tr")) == 2,
        what="both workers",
    )
    chips = {c.text for c in driver.find_elements(By.CSS_SELECTOR, "#workers .chip")}
    assert chips == {"default", "gpu"}
    gpu = driver.find_element(By.CSS_SELECTOR, '#queues tr[data-queue="gpu"]')
    assert gpu.get_attribute("data-unserved") == "false"
    shoot(driver, tmp_path, "workers.png")

    # No worker at all, and an execution runs (it waits for approval, so no job waits on a
    # queue): the banner says that nothing progresses.
    waiting = _waiting_expense(site, 5)
    banner = driver.find_element(By.ID, "worker-banner")
    site.call(site.engine.stop_workers(grace_seconds=1.0))
    wait_for(lambda: "No worker is alive, and 1 execution is running" in banner.text)
    assert banner.get_attribute("data-unserved") == ""
    assert driver.find_element(By.ID, "no-workers").is_displayed()
    site.call(site.engine.start_workers(4, queues=["default"]))
    call_api(site.url, f"/api/executions/{waiting}/cancel", {})
    wait_for(lambda: not banner.is_displayed(), timeout=12, what="the banner to go again")
    no_script_errors(driver)


def test_workflows_versions_diff_schedule_and_start(
    site: PagesServer, browser: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    driver = browser
    driver.get(site.url + "/workflows?workflow=nightly")
    assert driver.title == "spane · workflows"
    listed = wait_for(
        lambda: [
            r.get_attribute("data-workflow-id")
            for r in driver.find_elements(By.CSS_SELECTOR, "#workflow-list tbody tr")
        ],
        what="the workflows",
    )
    assert set(listed) == {"nightly", "render", "expense", "big", "chain"}
    versions = wait_for(
        lambda: driver.find_elements(By.CSS_SELECTOR, "#versions tbody tr"), what="versions"
    )
    assert [v.get_attribute("data-version") for v in versions] == ["2", "1"]
    assert "a report node" in versions[0].text
    # The diff of v1 -> v2: the batch, the new node.
    diff = wait_for(lambda: driver.find_element(By.ID, "diff"), what="the diff")
    added = [s.text for s in diff.find_elements(By.CSS_SELECTOR, "span.add")]
    removed = [s.text for s in diff.find_elements(By.CSS_SELECTOR, "span.del")]
    assert any('"batch": 2000' in line for line in added), added
    assert any('"batch": 500' in line for line in removed), removed
    assert any('"id": "report"' in line for line in added)
    assert "v1 → v2" in driver.find_element(By.ID, "diff-title").text
    assert "s3cret" not in driver.page_source  # the webhook's secret is never shown
    driver.execute_script("document.getElementById('versions').closest('section').scrollIntoView()")
    shoot(driver, tmp_path, "workflow-versions.png")
    # Its graph: v2's three nodes.
    nodes = driver.find_elements(By.CSS_SELECTOR, "#dag-svg g.node")
    assert sorted(n.get_attribute("data-node-id") for n in nodes) == ["extract", "load", "report"]

    # Triggers: the schedule with its next fire time, the signed webhook.
    row = '#schedules tr[data-schedule-id^="nightly:"]'
    schedule = wait_for(lambda: driver.find_element(By.CSS_SELECTOR, row), what="schedule")
    assert "0 0 3 * * *" in schedule.text
    assert "Europe/Berlin" in schedule.text
    assert "(in " in schedule.find_element(By.CSS_SELECTOR, "td.next-tick").text
    hook = driver.find_element(By.CSS_SELECTOR, "#webhooks tbody tr")
    assert f"{site.url}/api/webhooks/hooks/nightly" in hook.text
    assert "required" in hook.text

    driver.find_element(By.CSS_SELECTOR, f"{row} button.schedule-pause").click()
    wait_for(
        lambda: driver.find_element(By.CSS_SELECTOR, row).get_attribute("data-paused") == "true",
        what="the schedule paused",
    )
    assert "paused" in driver.find_element(By.CSS_SELECTOR, f"{row} td.next-tick").text
    assert call_api(site.url, "/api/schedules")[0]["paused"] is True
    driver.find_element(By.CSS_SELECTOR, f"{row} button.schedule-resume").click()
    wait_for(
        lambda: driver.find_element(By.CSS_SELECTOR, row).get_attribute("data-paused") == "false",
        what="the schedule resumed",
    )
    assert call_api(site.url, "/api/schedules")[0]["paused"] is False

    # Start an execution of the older version from the form (every version is offered).
    version = driver.find_element(By.ID, "start-version")
    options = version.find_elements(By.TAG_NAME, "option")
    assert [(o.get_attribute("value"), o.is_enabled()) for o in options] == [
        ("2", True),
        ("1", True),
    ]
    assert version.get_attribute("value") == "2"  # the latest first
    from selenium.webdriver.support.ui import Select

    Select(version).select_by_value("1")
    field = driver.find_element(By.ID, "start-input")
    field.clear()
    field.send_keys('{"day": "2030-01-02"}')
    driver.find_element(By.ID, "start-button").click()
    link = wait_for(lambda: driver.find_element(By.ID, "started-link"), what="the started link")
    execution_id = link.text
    recent = f'#recent tr[data-execution-id="{execution_id}"]'
    wait_for(
        lambda: (
            driver.find_element(By.CSS_SELECTOR, recent).get_attribute("data-status") == "completed"
        ),
        timeout=20,
        what="the execution in the recent list, completed",
    )
    assert driver.find_element(By.CSS_SELECTOR, recent).text.split()[1] == "v1"
    rate = wait_for(lambda: driver.find_element(By.ID, "rate").get_attribute("data-rate"))
    assert rate == "100"
    state = call_api(site.url, f"/api/executions/{execution_id}")
    assert state["initial_data"] == {"day": "2030-01-02"}
    assert state["workflow_version"] == 1
    driver.execute_script("window.scrollTo(0, 0)")
    shoot(driver, tmp_path, "workflows.png")
    no_script_errors(driver)


def _waiting_expense(site: PagesServer, amount: int) -> str:
    execution_id: str = call_api(
        site.url, "/api/workflows/expense/executions", {"input": {"amount": amount}}
    )["execution_id"]
    wait_for(
        lambda: call_api(site.url, f"/api/approvals?execution_id={execution_id}"),
        what="the approval",
    )
    return execution_id


def test_approve_and_reject_from_the_ui(site: PagesServer, browser: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    driver = browser
    approved = _waiting_expense(site, 1200)
    rejected = _waiting_expense(site, 99000)

    driver.get(site.url + "/approvals")
    assert driver.title == "spane · approvals"
    rows = wait_for(
        lambda: driver.find_elements(By.CSS_SELECTOR, "#approvals tbody tr"),
        what="the approvals",
    )
    assert [r.get_attribute("data-execution-id") for r in rows] == [approved, rejected]
    assert "Manager approval (approve)" in rows[0].text
    assert '{"amount":1200}' in rows[0].text
    assert "then fails" in rows[0].text
    wait_for(lambda: driver.find_element(By.ID, "approvals-count").text == "2")
    shoot(driver, tmp_path, "approvals.png")

    rows[0].find_element(By.CSS_SELECTOR, "a.review").click()
    form = wait_for(
        lambda: driver.find_element(
            By.CSS_SELECTOR, '#approvals .approval[data-node-id="approve"]'
        ),
        what="the approval form",
    )
    assert driver.find_element(By.ID, "node-title").text == "approve"  # ?node= selected it
    text = form.text
    assert "Manager approval (approve) waits for approval" in text
    assert "a person (or a system) to resume it with its token" in text
    assert "then the node fails" in text
    assert "(in 59 min)" in text or "(in 60 min)" in text
    assert '"amount": 1200' in form.find_element(By.CSS_SELECTOR, ".approval-input").text
    data = form.find_element(By.CSS_SELECTOR, "textarea.approve-data")
    data.clear()
    data.send_keys('{"approved": true, "by": "ana"}')
    shoot(driver, tmp_path, "approval.png")
    form.find_element(By.CSS_SELECTOR, "button.approve").click()
    wait_for(lambda: status_of(driver) == "completed", timeout=20, what="the approval to complete")
    assert not driver.find_element(By.ID, "approval-panel").is_displayed()
    assert "Approved" in driver.find_element(By.ID, "banner").text
    state = call_api(site.url, f"/api/executions/{approved}")
    assert state["node_results"]["approve"]["data"] == {"approved": True, "by": "ana"}
    assert state["node_results"]["pay"]["data"] == "paid: {'approved': True, 'by': 'ana'}"

    # Reject the other: its execution is cancelled, its token revoked.
    driver.get(f"{site.url}/executions/{rejected}")
    form = wait_for(
        lambda: driver.find_element(
            By.CSS_SELECTOR, '#approvals .approval[data-node-id="approve"]'
        ),
        what="the second approval form",
    )
    form.find_element(By.CSS_SELECTOR, "input.reject-reason").send_keys("over budget")
    form.find_element(By.CSS_SELECTOR, "button.reject").click()
    alert = wait_for(lambda: driver.switch_to.alert, what="the confirmation")
    assert "revoke the token" in alert.text
    alert.accept()
    wait_for(lambda: status_of(driver) == "cancelled", timeout=20, what="the rejection")
    state = call_api(site.url, f"/api/executions/{rejected}")
    assert state["error"] is None or "over budget" in state["error"]
    tokens = call_api(site.url, f"/api/resume-tokens?execution_id={rejected}&active_only=false")
    assert [t["state"] for t in tokens] == ["revoked"]
    assert call_api(site.url, "/api/approvals") == []
    driver.get(site.url + "/approvals")
    wait_for(lambda: driver.find_element(By.ID, "empty").is_displayed(), what="no approval left")
    no_script_errors(driver)


def _content_box(driver: Any) -> dict[str, float]:
    box: dict[str, float] = driver.execute_script(
        "const r = document.querySelector('#dag-svg g.dag-content').getBoundingClientRect();"
        "return {left: r.left, right: r.right, top: r.top, bottom: r.bottom,"
        " width: r.width, height: r.height};"
    )
    return box


def _view(driver: Any) -> list[float]:
    """The graph's viewBox: x, y, width, height."""
    box = driver.execute_script("return document.getElementById('dag-svg').getAttribute('viewBox')")
    return [float(v) for v in box.split()]


def _fits(driver: Any) -> bool:
    """The whole graph inside the window (the page scrolled to the graph)."""
    driver.execute_script("document.getElementById('dag-svg').scrollIntoView({block: 'start'})")
    box = _content_box(driver)
    width, height = driver.execute_script("return [window.innerWidth, window.innerHeight]")
    return bool(
        box["left"] >= 0 and box["right"] <= width and box["top"] >= 0 and box["bottom"] <= height
    )


def _graph_on_top(driver: Any) -> None:
    driver.execute_script("document.getElementById('dag').closest('section').scrollIntoView()")


def test_a_big_graph_fits_zooms_and_pans(site: PagesServer, browser: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.actions.wheel_input import ScrollOrigin
    from selenium.webdriver.common.by import By

    driver = browser
    # A 10-node chain (a definition, on the workflows page) stays within 1400 px.
    driver.get(site.url + "/workflows?workflow=chain")
    wait_for(lambda: len(driver.find_elements(By.CSS_SELECTOR, "#dag-svg g.node")) == 10)
    assert _fits(driver)
    assert driver.execute_script("return window.innerWidth") == WINDOW[0]

    execution_id = call_api(site.url, "/api/workflows/big/executions", {"input": {}})[
        "execution_id"
    ]
    driver.get(f"{site.url}/executions/{execution_id}")
    wait_for(
        lambda: len(driver.find_elements(By.CSS_SELECTOR, "#dag-svg g.node")) == 150,
        what="150 nodes",
    )
    edges = sum(len(n["inputs"]) for n in pages_app.big.raw_definition()["nodes"])
    assert len(driver.find_elements(By.CSS_SELECTOR, "#dag-svg path.edge")) == edges
    assert _fits(driver)
    fitted = _view(driver)
    svg = driver.find_element(By.ID, "dag-svg")
    scale = float(svg.get_attribute("data-scale"))
    assert scale < 1  # shrunk to fit

    driver.find_element(By.ID, "dag-zoom-in").click()
    zoomed = _view(driver)
    assert zoomed[2] < fitted[2]  # a narrower view: bigger nodes
    assert float(svg.get_attribute("data-scale")) == pytest.approx(scale * 1.25, rel=0.01)
    # The wheel zooms in further, around the pointer.
    ActionChains(driver).scroll_from_origin(ScrollOrigin.from_element(svg), 0, -300).perform()
    wait_for(lambda: _view(driver)[2] < zoomed[2] * 0.9, what="the wheel to zoom in")
    wheeled = _view(driver)
    # A drag pans: the view moves against the pointer.
    ActionChains(driver).move_to_element(svg).click_and_hold().move_by_offset(
        -200, -60
    ).release().perform()
    panned = _view(driver)
    assert panned[0] > wheeled[0]
    assert panned[1] > wheeled[1]
    assert panned[2] == pytest.approx(wheeled[2])
    # Selecting a node redraws the graph (as each refresh of a running execution does):
    # the view stays.
    node = driver.find_element(By.CSS_SELECTOR, '#dag-svg g.node[data-node-id="n5_5"]')
    driver.execute_script(
        "arguments[0].dispatchEvent(new MouseEvent('click', {bubbles: true}))", node
    )
    wait_for(lambda: driver.find_element(By.ID, "node-title").text == "n5_5", what="n5_5")
    selected = driver.find_element(By.CSS_SELECTOR, "#dag-svg g.node.selected")
    assert selected.get_attribute("data-node-id") == "n5_5"
    assert _view(driver) == pytest.approx(panned)
    assert not _fits(driver)  # zoomed in: the graph is bigger than the window
    _graph_on_top(driver)
    shoot(driver, tmp_path, "big-graph-zoomed.png")

    driver.find_element(By.ID, "dag-fit").click()
    assert _view(driver) == pytest.approx(fitted)
    assert _fits(driver)
    _graph_on_top(driver)
    shoot(driver, tmp_path, "big-graph.png")

    # Its timeline scrolls, under an axis that stays.
    wait_for(lambda: status_of(driver) == "completed", timeout=40, what="the big one to run")
    scroller = driver.find_element(By.CSS_SELECTOR, "#timeline .timeline-scroll")
    wait_for(
        lambda: len(driver.find_elements(By.CSS_SELECTOR, "#timeline-svg g.span")) == 150,
        what="150 spans",
    )
    sizes = driver.execute_script(
        "const s = arguments[0]; s.scrollTop = 600; return [s.scrollHeight, s.clientHeight];",
        scroller,
    )
    assert sizes[0] > sizes[1] * 2
    axis = driver.find_element(By.ID, "timeline-axis")
    assert driver.execute_script(
        "return arguments[0].getBoundingClientRect().top"
        " - arguments[1].getBoundingClientRect().top",
        axis,
        scroller,
    ) == pytest.approx(0, abs=1)
    no_script_errors(driver)
