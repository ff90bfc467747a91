"""An execution's artifacts on its dashboard page, in headless Chromium (as
``test_dashboard_browser.py``, whose server, browser and helpers this reuses): a workflow's
nodes put a bytes artifact whose name holds a slash and odd characters, and a JSON one;
the page lists each with its name, node, content type, size and time, and its download
link, followed by the browser, saves the very bytes. The server asks for an API token,
which the dashboard sends in the Authorization header, never in a URL.

Screenshots go to the test's temporary directory and, when ``SPANE_DOCS_SCREENSHOTS``
names a directory, there too.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from spane_py import ExecutionContext, NodeRegistry, Workflow, WorkflowEngine
from spane_py.api import ApiSettings, create_app
from tests.e2e.conftest import delete_keys
from tests.e2e.test_dashboard_browser import (
    DashboardServer,
    browser,
    no_script_errors,
    wait_for,
)
from tests.e2e.test_dashboard_pages import shoot

pytestmark = pytest.mark.slow
__all__ = ["browser"]  # a fixture of this module too

TOKEN = f"tok-{uuid.uuid4().hex}"
DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")

RAW_NAME = "raw/<i>día</i> #1?.bin"  # a slash, markup, non-ASCII, "#" and "?"
RAW_DATA = bytes(range(256)) * 12  # 3072 bytes: "3.0 KiB"
SUMMARY_NAME = "summary.json"
SUMMARY = {"rows": 3, "note": "ünïcode & <tags>"}

files = Workflow("files", description="Puts a file and a summary as artifacts.")


@files.node()
async def export(data: Any, ctx: ExecutionContext) -> dict[str, Any]:
    ref = await ctx.put_artifact(RAW_NAME, RAW_DATA)
    return {"raw": ref}


@files.node(after=export)
async def summarize(export: dict[str, Any], ctx: ExecutionContext) -> dict[str, Any]:
    assert await ctx.get_artifact(export["raw"]) == RAW_DATA
    await ctx.put_artifact(SUMMARY_NAME, SUMMARY)
    return SUMMARY


plain = Workflow("plain", description="Puts no artifact.")


@plain.node()
async def nothing(data: Any) -> str:
    return "done"


class ArtifactsServer(DashboardServer):
    """The dashboard over ``files`` and ``plain``, behind an API token unless ``token`` is
    None, with a worker in its process."""

    token: str | None = TOKEN

    async def _serve(self) -> None:
        engine = WorkflowEngine(
            NodeRegistry(),
            workflows=[files, plain],
            redis_url=self.redis_url,
            key_prefix=self.key_prefix,
            poll_delay=0.2,
        )
        app = create_app(engine, ApiSettings(token=self.token), worker_concurrency=2)
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
        await self.server.serve(sockets=[self.sock])


class OpenServer(ArtifactsServer):
    token = None


def serve(server: ArtifactsServer, redis_url: str) -> Iterator[ArtifactsServer]:
    prefix = server.key_prefix
    server.start()
    try:
        yield server
    finally:
        server.stop()
        delete_keys(redis_url, f"{prefix}:*", f"arq:*:{prefix}:*")


@pytest.fixture(scope="module")
def site(redis_url: str) -> Iterator[ArtifactsServer]:
    yield from serve(ArtifactsServer(redis_url, f"ta{uuid.uuid4().hex[:10]}"), redis_url)


@pytest.fixture(scope="module")
def open_site(redis_url: str) -> Iterator[ArtifactsServer]:
    yield from serve(OpenServer(redis_url, f"tA{uuid.uuid4().hex[:10]}"), redis_url)


def fetch(url: str, body: Any = None, *, token: str | None = TOKEN) -> tuple[bytes, str]:
    """The bytes and content type of a call to the API, with the token unless None."""
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers=headers)
    with urllib.request.urlopen(request, timeout=30) as answer:
        return answer.read(), answer.headers.get_content_type()


def call(site: ArtifactsServer, path: str, body: Any = None) -> Any:
    return json.loads(fetch(site.url + path, body, token=site.token)[0])


def start(site: ArtifactsServer, workflow: str) -> str:
    execution_id: str = call(site, f"/api/workflows/{workflow}/executions", {"input": {}})[
        "execution_id"
    ]
    return execution_id


def completed(site: ArtifactsServer, execution_id: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        trace: dict[str, Any] = call(site, f"/api/executions/{execution_id}/trace")
        return trace if trace["execution"]["status"] == "completed" else None

    return wait_for(done, timeout=30, what=f"execution {execution_id} to complete")


def status_of(driver: Any) -> str | None:
    from selenium.webdriver.common.by import By

    value: str | None = driver.find_element(
        By.CSS_SELECTOR, "#execution-status .badge"
    ).get_attribute("data-status")
    return value


def saved(directory: Path, count: int) -> list[Path]:
    """The ``count`` files downloaded into ``directory`` once none is still partial."""

    def ready() -> list[Path] | None:
        found = sorted(directory.iterdir())
        if len(found) != count or any(p.suffix == ".crdownload" for p in found):
            return None
        return found

    return wait_for(ready, timeout=20, what=f"{count} downloads in {directory}")


def test_the_execution_page_lists_artifacts_and_downloads_them(
    site: ArtifactsServer, browser: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    driver = browser
    execution_id = start(site, "files")
    trace = completed(site, execution_id)
    infos = {a["name"]: a for a in trace["artifacts"]}
    assert set(infos) == {RAW_NAME, SUMMARY_NAME}
    assert infos[RAW_NAME]["size"] == len(RAW_DATA) == 3072
    summary_bytes, summary_type = fetch(
        site.url + f"/api/executions/{execution_id}/artifacts/{SUMMARY_NAME}"
    )
    assert summary_type == "application/json"
    assert json.loads(summary_bytes) == SUMMARY
    assert infos[SUMMARY_NAME]["size"] == len(summary_bytes) < 1024

    # The page, without a token at first: the API refuses it and the page asks for one.
    page = f"{site.url}/executions/{execution_id}"
    driver.get(page)
    form = wait_for(
        lambda: (f := driver.find_element(By.ID, "token-form")).is_displayed() and f,
        what="the token form",
    )
    driver.execute_script("window.__spaneMark = 'before the token';")
    form.find_element(By.TAG_NAME, "input").send_keys(TOKEN)
    form.find_element(By.TAG_NAME, "button").click()
    wait_for(
        lambda: driver.execute_script("return window.__spaneMark") is None,
        what="the page to reload with the token",
    )
    driver.get_log("browser")  # the 401s before the token are expected; later ones are not
    wait_for(lambda: status_of(driver) == "completed", timeout=20, what="the execution page")
    assert driver.execute_script("return window.localStorage.getItem('spane.apiToken')") == TOKEN

    rows = wait_for(
        lambda: len(r := driver.find_elements(By.CSS_SELECTOR, "#artifacts tbody tr")) == 2 and r,
        what="two artifact rows",
    )
    assert [r.get_attribute("data-artifact-name") for r in rows] == [
        a["name"] for a in trace["artifacts"]
    ]
    assert driver.find_element(By.ID, "artifacts").is_displayed()
    assert not driver.find_element(By.ID, "artifacts-empty").is_displayed()
    assert driver.find_element(By.ID, "artifacts-count").text == "(2)"
    expected = {
        RAW_NAME: ("export", "application/octet-stream", "3.0 KiB"),
        SUMMARY_NAME: ("summarize", "application/json", f"{len(summary_bytes)} B"),
    }
    links: dict[str, Any] = {}
    for row in rows:
        name = row.get_attribute("data-artifact-name")
        cells = row.find_elements(By.TAG_NAME, "td")
        assert cells[0].text == name  # the markup of the name is text, not elements
        assert (cells[1].text, cells[2].text, cells[3].text) == expected[name]
        assert row.get_attribute("data-node-id") == expected[name][0]
        assert cells[3].get_attribute("title") == f"{infos[name]['size']} bytes"
        assert DATE_TIME.match(cells[4].text), cells[4].text
        links[name] = cells[5].find_element(By.CSS_SELECTOR, "a.download")
        assert links[name].text == "Download"
    assert driver.find_elements(By.CSS_SELECTOR, "#artifacts i") == []

    # Each segment of the name percent-encoded; the token is in no URL.
    base = f"{site.url}/api/executions/{execution_id}/artifacts/"
    raw_href = links[RAW_NAME].get_attribute("href")
    assert raw_href == base + "raw/%3Ci%3Ed%C3%ADa%3C/i%3E%20%231%3F.bin"
    assert links[SUMMARY_NAME].get_attribute("href") == base + SUMMARY_NAME
    assert TOKEN not in raw_href
    with pytest.raises(urllib.error.HTTPError) as refused:
        fetch(raw_href, token=None)
    assert refused.value.code == 401
    refused.value.close()
    assert fetch(raw_href) == (RAW_DATA, "application/octet-stream")

    # Followed in the browser (with the token in its header): the very bytes are saved.
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    driver.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
    )
    panel = driver.find_element(By.ID, "artifacts-panel")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", panel)
    shoot(driver, tmp_path, "artifacts.png")
    links[RAW_NAME].click()
    (first,) = saved(downloads, 1)
    assert first.read_bytes() == RAW_DATA
    assert first.name.endswith(".bin")
    assert "/" not in first.name
    links[SUMMARY_NAME].click()
    second = next(p for p in saved(downloads, 2) if p != first)
    assert second.read_bytes() == summary_bytes
    assert second.name == SUMMARY_NAME
    assert driver.find_element(By.ID, "banner").get_attribute("class") == "banner hidden"
    no_script_errors(driver)

    # An execution with none says so.
    other = start(site, "plain")
    completed(site, other)
    driver.get(f"{site.url}/executions/{other}")
    wait_for(lambda: status_of(driver) == "completed", timeout=20, what="the other execution")
    empty = driver.find_element(By.ID, "artifacts-empty")
    assert empty.is_displayed()
    assert empty.text == "No artifacts."
    assert not driver.find_element(By.ID, "artifacts").is_displayed()
    assert driver.find_elements(By.CSS_SELECTOR, "#artifacts tbody tr") == []
    assert driver.find_element(By.ID, "artifacts-count").text == ""
    no_script_errors(driver)


def test_without_a_token_the_browser_follows_the_link(
    open_site: ArtifactsServer, browser: Any, tmp_path: Path
) -> None:
    """A server without a token: the link itself is the download (the server's
    attachment), no script in between."""
    from selenium.webdriver.common.by import By

    driver = browser
    execution_id = start(open_site, "files")
    completed(open_site, execution_id)
    driver.get(f"{open_site.url}/executions/{execution_id}")
    wait_for(lambda: status_of(driver) == "completed", timeout=20, what="the execution page")
    assert driver.execute_script("return window.localStorage.getItem('spane.apiToken')") is None
    link = wait_for(
        lambda: driver.find_element(
            By.CSS_SELECTOR, f'#artifacts tr[data-artifact-name="{SUMMARY_NAME}"] a.download'
        ),
        what="the summary's download link",
    )
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    driver.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
    )
    driver.execute_script("window.__spaneMark = 'same page';")
    link.click()
    (file,) = saved(downloads, 1)
    assert file.name == SUMMARY_NAME
    assert json.loads(file.read_bytes()) == SUMMARY
    assert driver.execute_script("return window.__spaneMark") == "same page"  # not navigated
    no_script_errors(driver)
