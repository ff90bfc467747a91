"""The executions list's search, nesting and bulk actions, and the dead letters grouped by
error, in headless Chromium (as ``test_dashboard_browser.py``, whose server, browser and
helpers this reuses): a search by a metadata field finds exactly the matching executions;
a sub-workflow node opens its child and the child its parent, and the list groups them;
20 executions selected and cancelled at once; a group of dead letters retried at once.

Screenshots go to the test's temporary directory and, when ``SPANE_DOCS_SCREENSHOTS``
names a directory, there too (the pictures of docs/dashboard.md).
"""

from __future__ import annotations

import re
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from spane_py.api import ApiSettings, create_app
from tests.e2e import dashboard_search_app as search_app
from tests.e2e.conftest import delete_keys
from tests.e2e.test_dashboard_browser import (
    DashboardServer,
    browser,
    call_api,
    no_script_errors,
    wait_for,
)
from tests.e2e.test_dashboard_pages import shoot

pytestmark = pytest.mark.slow
__all__ = ["browser"]  # a fixture of this module too

DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")


class SearchServer(DashboardServer):
    """The dashboard over ``dashboard_search_app``, with a worker in its process."""

    async def _serve(self) -> None:
        engine = search_app.build_engine(
            redis_url=self.redis_url, key_prefix=self.key_prefix, poll_delay=0.2
        )
        app = create_app(engine, ApiSettings(token=None), worker_concurrency=4)
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
        await self.server.serve(sockets=[self.sock])


@pytest.fixture(scope="module")
def site(redis_url: str) -> Iterator[SearchServer]:
    prefix = f"ts{uuid.uuid4().hex[:10]}"
    server = SearchServer(redis_url, prefix)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        delete_keys(redis_url, f"{prefix}:*")


def start(site: SearchServer, workflow: str, data: Any = None, **metadata: Any) -> str:
    body = {"input": data, "metadata": metadata}
    execution_id: str = call_api(site.url, f"/api/workflows/{workflow}/executions", body)[
        "execution_id"
    ]
    return execution_id


def listed(site: SearchServer, **params: str) -> list[dict[str, Any]]:
    query = urllib.parse.urlencode({"limit": 500, **params})
    items: list[dict[str, Any]] = call_api(site.url, f"/api/executions?{query}")["items"]
    return items


def statuses(site: SearchServer, ids: list[str]) -> set[str]:
    return {call_api(site.url, f"/api/executions/{i}")["status"] for i in ids}


def row_ids(driver: Any) -> list[str]:
    from selenium.webdriver.common.by import By

    return [
        r.get_attribute("data-execution-id")
        for r in driver.find_elements(By.CSS_SELECTOR, "#executions tbody tr")
    ]


def click(driver: Any, css: str) -> None:
    """Click the element, found afresh until the click lands (the page may redraw it)."""
    from selenium.webdriver.common.by import By

    def once() -> bool:
        driver.find_element(By.CSS_SELECTOR, css).click()
        return True

    wait_for(once, what=f"a click on {css}")


def accept_confirm(driver: Any) -> None:
    def alert() -> Any:
        return driver.switch_to.alert

    wait_for(alert, what="the confirmation").accept()


