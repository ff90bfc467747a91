"""The node thread pool (``spane_py.engine.threads``): its size, and how calls run in it."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import logging
import os
import threading
import traceback
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from spane_py.cli import app
from spane_py.engine import threads

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="none")


@pytest.fixture(autouse=True)
def fresh_pool(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts with no pool and the default size; the process's pool comes back."""
    monkeypatch.setattr(threads, "_pool", None)
    monkeypatch.setattr(threads, "_pool_size", 0)
    monkeypatch.setattr(threads, "_size", None)
    yield
    threads.shutdown(wait=True)


# Size ---------------------------------------------------------------------------------


def test_the_pool_is_made_on_first_use_with_the_default_size() -> None:
    assert threads.default_max_workers() == min(32, (os.cpu_count() or 1) + 4)
    assert threads.max_workers() == threads.default_max_workers()
    assert threads._pool is None
    pool = threads.pool()
    assert threads.pool() is pool
    assert pool._max_workers == threads.default_max_workers()
    assert pool._thread_name_prefix == "spane-node"


def test_configure_sets_the_size_of_the_pool_to_come() -> None:
    threads.configure(3)
    assert threads.max_workers() == 3
    assert threads.pool()._max_workers == 3


def test_another_size_replaces_the_pool_and_shuts_the_old_one_down() -> None:
    old = threads.pool()
    release = threading.Event()
    running = old.submit(release.wait, 5)
    threads.configure(2)
    new = threads.pool()
    assert new is not old
    assert new._max_workers == 2
    with pytest.raises(RuntimeError, match="shutdown"):
        old.submit(print)
    # shut down without waiting: what the old pool holds still runs to its end
    assert not running.done()
    release.set()
    assert running.result(timeout=5) is True
    threads.configure(2)  # the same size keeps the pool
    assert threads.pool() is new


@pytest.mark.parametrize("value", [0, -1, 1.5, "4", None, True])
def test_configure_refuses_anything_but_a_positive_int(value: object) -> None:
    with pytest.raises(ValueError, match=r"at least 1; got"):
        threads.configure(value)  # type: ignore[arg-type]
    assert threads.max_workers() == threads.default_max_workers()


def test_shutdown_drops_the_pool_and_the_next_use_makes_one_of_the_configured_size() -> None:
    threads.configure(2)
    old = threads.pool()
    threads.shutdown()
    threads.shutdown()  # twice is fine
    assert threads._pool is None
    new = threads.pool()
    assert new is not old
    assert new._max_workers == 2


# Calls --------------------------------------------------------------------------------


async def test_a_call_runs_on_a_pool_thread_in_a_copy_of_the_context() -> None:
    def where(suffix: str, *, twice: bool) -> tuple[str, str]:
        seen = request_id.get()
        request_id.set("set in the thread")  # stays in the copy
        return threading.current_thread().name, seen + suffix * (2 if twice else 1)

    request_id.set("r-42")
    name, seen = await threads.run_sync(where, "!", twice=True)
    assert name.startswith("spane-node")
    assert name != threading.current_thread().name
    assert seen == "r-42!!"
    assert request_id.get() == "r-42"


async def test_a_call_that_raises_raises_with_its_own_traceback() -> None:
    def explode() -> None:
        raise KeyError("from the thread")

    with pytest.raises(KeyError, match="from the thread") as info:
        await threads.run_sync(explode)
    frames = [frame.name for frame in traceback.extract_tb(info.value.__traceback__)]
    assert frames[-1] == "explode"


async def test_the_loop_runs_while_a_call_blocks_its_thread() -> None:
    release = threading.Event()
    call = asyncio.create_task(threads.run_sync(release.wait, 5))
    ticks = 0
    while ticks < 5:  # the loop is free: other coroutines progress
        await asyncio.sleep(0)
        ticks += 1
    assert not call.done()
    release.set()
    assert await call is True


async def test_a_cancelled_call_runs_on_and_its_outcome_is_dropped_unlogged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    threads.configure(1)  # one thread: the next call runs once the abandoned one is over
    started, release, finished = threading.Event(), threading.Event(), threading.Event()

    def slow() -> None:
        started.set()
        release.wait(5)
        finished.set()
        raise RuntimeError("too late to matter")

    caplog.set_level(logging.DEBUG)
    call = asyncio.create_task(threads.run_sync(slow))
    assert await asyncio.to_thread(started.wait, 5)  # (the pool's one thread is taken)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert not finished.is_set()  # the thread is still in slow()
    release.set()
    assert await threads.run_sync(finished.is_set) is True
    await asyncio.sleep(0)  # the loop hears of slow()'s end, and drops it
    gc.collect()
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


async def test_an_exception_that_ends_as_its_awaiter_is_cancelled_is_not_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The call has ended (its future holds the exception) but the awaiting task is
    cancelled before it resumes: the task reads the outcome as it wakes up, so asyncio has
    no "Future exception was never retrieved" to log when the future is collected."""
    threads.configure(1)
    caplog.set_level(logging.DEBUG)

    def fail() -> None:
        raise RuntimeError("ended just as the node timed out")

    call = asyncio.create_task(threads.run_sync(fail))
    await asyncio.sleep(0)  # the call is submitted
    # Block the loop until fail() has ended and its result is on its way to the loop (one
    # thread: the marker runs after fail() and its done-callbacks).
    threads.pool().submit(lambda: None).result(timeout=5)
    await asyncio.sleep(0)  # the loop sets the future's exception; the task is not run yet
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    del call
    await asyncio.sleep(0)
    gc.collect()
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


# CLI ----------------------------------------------------------------------------------


def test_spane_worker_threads_configures_the_pool_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPANE_STORE", raising=False)
    result = CliRunner().invoke(app, ["worker", "no_such_module_here:engine", "--threads", "3"])
    assert result.exit_code == 2  # the APP is not found, after the pool was configured
    assert threads.max_workers() == 3


@pytest.mark.parametrize("value", ["0", "-2", "many"])
def test_spane_worker_refuses_a_bad_thread_count(value: str) -> None:
    result = CliRunner().invoke(app, ["worker", "x:engine", "--threads", value])
    assert result.exit_code == 2
    assert "--threads" in result.output
    assert threads.max_workers() == threads.default_max_workers()
