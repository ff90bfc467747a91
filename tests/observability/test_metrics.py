"""Prometheus metrics: counters move with what the engine does, gauges read the queue and
the store, the text format parses, and a worker's port serves ``/metrics``."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from spane_py import ConfigurationError, NodeRegistry, WorkflowEngine
from tests.observability._support import CHAIN, FAILING, FLAKY, node, register_types, workflow

HOLDING = workflow("holding", node("h", "hold"))


@pytest.fixture(autouse=True)
def _types(registry: NodeRegistry) -> None:
    register_types(registry)


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a text exposition, by name and labels."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(text: str, name: str, **labels: str) -> float:
    return samples(text).get((name, frozenset(labels.items())), 0.0)


async def test_counters_move_with_executions_and_nodes(engine: WorkflowEngine) -> None:
    for definition in (CHAIN, FAILING, FLAKY, HOLDING):
        await engine.register_workflow(definition)
    await engine.start_workers()
    for _ in range(2):
        await engine.run_workflow("chain", 1)
    await engine.run_workflow("failing", 1)
    await engine.run_workflow("flaky", 1)
    held = await engine.enqueue_workflow("holding", 1)
    await engine.cancel_execution(held)

    text = await engine.metrics_text()
    assert value(text, "spane_workflows_enqueued_total", workflow_id="chain") == 2
    assert value(text, "spane_workflows_completed_total", workflow_id="chain") == 2
    assert value(text, "spane_workflows_failed_total", workflow_id="failing") == 1
    assert value(text, "spane_workflows_completed_total", workflow_id="flaky") == 1
    assert value(text, "spane_workflows_cancelled_total", workflow_id="holding") == 1

    def executed(workflow_id: str, node_type: str, status: str) -> float:
        return value(
            text,
            "spane_nodes_executed_total",
            workflow_id=workflow_id,
            node_type=node_type,
            status=status,
        )

    assert executed("chain", "echo", "succeeded") == 4
    assert executed("failing", "boom", "failed") == 1
    assert executed("flaky", "flaky", "retrying") == 1
    assert executed("flaky", "flaky", "succeeded") == 1
    assert value(text, "spane_nodes_failed_total", workflow_id="failing", node_type="boom") == 1
    assert value(text, "spane_nodes_failed_total", workflow_id="flaky", node_type="flaky") == 0
    duration = {"workflow_id": "chain", "node_type": "echo"}
    assert value(text, "spane_node_duration_seconds_count", **duration) == 4
    assert 0 < value(text, "spane_node_duration_seconds_sum", **duration) < 5
    assert value(text, "spane_node_duration_seconds_bucket", le="+Inf", **duration) == 4


async def test_gauges_read_the_queue_and_the_store(engine: WorkflowEngine) -> None:
    await engine.register_workflow(CHAIN)
    await engine.register_workflow(FAILING)
    text = await engine.metrics_text()
    assert value(text, "spane_dlq_size") == 0
    assert value(text, "spane_queue_depth", state="queued") == 0

    waiting = [await engine.enqueue_workflow("chain", i) for i in range(3)]
    await engine.pause_execution(waiting[0])
    text = await engine.metrics_text()
    assert value(text, "spane_queue_depth", state="queued") == 3  # no worker yet
    assert value(text, "spane_queue_depth", state="scheduled") == 0
    assert value(text, "spane_workflows_active") == 2
    assert value(text, "spane_workflows_paused") == 1

    await engine.resume_execution(waiting[0])
    await engine.start_workers()
    await engine.run_workflow("failing", 1)
    for eid in waiting:
        await engine.wait_for_execution(eid)
    text = await engine.metrics_text()
    assert value(text, "spane_dlq_size") == 1
    assert value(text, "spane_workflows_active") == 0
    # A worker lets go of a job just after its node's result is recorded.
    deadline = asyncio.get_running_loop().time() + 10
    while not (
        value(text, "spane_queue_depth", state="running") == 0
        and value(text, "spane_queue_depth", state="queued") == 0
    ) and (asyncio.get_running_loop().time() < deadline):
        await asyncio.sleep(0.02)
        text = await engine.metrics_text()
    assert value(text, "spane_queue_depth", state="running") == 0
    assert value(text, "spane_queue_depth", state="queued") == 0


async def test_each_engine_has_its_own_registry(
    engine: WorkflowEngine, registry: NodeRegistry, redis_url: str, key_prefix: str
) -> None:
    other = WorkflowEngine(registry, redis_url=redis_url, key_prefix=f"{key_prefix}-other")
    await other.start()
    try:
        await engine.register_workflow(CHAIN)
        await engine.start_workers()
        await engine.run_workflow("chain", 1)
        assert value(await engine.metrics_text(), "spane_workflows_completed_total",
                     workflow_id="chain") == 1  # fmt: skip
        assert "spane_workflows_completed_total{" not in await other.metrics_text()
    finally:
        await other.purge()
        await other.close()


async def test_metrics_text_works_before_start(registry: NodeRegistry) -> None:
    engine = WorkflowEngine(registry)
    text = await engine.metrics_text()
    assert value(text, "spane_dlq_size") == 0
    assert "# TYPE spane_workflows_enqueued_total counter" in text
    assert "# TYPE spane_node_duration_seconds histogram" in text


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        assert response.status == 200
        body: bytes = response.read()
        return body.decode()


async def test_serve_metrics_serves_the_engines_registry(engine: WorkflowEngine) -> None:
    port = await engine.serve_metrics(0, "127.0.0.1")
    assert port > 0
    assert await engine.serve_metrics(0, "127.0.0.1") == port  # once per engine
    await engine.register_workflow(CHAIN)
    await engine.register_workflow(FAILING)
    await engine.start_workers()
    await engine.run_workflow("chain", 1)
    await engine.run_workflow("failing", 1)
    # Served from prometheus-client's thread, the gauges read on the engine's loop.
    text = await asyncio.to_thread(scrape, port)
    assert value(text, "spane_workflows_completed_total", workflow_id="chain") == 1
    assert value(text, "spane_dlq_size") == 1


async def test_metrics_port_starts_the_server_with_the_engine(
    registry: NodeRegistry, redis_url: str, key_prefix: str
) -> None:
    engine = WorkflowEngine(
        registry, redis_url=redis_url, key_prefix=key_prefix, metrics_port=0,
        metrics_addr="127.0.0.1",
    )  # fmt: skip
    async with engine:
        assert engine.metrics_port
        text = await asyncio.to_thread(scrape, engine.metrics_port)
        assert "spane_queue_depth" in text
        port = engine.metrics_port
    with pytest.raises(urllib.error.URLError):  # closed with the engine
        await asyncio.to_thread(scrape, port)


async def test_a_port_in_use_is_a_configuration_error(
    engine: WorkflowEngine, registry: NodeRegistry, redis_url: str, key_prefix: str
) -> None:
    port = await engine.serve_metrics(0, "127.0.0.1")
    clash = WorkflowEngine(
        registry, redis_url=redis_url, key_prefix=f"{key_prefix}-clash", metrics_port=port,
        metrics_addr="127.0.0.1",
    )  # fmt: skip
    with pytest.raises(ConfigurationError, match=f"cannot serve metrics on 127.0.0.1:{port}"):
        await clash.start()
    with pytest.raises(ConfigurationError, match="metrics port must be"):
        await engine.serve_metrics(70000)
    with pytest.raises(ConfigurationError, match="metrics port must be"):
        WorkflowEngine(registry, metrics_port=-1)


async def test_own_metrics_can_join_the_engines_registry(engine: WorkflowEngine) -> None:
    from prometheus_client import Counter

    orders = Counter("shop_orders", "Orders taken.", registry=engine.metrics_registry)
    orders.inc(3)
    assert value(await engine.metrics_text(), "shop_orders_total") == 3


def test_the_worker_metrics_port_is_a_setting_of_the_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pydantic import ValidationError

    from spane_py.settings import SpaneSettings

    monkeypatch.setenv("SPANE_METRICS_PORT", "9464")
    monkeypatch.setenv("SPANE_METRICS_ADDR", "127.0.0.1")
    settings = SpaneSettings()
    assert (settings.metrics_port, settings.metrics_addr) == (9464, "127.0.0.1")
    assert "metrics_port" not in settings.engine_kwargs(store=False)  # one port, one process
    monkeypatch.setenv("SPANE_METRICS_PORT", "70000")
    with pytest.raises(ValidationError):
        SpaneSettings()
