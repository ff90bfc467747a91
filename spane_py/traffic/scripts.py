"""Lua scripts of traffic control: each decision is one atomic Redis call.

Every script reads the clock of the Redis server (``TIME``), so all worker processes — on
any host — measure windows against one clock. Keys (``<prefix>`` is the engine's key
prefix, ``<type>`` a node type, ``<scope>`` ``global`` or ``type:<type>``):

=====================================  ==================================================
``<prefix>:traffic:rate:<scope>``      sorted set: the starts admitted in the window
                                       (score = ms), never more than the limit
``<prefix>:traffic:next:<scope>``      when the next deferred newcomer should come back
                                       (ms): deferred nodes return one slot apart instead
                                       of all at once
``<prefix>:traffic:ticket:<member>``   this node has waited its turn already: if it is
                                       refused again it returns as soon as a slot frees,
                                       not behind the newcomers
``<prefix>:traffic:blocked:<type>``    ``ctx.rate_limit(ms)``: the type waits until then
``<prefix>:traffic:breaker:<type>``    hash: state (absent = closed), open_until,
                                       opened_at, successes (half-open)
``<prefix>:traffic:failures:<type>``   sorted set: failures within the breaker's window
``<prefix>:traffic:probes:<type>``     sorted set: half-open probes out, scored by the
                                       end of their lease (a probe whose worker died
                                       frees its slot then)
=====================================  ==================================================
"""

from __future__ import annotations

# Whether one start may go now: the breaker first (an open breaker refuses without using a
# rate slot), then the type's block, then each rate limit. Admitted: the start is logged in
# every limit and, half-open, takes a probe slot. Refused by a limit: the wait is until the
# oldest start of the window leaves it, or — for a node that has not waited yet — until
# the limit's next free turn (``next``), which then moves one interval on.
#
# KEYS: 1 ticket, 2 blocked, 3 breaker, 4 probes, then per limit: rate log, next
# ARGV: 1 member, 2 breaker on ('1' / '0'), 3 half-open probes, 4 probe lease ms,
#       5 recheck ms (half-open and its probes all out), 6 ticket ttl ms,
#       then per limit: label, max calls, window ms
# Returns {code, wait ms, event, probe}: code 'ok' | 'open' | 'probing' | 'blocked' | a
# limit's label; event 'half_open' when this call moved the breaker there.
ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local member = ARGV[1]
local event = ''
local probe = 0
if ARGV[2] == '1' then
  local state = redis.call('HGET', KEYS[3], 'state')
  if state == 'open' then
    local reopen = tonumber(redis.call('HGET', KEYS[3], 'open_until') or '0')
    if now < reopen then return {'open', reopen - now, event, 0} end
    redis.call('HSET', KEYS[3], 'state', 'half_open', 'successes', '0')
    redis.call('DEL', KEYS[4])
    state = 'half_open'
    event = 'half_open'
  end
  if state == 'half_open' then
    redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
    if redis.call('ZCARD', KEYS[4]) >= tonumber(ARGV[3]) then
      return {'probing', tonumber(ARGV[5]), event, 0}
    end
    probe = 1
  end
end
local code = 'ok'
local go = now
local blocked = tonumber(redis.call('GET', KEYS[2]) or '0')
if blocked > go then
  go = blocked
  code = 'blocked'
