"""The claim, in Lua: a part of every queue script's prelude (``scripts.py``), which defines
what it uses (``lane``, ``num``, ``clock``, ``bulk``, ``mget``, the keys)."""

from __future__ import annotations

CLAIM = """
-- Due scheduled jobs move to the queues of their lanes (whoever claims: the scheduled set
-- is shared), numbered as arrivals in the order they were due. An entry of BANDS without a
-- lane (written before lanes) is the default lane's.
local function promote()
  local due = redis.call('ZRANGEBYSCORE', SCHED, '-inf', NOW, 'LIMIT', 0, 1000)
  local n = #due
  if n == 0 then return end
  local bands = redis.call('HMGET', BANDS, unpack(due))
  local first = redis.call('INCRBY', SEQ, n) - n
  local per, order = {}, {}
  for i, id in ipairs(due) do
    local band, name = bands[i], DEFAULT
    if band then
      local c = string.find(band, ':', 1, true)
      if c then band, name = string.sub(band, 1, c - 1), string.sub(band, c + 1) end
    end
    local l = lane(name)
    local z = per[l]
    if not z then
      z = {}
      per[l] = z
      order[#order + 1] = l
    end
    z[#z + 1] = num((tonumber(band) or 0) + first + i)
    z[#z + 1] = id
  end
  for _, l in ipairs(order) do
    redis.call('ZADD', l.q, unpack(per[l]))
    l.readied = l.readied + #per[l] / 2
  end
  redis.call('ZREM', SCHED, unpack(due))
  redis.call('HDEL', BANDS, unpack(due))
end

-- Jobs of lane ``l`` whose lease ran out become its suspects (a loss counted for those
-- that ran alone); how many.
local function reap(l, rnow)
  local expired = redis.call('ZRANGEBYSCORE', l.run, '-inf', rnow, 'LIMIT', 0, 1000)
  if #expired == 0 then return 0 end
  local keys, z = {}, {}
  for i, id in ipairs(expired) do
    keys[i] = IP .. id
    z[#z + 1] = rnow
    z[#z + 1] = id
  end
  local owners = redis.call('MGET', unpack(keys))
  for i, id in ipairs(expired) do
    local owner = owners[i]
    if owner and string.sub(owner, -5) == '|solo' then
      redis.call('HINCRBY', LOST, id, 1)
    end
  end
  redis.call('ZREM', l.run, unpack(expired))
  redis.call('DEL', unpack(keys))
  redis.call('ZADD', l.sus, 'NX', unpack(z))
  redis.call('SADD', AGAIN, unpack(expired))
  return #expired
end

-- Up to ``want`` pending jobs of the lanes ``mine``, lowest score first across them, taken
-- out of their queues: their ids, and the index in ``mine`` of each one's lane (nil when
-- ``mine`` is one lane: it costs what a single queue did). Each lane is read ahead by its
-- share of ``want`` (with scores: what a merge across lanes costs), and further only when
-- the merge has used that up.
local function take(mine, want)
  if #mine == 1 then
    local l = mine[1]
    local popped = redis.call('ZRANGE', l.q, 0, want - 1)
    if #popped > 0 then redis.call('ZREMRANGEBYRANK', l.q, 0, #popped - 1) end
    l.readied = l.readied - #popped
    return popped, nil
  end
  local ahead = math.min(want, math.ceil(want / #mine) + 1)
  local heads, scores, at, read, more = {}, {}, {}, {}, {}
  for k, l in ipairs(mine) do
    heads[k] = redis.call('ZRANGE', l.q, 0, ahead - 1, 'WITHSCORES')
    read[k] = #heads[k] / 2
    more[k] = read[k] == ahead  -- the lane may hold more than was read
    scores[k] = tonumber(heads[k][2])
    at[k] = 1
  end
  -- Runs: the lane with the lowest next score gives jobs while they come before the next
  -- job of every other lane (at least one: a tie goes to the lane listed first).
  local popped, from = {}, {}
  local n = 0
  while n < want do
    local best, low, other
    for k = 1, #mine do
      local s = scores[k]
      if s then
        if not best or s < low then
          best, low, other = k, s, low
        elseif not other or s < other then
          other = s
        end
      end
    end
    if not best then break end
    local h, a, s = heads[best], at[best], nil
    repeat
      n = n + 1
      popped[n] = h[2 * a - 1]
      from[n] = best
      a = a + 1
      if a > read[best] and more[best] and n < want then
        local need, r = want - n, read[best]
        local got = redis.call('ZRANGE', mine[best].q, r, r + need - 1, 'WITHSCORES')
        for i = 1, #got do h[2 * r + i] = got[i] end
        read[best] = r + #got / 2
        more[best] = #got / 2 == need
      end
      s = tonumber(h[2 * a])
    until n >= want or not s or (other and s >= other)
    at[best], scores[best] = a, s
  end
  for k, l in ipairs(mine) do
    local taken = at[k] - 1
    if taken > 0 then
      redis.call('ZREMRANGEBYRANK', l.q, 0, taken - 1)
      l.readied = l.readied - taken
    end
  end
  return popped, from
end

-- Claim for ``worker`` from its lanes ``mine`` (``idle``: it runs nothing; ``draining``:
-- its last claim told it to drain). 1. scheduled jobs now due move to their lanes; 2. jobs
-- of its lanes whose lease ran out become suspects; 3. an idle worker takes one suspect of
-- its lanes (alone); a busy one, while suspects of its lanes wait, may be chosen to drain
-- (per lane: one worker at a time): it claims nothing more, so that it becomes idle and
-- takes the next suspect; 4. otherwise up to ``want`` jobs of its lanes, lowest score
-- first, move to their lane's running set with their lease, and their records are read.
-- Returns {{id, record or false, flags, ...}, next due or '', drain, reaped, losses of the
-- one suspect claimed or -1, the control epoch}; a job's flags: 1 if it was delivered
-- before, plus twice the index (from 0) of its lane in ``mine``.
local function claim(worker, want, lease, idle, draining, mine)
  local rnow = clock()
  local deadline = num(rnow + tonumber(lease))

  promote()
  local reaped = 0
  for _, l in ipairs(mine) do reaped = reaped + reap(l, rnow) end

  local claimed = {}
  local drain, solo_lost = 0, -1
  local waiting, has = {}, {}
  if #mine == 1 then
    if redis.call('EXISTS', mine[1].sus) == 1 then waiting, has = {1}, {true} end
  else
    local sus = {}
    for k, l in ipairs(mine) do sus[k] = l.sus end
    if redis.call('EXISTS', unpack(sus)) > 0 then  -- one look for all, usually
      for k, l in ipairs(mine) do
        if redis.call('EXISTS', l.sus) == 1 then
          waiting[#waiting + 1] = k
          has[k] = true
        end
      end
    end
  end
  if #waiting > 0 then
    if idle and want > 0 then
      local k = waiting[1]
      if #waiting > 1 then  -- the suspect found first, across the lanes
        local first
        for _, w in ipairs(waiting) do
          local s = tonumber(redis.call('ZRANGE', mine[w].sus, 0, 0, 'WITHSCORES')[2])
          if not first or s < first then first, k = s, w end
        end
      end
      local l = mine[k]
      local id = redis.call('ZPOPMIN', l.sus)[1]
      redis.call('SET', IP .. id, worker .. '|solo')
      redis.call('ZADD', l.run, deadline, id, '+inf', SENTINEL)
      claimed = {id, redis.call('GET', JP .. id), 1 + 2 * (k - 1)}
      solo_lost = tonumber(redis.call('HGET', LOST, id) or '0')
      want = 0
      for _, m in ipairs(mine) do
        if redis.call('GET', m.drain) == worker then redis.call('DEL', m.drain) end
      end
    elseif not idle then
      for _, w in ipairs(waiting) do
        local key = mine[w].drain
        local holder = redis.call('GET', key)
        if holder == worker then
          redis.call('PEXPIRE', key, lease)
          drain = 1
        elseif not holder then
          redis.call('SET', key, worker, 'PX', lease)
          drain = 1
        end
      end
      if drain == 1 then want = 0 end
    end
  end
  if draining and #waiting < #mine then
    for k, l in ipairs(mine) do  -- its turns in lanes whose suspects are gone
      if not has[k] and redis.call('GET', l.drain) == worker then redis.call('DEL', l.drain) end
    end
  end

  if want > 0 then
    local popped, from = take(mine, want)
    local n = #popped
    if n > 0 then
      local owned, records = {}, {}
      for k = 1, n do
        owned[2 * k - 1] = IP .. popped[k]
        owned[2 * k] = worker
        records[k] = JP .. popped[k]
      end
      bulk('MSET', false, owned, 2 * n)
      if not from then
        local running = {}
        for k = 1, n do
          running[2 * k - 1] = deadline
          running[2 * k] = popped[k]
        end
        running[2 * n + 1] = '+inf'
        running[2 * n + 2] = SENTINEL
        bulk('ZADD', mine[1].run, running, 2 * n + 2)
      else
        local per = {}
        for k = 1, n do
          local z = per[from[k]]
          if not z then
            z = {'+inf', SENTINEL}
            per[from[k]] = z
          end
          z[#z + 1] = deadline
          z[#z + 1] = popped[k]
        end
        for k, z in pairs(per) do bulk('ZADD', mine[k].run, z) end
      end
      local data = mget(records, n)
      -- (SISMEMBER each, only when the set has members: SMISMEMBER needs Redis 6.2.)
      local any_again = redis.call('SCARD', AGAIN) > 0
      for k = 1, n do
        local flags = any_again and redis.call('SISMEMBER', AGAIN, popped[k]) or 0
        if from then flags = flags + 2 * (from[k] - 1) end
        claimed[3 * k - 2] = popped[k]
        claimed[3 * k - 1] = data[k]
        claimed[3 * k] = flags
      end
    end
  end

  local nxt = redis.call('ZRANGE', SCHED, 0, 0, 'WITHSCORES')
  return {claimed, nxt[2] or '', drain, reaped, solo_lost, redis.call('GET', EPOCH) or '0'}
end
"""
