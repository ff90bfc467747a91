"""The parts of a started engine and how they are put together: the Redis connection (or
the embedded server), the queue, the lifecycle of executions, traffic control, the node
runner, control (pause, cancel, ...) and the channels between processes.

``wire`` builds them in the order they depend on each other; ``WorkflowEngine.start`` calls
it and ``WorkflowEngine.close`` releases what it made. Keeping it here leaves the engine a
facade over finished parts.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import dataclass

from arq.connections import ArqRedis

from spane_py.artifacts import DEFAULT_MAX_ARTIFACT_BYTES, Artifacts
from spane_py.clock import SYSTEM_CLOCK, Clock
from spane_py.embedded import EmbeddedRedis
from spane_py.engine.builtin_nodes import BuiltinNodes
from spane_py.engine.cache import WorkflowCache
from spane_py.engine.control import Control
from spane_py.engine.dispatch import Dispatch
from spane_py.engine.lifecycle import Lifecycle
from spane_py.engine.notify import ControlChannel, SettleNotifier
from spane_py.engine.resend import Resender
from spane_py.engine.routing import Routes
from spane_py.engine.runner import NodeRunner
from spane_py.limits import Limits
from spane_py.queue.client import JobQueue, connect
from spane_py.registry import NodeRegistry
from spane_py.stores.base import ExecutionStore
from spane_py.traffic.control import TrafficControl
from spane_py.traffic.policies import RateLimit


@dataclass(frozen=True, slots=True)
class RunnerOptions:
    """What the node runner is configured with (the engine's options of that name)."""

    max_output_bytes: int
    cancel_grace_seconds: float
    max_lost_deliveries: int
    max_artifact_bytes: int = DEFAULT_MAX_ARTIFACT_BYTES


@dataclass(slots=True)
class Wiring:
    """A started engine's parts."""

    redis: ArqRedis
    embedded: EmbeddedRedis | None  # the server started here when no Redis URL was given
    queue: JobQueue
    notifier: SettleNotifier
    resender: Resender
    lifecycle: Lifecycle
    traffic: TrafficControl
    runner: NodeRunner
    channel: ControlChannel
    control: Control
    dispatch: Dispatch  # the workers' handler
    routes: Routes  # the queue of each node's jobs

    @property
    def redis_url(self) -> str | None:
        return self.embedded.url if self.embedded is not None else None


async def wire(
    *,
    store: ExecutionStore,
    cache: WorkflowCache,
    registry: NodeRegistry,
    key_prefix: str,
    redis_url: str | None,
    global_rate_limit: RateLimit | None,
    limits: Limits,
    runner_options: RunnerOptions,
    clock: Clock = SYSTEM_CLOCK,
) -> Wiring:
    """Connect to Redis (``redis_url``, else ``$REDIS_URL``, else an embedded server) and
    build every part on it. Raises what connecting raised, having released it."""
    url = redis_url or os.environ.get("REDIS_URL")
    embedded = None
    if not url:
        embedded = EmbeddedRedis()
        url = await embedded.astart()
    redis = connect(url, queue_name=f"{key_prefix}:queue")
    queue = JobQueue(redis, prefix=key_prefix)
    try:
        await queue.ping()
    except Exception:
        await release_redis(redis, embedded)
        raise
    # Waiters in other processes can only exist when the store is shared.
    notifier = SettleNotifier(queue, across_processes=store.shared)
    resender = Resender()
    routes = Routes(registry)
    lifecycle = Lifecycle(
        store, queue, cache, notifier, resender=resender, clock=clock, routes=routes
    )
    traffic = TrafficControl(redis, prefix=key_prefix, global_limit=global_rate_limit)
    builtins = BuiltinNodes(
        store=store,
        queue=queue,
        cache=cache,
        registry=registry,
        admit=lifecycle.admit,
        traffic=traffic,
        clock=clock,
        routes=routes,
    )
    runner = NodeRunner(
        registry=registry,
        store=store,
        cache=cache,
        queue=queue,
        on_settled=lifecycle.settled,
        builtins=builtins,
        traffic=traffic,
        max_output_bytes=runner_options.max_output_bytes,
        cancel_grace_seconds=runner_options.cancel_grace_seconds,
        max_lost_deliveries=runner_options.max_lost_deliveries,
        clock=clock,
        routes=routes,
        artifacts=Artifacts(store, max_bytes=runner_options.max_artifact_bytes, clock=clock),
    )
    channel = ControlChannel(queue)
    control = Control(
        store=store,
        queue=queue,
        cache=cache,
        runner=runner,
        lifecycle=lifecycle,
        channel=channel,
        limits=limits,
        clock=clock,
    )
    return Wiring(
        redis=redis,
        embedded=embedded,
        queue=queue,
        notifier=notifier,
        resender=resender,
        lifecycle=lifecycle,
        traffic=traffic,
        runner=runner,
        channel=channel,
        control=control,
        dispatch=Dispatch(runner, control),
        routes=routes,
    )


async def unwire(wiring: Wiring) -> None:
    """Release what ``wire`` made — the listeners, then the connection — once the workers
    have stopped and the resender has had its last chance (``Resender.close``)."""
    await wiring.notifier.close()
    await wiring.channel.close()
    await wiring.traffic.close()
    await release_redis(wiring.redis, wiring.embedded)


async def release_redis(redis: ArqRedis, embedded: EmbeddedRedis | None) -> None:
    with contextlib.suppress(Exception):
        await redis.aclose(close_connection_pool=True)
    if embedded is not None:
        await asyncio.to_thread(embedded.stop)
