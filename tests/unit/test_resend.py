"""The resender on its own: sends Redis refuses are kept and sent again, up to a bound."""

from __future__ import annotations

import pytest

from spane_py.engine.resend import Resender
from spane_py.errors import QueueError


async def test_refused_sends_are_kept_up_to_the_bound_then_sent_in_order() -> None:
    up = False
    sent: list[int] = []

    def sender(n: int):  # type: ignore[no-untyped-def]
        async def send() -> None:
            if not up:
                raise QueueError("down")
            sent.append(n)

        return send

    resender = Resender(first_delay_s=0.001, max_delay_s=0.005, max_pending=3)
    results = [await resender.deliver(sender(n), f"send {n}") for n in range(5)]
    assert results == [False] * 5
    assert resender.pending == 3  # the bound: the two others are the sweeper's
    assert resender.dropped == 2
    up = True
    assert await resender.flush(timeout=10)
    assert sent == [0, 1, 2]
    assert await resender.deliver(sender(9), "send 9")  # nothing pending: sent at once
    assert sent == [0, 1, 2, 9]
    await resender.close(timeout=1)


async def test_other_errors_are_raised_not_kept() -> None:
    async def broken() -> None:
        raise RuntimeError("a bug, not Redis")

    resender = Resender()
    with pytest.raises(RuntimeError):
        await resender.deliver(broken, "broken")
    assert resender.pending == 0
    await resender.close(timeout=1)
