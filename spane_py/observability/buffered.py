"""A bounded buffer of events written out in batches by a background task: what the
event history (history.py) and the event stream's publisher (stream.py) have in common.

A sink is called with each event (``sink(name, fields)``) on the hop's path, which costs
an append to the buffer (and a reading of the clock that dates the event) and, at most,
scheduling a write. The buffer goes out as one batch ``flush_interval`` after the last
write began — at once when that is past — and, with ``max_batch``, as soon as that many
events wait. One batch at a time: while one is being written, the next events wait for
it. A subclass dates the events (``_now``) and writes a batch (``_write``), deciding what
a failure means; ``_retry_later`` puts a batch that could not be written back in front of
the buffer, within a bound (the oldest dropped beyond it), and makes the next try wait.
``flush()`` writes what is buffered now; ``close()`` writes it (one try) and stops taking
events. The span records are never buffered.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar, Generic, TypeVar

from spane_py.observability import events

logger = logging.getLogger("spane_py.events")

At = TypeVar("At")  # how a sink dates its events: a datetime, a POSIX time

NOT_BUFFERED = frozenset({events.NODE_SPAN, events.EXECUTION_SPAN})

__all__ = ["NOT_BUFFERED", "BufferedSink"]


class BufferedSink(ABC, Generic[At]):
    """An event sink that buffers events and writes them in batches (see the module
    docstring); subclasses name their write task (``task_name``), the error logged when a
    write raises (``task_failed``), and implement ``_now`` and ``_write``."""

    task_name: ClassVar[str]
    task_failed: ClassVar[str]

    def __init__(self, *, flush_interval: float, max_batch: int | None = None) -> None:
        self.flush_interval = flush_interval
        self.max_batch = max_batch  # None: a batch waits for flush_interval, however large
        self._buffer: list[tuple[str, At, Mapping[str, Any]]] = []
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.Handle | None = None
        self._last_flush = 0.0  # loop time
        self._writing: asyncio.Task[None] | None = None
        self._closed = False

    @abstractmethod
    def _now(self) -> At:
        """The date of an event buffered now."""

    @abstractmethod
    async def _write(self, batch: list[tuple[str, At, Mapping[str, Any]]]) -> None:
        """Write one batch (in the background, one at a time). An exception it lets out
        is logged (``task_failed``) and the batch lost; to keep it, catch the exception
        and call ``_retry_later``."""

    def __call__(self, name: str, fields: Mapping[str, Any]) -> None:
        if name in NOT_BUFFERED or self._closed:
            return
        # Made into what is written when written, off the hop's path (``emit`` made
        # ``fields`` for its sinks alone).
        self._buffer.append((name, self._now(), fields))
        if self._writing is None and (
            self._timer is None
            or (self.max_batch is not None and len(self._buffer) >= self.max_batch)
        ):
            try:
                same_loop = asyncio.get_running_loop() is self._loop
            except RuntimeError:
                same_loop = False
            if same_loop:
                self._schedule()
            else:
                self._loop.call_soon_threadsafe(self._schedule)

    def _schedule(self) -> None:
        if self._writing is not None or not self._buffer:
            return
        if self.max_batch is not None and len(self._buffer) >= self.max_batch:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = self._loop.call_soon(self._flush)
        elif self._timer is None:
            # Now when the last write is long past; else when flush_interval has passed.
            delay = self._last_flush + self.flush_interval - self._loop.time()
            self._timer = self._loop.call_later(max(delay, 0.0), self._flush)

    def _flush(self) -> None:
        self._timer = None
        if self._writing is not None:
            return
        self._last_flush = self._loop.time()
        batch, self._buffer = self._buffer, []
        if batch:
            self._writing = self._loop.create_task(self._write(batch), name=self.task_name)
            self._writing.add_done_callback(self._written)

    def _written(self, task: asyncio.Task[None]) -> None:
        self._writing = None
        if not task.cancelled() and task.exception() is not None:
            logger.error(self.task_failed, exc_info=task.exception())
        if self._buffer and not self._closed:
            self._schedule()

    def _retry_later(
        self,
        batch: list[tuple[str, At, Mapping[str, Any]]],
        *,
        max_buffered: int,
        retry_after: float,
    ) -> str:
        """Put ``batch``, which could not be written, back in front of the buffer, keeping
        at most ``max_buffered`` events (the oldest dropped); the next write waits
        ``retry_after`` seconds more. Returns what to add to the warning: ``" (N dropped)"``
        when any were, else ``""``."""
        kept = (batch + self._buffer)[-max_buffered:]
        dropped = len(batch) + len(self._buffer) - len(kept)
        self._buffer = kept
        self._last_flush = self._loop.time() + retry_after  # the next try waits
        return f" ({dropped} dropped)" if dropped else ""

    async def flush(self) -> None:
        """Write what is buffered now; returns once it is written (or the write failed)."""
        if self._writing is not None:
            await asyncio.wait([self._writing])
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._flush()
        if self._writing is not None:
            await asyncio.wait([self._writing])

    async def close(self) -> None:
        """Write what is buffered (one try), then stop."""
        self._closed = True
        await self.flush()
        self._buffer.clear()
