"""The scheduled set seen from outside a claim: when its next job is due, and making jobs due
early. Only the time-skipping harness (``spane_py.testing``) uses this: a worker's claim
moves due jobs on its own."""

from __future__ import annotations

from spane_py.queue.client import JobQueue

# Scheduled jobs due by ARGV[1] (ms) get the score 0: due at once, for the next claim, which
# moves them to the queue in their priority band as it does any due job.
_MAKE_DUE = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
for _, id in ipairs(ids) do
  redis.call('ZADD', KEYS[1], 'XX', 0, id)
end
return #ids
"""


async def next_due_ms(queue: JobQueue) -> int | None:
    """When the first scheduled job is due (ms since the epoch); None when none is."""
    first = await queue.redis.zrange(queue.keys.scheduled, 0, 0, withscores=True)
    return int(first[0][1]) if first else None


async def make_due(queue: JobQueue, up_to_ms: int) -> int:
    """Make the scheduled jobs due by ``up_to_ms`` due now, and wake this process's
    workers; returns how many."""
    script = queue.redis.register_script(_MAKE_DUE)
    moved = int(await script(keys=[queue.keys.scheduled], args=[up_to_ms]))
    if moved:
        queue.local_wake.set()
    return moved
