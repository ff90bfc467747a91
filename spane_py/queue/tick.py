"""One script call per event-loop tick for what the jobs of a process ask of Redis.

With many jobs in flight, several finish at nearly the same moment: each enqueues its
children and ends its delivery, and the worker claims more. Each request is queued here
and the lot goes out on the next loop iteration as ONE call of the ``TICK`` script
(enqueues, then ends of deliveries, then claims, then announcements): one round trip and
one script call for the whole tick instead of one per job and kind. Callers still await
their own request, so nothing returns before its data is in Redis; a claim gets its own
answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

# A tick's call goes out this many event-loop iterations after its first request: enough
# for a job's children, the end of its delivery and its worker's next claim to join it
# (each takes a task switch or two), a few microseconds each on a busy loop.
TICK_ITERATIONS = 3
# At most this many calls under way at once; what comes meanwhile joins the next call. An
# idle process sends at once; a busy one's calls grow with the load (group commit).
MAX_IN_FLIGHT = 1
# Sections of a tick, in the order the script applies them.
ENQUEUE, SETTLE, CLAIM, PUBLISH = "E", "S", "C", "P"
_ORDER = (ENQUEUE, SETTLE, CLAIM, PUBLISH)


class TickBatcher:
    def __init__(
        self,
        redis: Redis,
        script: AsyncScript,
        keys: Sequence[str],
        header: Callable[[], list[Any]],
    ) -> None:
        self.redis = redis
        self.script = script
        self.keys = list(keys)
        self.header = header  # the ARGV every script starts with (it holds the time)
        self._values: dict[str, list[Any]] = {tag: [] for tag in _ORDER}
        # Enqueues by (due, band, lane) and ends of deliveries by (mode, owner token, lane):
        # a group's header is sent once, whatever the number of its jobs.
        self._groups: dict[str, dict[tuple[Any, ...], list[Any]]] = {ENQUEUE: {}, SETTLE: {}}
        self._waiters: list[asyncio.Future[None]] = []
        # Claims: the request of each is made when the tick's call is built (so that it
        # asks for the slots free then), and the future of its answer.
        self._claims: list[tuple[Callable[[], list[Any]], asyncio.Future[Any]]] = []
        self._scheduled = False
        self._in_flight = 0  # calls sent and not yet answered
        self._held_back = False  # a tick waits for one of them

    async def add(self, tag: str, values: list[Any], group: tuple[Any, ...] = ()) -> None:
        """Queue ``values`` for section ``tag`` (``ENQUEUE`` and ``SETTLE``: in ``group``,
        see ``_section``; not ``CLAIM``); returns once sent."""
        await asyncio.shield(self.add_nowait(tag, values, group))

    def add_nowait(
        self, tag: str, values: list[Any], group: tuple[Any, ...] = ()
    ) -> asyncio.Future[None]:
        """``add`` without waiting: the future is done once the tick's call is."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if tag in self._groups:
            self._groups[tag].setdefault(group, []).extend(values)
        else:
            self._values[tag].extend(values)
        self._waiters.append(fut)
        self._schedule()
        return fut

    def add_groups_nowait(
        self, tag: str, groups: Sequence[tuple[tuple[Any, ...], list[Any]]]
    ) -> asyncio.Future[None]:
        """``add_nowait`` of several groups (jobs of several lanes) with one future."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        for group, values in groups:
            self._groups[tag].setdefault(group, []).extend(values)
        self._waiters.append(fut)
        self._schedule()
        return fut

    def claim(self, request: Callable[[], list[Any]]) -> asyncio.Future[Any]:
        """Queue one claim; ``request()``, called when the tick's call is built, gives its
        values (worker, want, lease ms, idle, draining, the count of its lanes, the lanes).
        The future of its answer."""
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._claims.append((request, fut))
        self._schedule()
        return fut

    def _schedule(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._start_flush, TICK_ITERATIONS)

    def _start_flush(self, wait: int = 0) -> None:
        if wait:
            # Not yet: what a finishing job does next (its completion runs in a task of its
            # own; its delivery ends, its worker claims) takes a few loop iterations.
            asyncio.get_running_loop().call_soon(self._start_flush, wait - 1)
            return
        if self._in_flight >= MAX_IN_FLIGHT:
            self._held_back = True  # goes out when a call under way returns
            return
        self._scheduled = False
        values, self._values = self._values, {tag: [] for tag in _ORDER}
        for tag, groups in self._groups.items():
            for group, items in groups.items():
                values[tag] += _section(tag, group, items)
            groups.clear()
        waiters, self._waiters = self._waiters, []
        requests, self._claims = self._claims, []
        claims = []
        for request, fut in requests:
            if not fut.done():
                values[CLAIM] += request()
                claims.append(fut)
        if waiters or claims:
            self._in_flight += 1
            task = asyncio.get_running_loop().create_task(self._flush(values, waiters, claims))
            task.add_done_callback(self._returned)

    def _returned(self, task: asyncio.Task[None]) -> None:
        self._in_flight -= 1
        _consume(task)
        if self._held_back:
            self._held_back = False
            self._start_flush()

    async def _flush(
        self,
        values: dict[str, list[Any]],
        waiters: list[asyncio.Future[None]],
        claims: list[asyncio.Future[Any]],
    ) -> None:
        argv = self.header()
        for tag in _ORDER:
            if values[tag]:
                argv += [tag, len(values[tag]), *values[tag]]
        try:
            try:
                answers = await self._send(argv)
            except NoScriptError:
                # Redis lost its script cache (restart, SCRIPT FLUSH): the call did not run.
                self.script.sha = await self.redis.script_load(self.script.script)
                answers = await self._send(argv)
        except BaseException as exc:
            for fut in [*waiters, *claims]:
                if not fut.done():
                    fut.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)
        for fut, answer in zip(claims, answers, strict=True):
            if not fut.done():
                fut.set_result(answer)

    async def _send(self, argv: list[Any]) -> Any:
        # EVALSHA straight away: Script.__call__ would ask SCRIPT EXISTS first when the
        # client is a pipeline, and loads the script itself otherwise.
        keys = self.keys
        return await self.redis.execute_command(  # type: ignore[no-untyped-call]
            "EVALSHA", self.script.sha, len(keys), *keys, *argv
        )


def _section(tag: str, group: tuple[Any, ...], items: list[Any]) -> list[Any]:
    """A group's values as the script reads them: enqueues as count, due, band, lane, then
    id and record per job; ends of deliveries as mode, token, lane, count of values, then
    the values."""
    if tag == ENQUEUE:
        due, band, lane = group
        return [len(items) // 2, due, band, lane, *items]
    mode, token, lane = group
    return [mode, token, lane, len(items), *items]


def _consume(task: asyncio.Task[None]) -> None:
    if not task.cancelled():
        task.exception()
