"""Coalescing of Redis writes made by concurrent jobs in the same event-loop tick.

With many jobs in flight, several finish (and enqueue their children) at nearly the same
moment. Each write is queued here and the batch goes out as one pipeline on the next loop
iteration: one round trip for the whole tick instead of one per job. Callers still await
their own write, so nothing returns before its data is in Redis.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from arq.connections import ArqRedis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

ScriptCall = tuple[AsyncScript, list[str], list[Any]]


class WriteBatcher:
    def __init__(self, redis: ArqRedis) -> None:
        self.redis = redis
        self._pending: dict[str, tuple[list[Any], asyncio.Future[None]]] = {}
        self._builders: dict[str, Callable[[list[Any]], ScriptCall]] = {}
        self._scheduled = False

    def register(self, kind: str, build: Callable[[list[Any]], ScriptCall]) -> None:
        """``build(items)`` turns the queued items of ``kind`` into one script call."""
        self._builders[kind] = build

    async def add(self, kind: str, items: list[Any]) -> None:
        entry = self._pending.get(kind)
        if entry is None:
            entry = ([], asyncio.get_running_loop().create_future())
            self._pending[kind] = entry
        entry[0].extend(items)
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._start_flush)
        await asyncio.shield(entry[1])

    def _start_flush(self) -> None:
        self._scheduled = False
        pending, self._pending = self._pending, {}
        if pending:
            task = asyncio.get_running_loop().create_task(self._flush(pending))
            task.add_done_callback(_consume)

    async def _flush(self, pending: dict[str, tuple[list[Any], asyncio.Future[None]]]) -> None:
        calls = [self._builders[kind](items) for kind, (items, _) in pending.items()]
        try:
            try:
                await self._send(calls)
            except NoScriptError:
                # Redis lost its script cache (restart, SCRIPT FLUSH): load and resend.
                # Every batched script is idempotent, so running one twice is harmless.
                for script, _, _ in calls:
                    script.sha = await self.redis.script_load(script.script)
                await self._send(calls)
        except BaseException as exc:
            for _, fut in pending.values():
                if not fut.done():
                    fut.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for _, fut in pending.values():
            if not fut.done():
                fut.set_result(None)

    async def _send(self, calls: list[ScriptCall]) -> None:
        # EVALSHA straight on the pipeline: going through Script.__call__ would make the
        # pipeline ask SCRIPT EXISTS first, a second round trip per batch.
        async with self.redis.pipeline(transaction=False) as pipe:
            for script, keys, args in calls:
                pipe.evalsha(script.sha, len(keys), *keys, *args)
            await pipe.execute()


def _consume(task: asyncio.Task[None]) -> None:
    if not task.cancelled():
        task.exception()
