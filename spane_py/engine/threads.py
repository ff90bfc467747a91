"""The thread pool that runs plain ``def`` node executors.

A node executor written as a plain function (``def``, not ``async def``) would block the
event loop, and with it every other node of the worker, its lease renewals and heartbeats,
for as long as it runs. So the registry wraps such a function once, when it is registered,
into a coroutine function that runs it here (``run_sync``): in one process-wide
``ThreadPoolExecutor`` (threads named ``spane-node_N``), inside a copy of the caller's
``contextvars``, so the events scope and any logging or trace context follow the call into
its thread.

The pool is created on first use with ``default_max_workers()`` threads,
``min(32, os.cpu_count() + 4)`` as in ``concurrent.futures``, unless ``configure(n)`` set
another size (``spane worker --threads N``). Configuring another size once the pool exists
replaces it for later calls; the old pool is shut down without waiting, and the calls it
already holds still run to their end.

Timeouts and cancellation: a thread cannot be interrupted. When the task awaiting a call is
cancelled (the node's timeout, its execution cancelled, the worker stopping), the await ends
at once with ``CancelledError`` and the attempt goes on as for an async node, but the
function keeps running in its thread until it returns. What it returns or raises then is
dropped, and nothing is logged for it. Until it returns it holds one of the pool's threads
(a hung function makes the pool one thread smaller), and interpreter exit waits for it
(``concurrent.futures`` joins its threads). Long work in a ``def`` node should look at
``ctx.is_cancelled`` now and then and return early.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Final, ParamSpec, TypeVar

__all__ = ["configure", "default_max_workers", "max_workers", "pool", "run_sync", "shutdown"]

THREAD_NAME_PREFIX: Final = "spane-node"

P = ParamSpec("P")
T = TypeVar("T")

_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_pool_size = 0  # the number of threads _pool was made with
_size: int | None = None  # None: default_max_workers()


def default_max_workers() -> int:
    """The pool's size unless ``configure`` says otherwise: ``min(32, CPUs + 4)``."""
    return min(32, (os.cpu_count() or 1) + 4)


def max_workers() -> int:
    """The size of the pool: the one given to ``configure``, else the default."""
    return _size if _size is not None else default_max_workers()


def configure(max_workers: int) -> None:
    """Run ``def`` node executors on ``max_workers`` threads (an int, at least 1).

    Once the pool exists, another size replaces it for later calls (the old pool is shut
    down without waiting for the calls it holds); the same size keeps it.
    """
    global _pool, _size
    if isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1:
        raise ValueError(
            f"the node thread pool needs a whole number of threads, at least 1; got {max_workers!r}"
        )
    with _lock:
        old = _pool if max_workers != _pool_size else None
        if old is not None:
            _pool = None
        _size = max_workers
    if old is not None:
        old.shutdown(wait=False)


def pool() -> ThreadPoolExecutor:
    """The pool, created on first use."""
    global _pool, _pool_size
    with _lock:
        if _pool is None:
            _pool_size = max_workers()
            _pool = ThreadPoolExecutor(_pool_size, thread_name_prefix=THREAD_NAME_PREFIX)
        return _pool


def shutdown(*, wait: bool = False) -> None:
    """Shut the pool down (the calls it holds still run; ``wait`` waits for them). The next
    call makes a new pool, of the configured size."""
    global _pool
    with _lock:
        old, _pool = _pool, None
    if old is not None:
        old.shutdown(wait=wait)


async def run_sync(function: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """``function(*args, **kwargs)`` on a thread of the pool, in a copy of this context.

    Cancelling the await abandons the call: the thread runs on, its outcome is dropped.
    """
    # Cancelling the await cancels the future run_in_executor returns: asyncio then drops
    # what the thread sends it later (no "exception was never retrieved"). A call that
    # ended just before the cancel had its outcome read by the task as it woke up.
    call = functools.partial(contextvars.copy_context().run, function, *args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(pool(), call)


def _forget_after_fork() -> None:
    global _pool, _lock
    _pool, _lock = None, threading.Lock()  # the parent's threads do not exist here


os.register_at_fork(after_in_child=_forget_after_fork)
