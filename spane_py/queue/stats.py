"""What waits and runs in the queue: totals (``QueueStats``) and per lane (``LaneStats``),
read by one script call, without scanning a set."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from spane_py.queue.jobs import BAND
from spane_py.queue.scripts import PRELUDE


@dataclass(frozen=True, slots=True)
class QueueStats:
    """Jobs of every lane: pending (suspects included), scheduled, running."""

    queued: int
    scheduled: int
    running: int


@dataclass(frozen=True, slots=True)
class LaneStats:
    """One lane's jobs: pending (suspects included) and running, and how long the oldest
    pending one has waited since it was enqueued (seconds; None when none waits). The
    oldest is looked for among the first job of each priority band and the first suspect,
    not by a scan: a job put back in line (rescheduled, released) counts from when it was
    first enqueued."""

    queued: int
    running: int
    oldest_waiting_s: float | None


# ARGV[6]: '1' to find the oldest job of each lane. Returns {scheduled, then per lane its
# name, pending (suspects included), running (not the sentinel), the enqueue time (ms, from
# the job record: arq's 'et') of its oldest pending job or nil}, the default lane first.
STATS = (
    PRELUDE
    + """
local BAND = @BAND@
local function enqueued(id, best)
  local data = redis.call('GET', JP .. id)
  if data then
    local ok, record = pcall(cjson.decode, data)
    if ok and type(record) == 'table' then
      local et = tonumber(record['et'])
      if et and (not best or et < best) then return et end
    end
  end
  return best
end
local function oldest(l)
  local best
  local head = redis.call('ZRANGE', l.q, 0, 0, 'WITHSCORES')
  while head[1] do
    best = enqueued(head[1], best)
    local next_band = (math.floor(tonumber(head[2]) / BAND) + 1) * BAND
    head = redis.call('ZRANGEBYSCORE', l.q, num(next_band), '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
  end
  local suspect = redis.call('ZRANGE', l.sus, 0, 0)[1]
  if suspect then best = enqueued(suspect, best) end
  return best or false
end
local ages = ARGV[6] == '1'
local out = {redis.call('ZCARD', SCHED)}
for _, l in ipairs(all_lanes()) do
  out[#out + 1] = l.name
  out[#out + 1] = redis.call('ZCARD', l.q) + redis.call('ZCARD', l.sus)
  out[#out + 1] = redis.call('ZCOUNT', l.run, '-inf', '(inf')
  out[#out + 1] = ages and oldest(l) or false
end
return out
""".replace("@BAND@", str(BAND))
)


def queue_stats(reply: Any) -> QueueStats:
    """The totals of a ``STATS`` reply."""
    rows = reply[1:]
    return QueueStats(
        queued=sum(int(q) for q in rows[1::4]),
        scheduled=int(reply[0]),
        running=sum(int(r) for r in rows[2::4]),
    )


def lane_stats(reply: Any) -> dict[str, LaneStats]:
    """The lanes of a ``STATS`` reply (asked with ages): the default one first, then by
    name."""
    now_ms = time.time() * 1000
    rows = reply[1:]
    found: dict[str, LaneStats] = {}
    for name, queued, running, enqueued in zip(
        rows[0::4], rows[1::4], rows[2::4], rows[3::4], strict=True
    ):
        age = None if enqueued is None else max(now_ms - int(enqueued), 0) / 1000
        key = name.decode() if isinstance(name, bytes) else str(name)
        found[key] = LaneStats(queued=int(queued), running=int(running), oldest_waiting_s=age)
    default, *others = found  # the script answers the default lane first
    return {name: found[name] for name in [default, *sorted(others)]}


__all__ = ["STATS", "LaneStats", "QueueStats", "lane_stats", "queue_stats"]