end
local ticket = redis.call('EXISTS', KEYS[1]) == 1
local limits = (#KEYS - 4) / 2
local denied = {}
local longest = 0
for k = 0, limits - 1 do
  local log, nxt = KEYS[5 + 2 * k], KEYS[6 + 2 * k]
  local max, per = tonumber(ARGV[8 + 3 * k]), tonumber(ARGV[9 + 3 * k])
  if per > longest then longest = per end
  redis.call('ZREMRANGEBYSCORE', log, '-inf', now - per)
  local n = redis.call('ZCARD', log)
  if n >= max then
    local oldest = redis.call('ZRANGE', log, n - max, n - max, 'WITHSCORES')
    local free = tonumber(oldest[2]) + per
    if not ticket then
      local turn = tonumber(redis.call('GET', nxt) or '0')
      if turn > free then free = turn end
    end
    denied[#denied + 1] = k
    if free > go then
      go = free
      code = ARGV[7 + 3 * k]
    end
  end
end
if go > now then
  if #denied > 0 then
    if not ticket then
      for _, k in ipairs(denied) do
        local max, per = tonumber(ARGV[8 + 3 * k]), tonumber(ARGV[9 + 3 * k])
        redis.call('SET', KEYS[6 + 2 * k], string.format('%.3f', go + per / max),
          'PX', math.ceil(go - now + per))
      end
    end
    redis.call('SET', KEYS[1], '1', 'PX', math.ceil(go - now) + longest + tonumber(ARGV[6]))
  end
  return {code, math.ceil(go - now), event, 0}
end
local stamp = t[1] .. t[2] .. ':' .. member
for k = 0, limits - 1 do
  local log = KEYS[5 + 2 * k]
  redis.call('ZADD', log, now, stamp)
  redis.call('PEXPIRE', log, tonumber(ARGV[9 + 3 * k]))
end
if ticket then redis.call('DEL', KEYS[1]) end
if probe == 1 then
  local lease = tonumber(ARGV[4])
  redis.call('ZADD', KEYS[4], now + lease, member)
  redis.call('PEXPIRE', KEYS[4], lease)
end
return {'ok', 0, event, probe}
"""

# The outcome of a call the breaker let through. Closed: a failure is logged in the window,
# and the threshold-th one opens the breaker. Half-open: only probes decide — a failure
# opens it again, the ``probes``-th success closes it. A call that started before the
# breaker opened (or a verdict-less 'release') changes nothing but its probe slot.
#
# KEYS: 1 breaker, 2 failures, 3 probes
# ARGV: 1 verdict ('ok' | 'fail' | 'release'), 2 member, 3 was a probe ('1' / '0'),
#       4 failure threshold, 5 window ms, 6 open ms, 7 half-open probes, 8 state ttl ms
# Returns {state after, event ('' | 'opened' | 'closed'), failures in the window}.
RECORD = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state = redis.call('HGET', KEYS[1], 'state') or 'closed'
local probe = ARGV[3] == '1'
if probe then redis.call('ZREM', KEYS[3], ARGV[2]) end
local verdict = ARGV[1]
local function open(failures)
  redis.call('HSET', KEYS[1], 'state', 'open', 'open_until', now + tonumber(ARGV[6]),
    'opened_at', now)
  redis.call('HDEL', KEYS[1], 'successes')
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[8]))
  redis.call('DEL', KEYS[2], KEYS[3])
  return {'open', 'opened', failures}
end
if verdict == 'release' then return {state, '', 0} end
if state == 'half_open' then
  if not probe then return {state, '', 0} end
  if verdict == 'fail' then return open(1) end
  local ok = redis.call('HINCRBY', KEYS[1], 'successes', 1)
  if ok >= tonumber(ARGV[7]) then
    redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
    return {'closed', 'closed', 0}
  end
  return {state, '', 0}
end
if state ~= 'closed' or verdict ~= 'fail' then return {state, '', 0} end
local window = tonumber(ARGV[5])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - window)
redis.call('ZADD', KEYS[2], now, t[1] .. t[2] .. ':' .. ARGV[2])
redis.call('PEXPIRE', KEYS[2], window)
local n = redis.call('ZCARD', KEYS[2])
if n >= tonumber(ARGV[4]) then return open(n) end
return {'closed', '', n}
"""

# Hold a node type back (``ctx.rate_limit``) until now + ms, unless it is held longer
# already, and tell every process. KEYS: 1 blocked, 2 channel; ARGV: 1 ms, 2 node type.
# Returns the ms it is now held back for.
BLOCK = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ms = math.ceil(tonumber(ARGV[1]))
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if current >= now + ms then return current - now end
redis.call('SET', KEYS[1], now + ms, 'PX', ms)
redis.call('PUBLISH', KEYS[2], ms .. ' ' .. ARGV[2])
return ms
"""