def test_search_by_metadata_and_input(site: SearchServer, browser: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    driver = browser
    acme = [start(site, "order", {"customer_id": c}, tenant="acme") for c in (7, 8, 9)]
    zeta = [start(site, "order", {"customer_id": c}, tenant="zeta") for c in (7, 8)]
    driver.get(site.url + "/")
    wait_for(lambda: set(acme + zeta) <= set(row_ids(driver)), what="the new executions")

    field = driver.find_element(By.ID, "search-where")
    field.send_keys("metadata.tenant=acme")
    driver.find_element(By.ID, "search-button").click()
    wait_for(lambda: row_ids(driver) == acme[::-1], what="exactly the acme executions")
    assert "where=metadata.tenant%3Dacme" in driver.current_url
    created = driver.find_elements(By.CSS_SELECTOR, "#executions tbody td.when")
    assert all(DATE_TIME.match(c.text) for c in created), [c.text for c in created]
    shoot(driver, tmp_path, "search.png")

    field.send_keys(" input.customer_id=7")
    driver.find_element(By.ID, "search-button").click()
    wait_for(lambda: row_ids(driver) == [acme[0]], what="the acme execution of customer 7")

    # Waiting: running with a node waiting (every order waits for its confirmation).
    driver.find_element(By.ID, "search-where").clear()
    driver.find_element(By.ID, "search-id").send_keys(zeta[1][:20])
    driver.find_element(By.ID, "search-button").click()
    wait_for(lambda: row_ids(driver) == [zeta[1]], what="the execution of the id prefix")
    click(driver, '#status-filters [data-status="waiting"]')  # redrawn with its counts
    wait_for(lambda: "status=waiting" in driver.current_url, what="the waiting filter applied")
    wait_for(lambda: row_ids(driver) == [zeta[1]], what="the waiting execution")
    no_script_errors(driver)


def test_a_child_from_its_parent_and_back(site: SearchServer, browser: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    driver = browser
    parent = start(site, "parent", {"n": 1})
    wait_for(lambda: statuses(site, [parent]) == {"completed"}, what="the parent to complete")
    (child,) = [c["execution_id"] for c in listed(site, parent_id=parent)]

    driver.get(f"{site.url}/executions/{parent}")
    call = wait_for(
        lambda: driver.find_element(By.CSS_SELECTOR, '#dag-svg g.node[data-node-id="call"]'),
        what="the sub-workflow node",
    )
    call.click()
    link = wait_for(
        lambda: driver.find_element(By.CSS_SELECTOR, "#node-children a"), what="its child"
    )
    assert link.text == child
    link.click()
    wait_for(lambda: child in driver.current_url, what="the child's page")
    back = wait_for(lambda: driver.find_element(By.ID, "parent-link"), what="the parent link")
    assert back.text == parent
    back.click()
    wait_for(lambda: parent in driver.current_url, what="the parent's page")
    assert "node=call" in driver.current_url
    wait_for(lambda: driver.find_element(By.ID, "node-title").text == "call")

    # The list, grouped: the child under its parent.
    driver.get(f"{site.url}/?workflow=parent&group=1")
    wait_for(lambda: row_ids(driver)[:2] == [parent, child], what="the child under its parent")
    row = driver.find_element(By.CSS_SELECTOR, f'#executions tr[data-execution-id="{child}"]')
    assert "child" in (row.get_attribute("class") or "").split()
    assert row.get_attribute("data-parent") == parent
    shoot(driver, tmp_path, "nesting.png")
    # Ungrouped, the child says whose it is.
    driver.find_element(By.ID, "group-children").click()
    wait_for(lambda: "group=1" not in driver.current_url)
    driver.get(f"{site.url}/?workflow=child")
    note = wait_for(
        lambda: driver.find_element(
            By.CSS_SELECTOR, f'tr[data-execution-id="{child}"] .parent-link a'
        ),
        what="the parent link of the child's row",
    )
    assert note.get_attribute("href").endswith(f"/executions/{parent}")
    no_script_errors(driver)


def test_bulk_cancel_twenty(site: SearchServer, browser: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    driver = browser
    body = {"inputs": list(range(20)), "metadata": {"batch": "b20"}}
    ids = call_api(site.url, "/api/workflows/order/executions/bulk", body)["execution_ids"]
    wait_for(
        lambda: len(listed(site, status="waiting", where="metadata.batch=b20")) == 20,
        timeout=30,
        what="20 orders waiting",
    )
    driver.get(f"{site.url}/?where=metadata.batch%3Db20")
    wait_for(lambda: sorted(row_ids(driver)) == sorted(ids), what="the 20 orders")
    count = driver.find_element(By.ID, "selected-count")

    driver.find_element(By.ID, "select-page").click()
    wait_for(lambda: count.text == "20 selected", what="20 selected on the page")
    driver.find_element(By.ID, "select-none").click()
    wait_for(lambda: count.text == "none selected")
    driver.find_element(By.ID, "select-matching").click()
    wait_for(lambda: count.text.startswith("20 selected"), what="all 20 that match")
    assert "all that match" in count.text
    shoot(driver, tmp_path, "bulk-selected.png")

    driver.find_element(By.CSS_SELECTOR, 'button[data-bulk="cancel"]').click()
    accept_confirm(driver)
    outcomes = wait_for(
        lambda: driver.find_elements(By.CSS_SELECTOR, '#bulk-result tr[data-outcome="changed"]'),
        what="the bulk result",
    )
    assert sorted(o.get_attribute("data-execution-id") for o in outcomes) == sorted(ids)
    wait_for(lambda: statuses(site, ids) == {"cancelled"}, what="all 20 cancelled")
    wait_for(
        lambda: (
            {
                r.get_attribute("data-status")
                for r in driver.find_elements(By.CSS_SELECTOR, "#executions tbody tr")
            }
            == {"cancelled"}
        ),
        what="the list to show them cancelled",
    )
    assert count.text == "none selected"
    shoot(driver, tmp_path, "bulk-result.png")
    no_script_errors(driver)


def test_dead_letters_grouped_and_retried_per_group(
    site: SearchServer, browser: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    driver = browser
    search_app.FLAKY["up"] = False
    syncs = [start(site, "sync", i) for i in range(3)]
    audit = start(site, "audit", 0)
    wait_for(lambda: statuses(site, [*syncs, audit]) == {"failed"}, what="four failures")

    driver.get(site.url + "/dlq")

    def group(text: str) -> Any:
        for row in driver.find_elements(By.CSS_SELECTOR, "#dlq-groups tbody tr"):
            if text in (row.get_attribute("data-error") or ""):
                return row
        return None

    down = wait_for(lambda: group("the partner API is down"), what="the group of sync")
    assert down.get_attribute("data-count") == "3"
    locked = wait_for(lambda: group("the ledger is locked"), what="the group of audit")
    assert locked.get_attribute("data-count") == "1"
    shoot(driver, tmp_path, "dlq-groups.png")

    search_app.FLAKY["up"] = True
    wait_for(lambda: group("the partner API is down").find_element(By.CSS_SELECTOR, "button"))
    group("the partner API is down").find_element(By.CSS_SELECTOR, "button.retry-all").click()
    accept_confirm(driver)
    wait_for(lambda: "Retried 3 of 3" in driver.find_element(By.ID, "banner").text)
    wait_for(lambda: statuses(site, syncs) == {"completed"}, what="the retried syncs")
    wait_for(lambda: group("the partner API is down") is None, what="the group to go")
    assert group("the ledger is locked") is not None
    assert statuses(site, [audit]) == {"failed"}
    no_script_errors(driver)
