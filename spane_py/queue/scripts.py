"""The Lua scripts of the queue: each operation is one Redis round trip, and what the jobs
of one event-loop tick ask (enqueue children, end deliveries, claim more, announce settled
executions) is one script call (``TICK``).

Layout (``P`` is the engine's key prefix; job records in arq's layout, so arq's ``Job``
can read a job's record and status):

* ``arq:job:<id>`` — the job record (arq's encoding), deleted when the job is done (or
  taken out of the queue): records have no time to live, nothing is dropped behind the
  engine's back;
* ``P:queue`` — pending jobs only, scored by priority band + arrival number (``P:seq``
  counts arrivals), lowest first;
* ``P:scheduled`` — deferred jobs (start delays, retry backoff) scored by due time;
  ``P:bands`` keeps each one's priority band until it is promoted to the queue;
* ``P:running`` — claimed jobs, scored by the deadline of their lease (on the Redis
  clock); a claim moves a job here from the queue in the same script, so claiming never
  looks at running jobs;
* ``arq:in-progress:<id>`` — set while a job runs, to its owner's token (the worker's id,
  ``|solo`` appended for a suspect running alone): finishing, renewing and rescheduling
  only act for the owner, so a worker that lost its lease cannot touch the job again;
* ``P:suspects`` — jobs whose worker was lost while they ran (their lease ran out), in the
  order they were found; a suspect is claimed only by a worker with nothing else running,
  which then runs it alone; ``P:lost`` counts, per job, the workers lost during such solo
  runs; ``P:drain`` names the busy worker that stopped claiming to run the next suspect;
* ``P:wake`` — a list idle workers block on; a script that leaves jobs pending pushes
  tokens to it;
* ``P:again`` — jobs delivered before (rescheduled, released, or lost with their worker)
  and not done yet: a claim says of each job whether it is a member;
* ``P:epoch`` — counts control actions (pause, cancel, timeout); each claim answers it, so
  a worker knows whether what it learned of executions before the claim may be out of date.

Every command that takes many keys or members is sent once per script call for all of
them (``MSET``, ``MGET``, ``ZADD``, ``DEL`` with many arguments), in chunks of at most
``CHUNK`` arguments (Lua's stack limit).

Every script takes the same ``KEYS`` (``QueueKeys.script_keys``) and starts its ``ARGV``
with the same four values: the in-progress key prefix, the job key prefix, the client's
time (ms; scores of new jobs) and the cap on wake tokens.
"""

from __future__ import annotations

CHUNK = 6000
# A member of the running set that is never claimed, renewed or reaped (its score is +inf):
# longer than Redis's compact-encoding limit for sorted-set members (64 bytes), it keeps the
# set in its skiplist encoding. Compact sets cost O(n) per insert and delete, several times
# a skiplist's at the sizes of a running set (tens to hundreds of jobs).
SENTINEL = "~spane:running-set:" + "~" * 56

_PRELUDE = """
local IP, JP, NOW, CAP = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local Q, SCHED, BANDS, RUN, SUS, LOST, DRAIN, WAKE, SETTLED, SEQ, EPOCH, AGAIN =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10],
  KEYS[11], KEYS[12]
local CHUNK = @CHUNK@
local SENTINEL = '@SENTINEL@'
-- Jobs made claimable, and jobs deferred, by this call: idle workers are woken for them.
local readied, deferred = 0, 0

-- Scores go to Redis as integer text: Lua would format a number with 14 significant
-- digits, and band + arrival number needs 15.
local function num(x) return string.format('%.0f', x) end

-- Queue scores: priority band + arrival number, so jobs of one priority are taken in the
-- order they became claimable (even within a millisecond). ``z`` holds band, id pairs of
-- ``n`` jobs; their bands become scores.
local function number_arrivals(z, n)
  if n == 0 then return end
  local first = redis.call('INCRBY', SEQ, n) - n
  for k = 1, n do z[2 * k - 1] = num(z[2 * k - 1] + first + k) end
end

-- Leases run on the Redis clock, so workers on hosts with skewed clocks agree on them.
local function clock()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- One command for many arguments, in chunks Lua's stack can hold; ``n``: how many of
-- ``args`` (nil: all). ``key`` false: the arguments are keys (DEL, MSET).
local function bulk(cmd, key, args, n)
  n = n or #args
  local i = 1
  while i <= n do
    local j = math.min(i + CHUNK - 1, n)
    if key then
      redis.call(cmd, key, unpack(args, i, j))
    else
      redis.call(cmd, unpack(args, i, j))
    end
    i = j + 1
  end
end
local function mget(keys, n)
  if n <= CHUNK then return redis.call('MGET', unpack(keys, 1, n)) end
  local out = {}
  local i = 1
  while i <= n do
    local j = math.min(i + CHUNK - 1, n)
    local got = redis.call('MGET', unpack(keys, i, j))
    for k = 1, j - i + 1 do out[i + k - 1] = got[k] end
    i = j + 1
  end
  return out
end

-- Enqueue. ARGV[from..to]: groups of count, due ms (0 = now), priority band, then id and
-- record of each job. A job whose record exists (queued, scheduled, running) is left
-- alone. Usually every job is new: one MSETNX writes all the records; else each is tried
-- alone. Returns how many were added.
local function enqueue(from, to)
  local records, nr = {}, 0
  local i = from
  while i <= to do
    local n = tonumber(ARGV[i])
    for j = i + 3, i + 2 + 2 * n, 2 do
      records[nr + 1] = JP .. ARGV[j]
      records[nr + 2] = ARGV[j + 1]
      nr = nr + 2
    end
    i = i + 3 + 2 * n
  end
  if nr == 0 then return 0 end
  local all_new = nr <= CHUNK and redis.call('MSETNX', unpack(records, 1, nr)) == 1
  local ready, later, bands = {}, {}, {}
  local nq, nl = 0, 0
  local added, r = 0, 0
  i = from
  while i <= to do
    local n, due, band = tonumber(ARGV[i]), ARGV[i + 1], ARGV[i + 2]
    local is_later = tonumber(due) > NOW
    local bandn = tonumber(band)
    for j = i + 3, i + 2 + 2 * n, 2 do
      r = r + 2
      if all_new or redis.call('SET', records[r - 1], records[r], 'NX') then
        local id = ARGV[j]
        if is_later then
          later[nl + 1] = due
          later[nl + 2] = id
          bands[nl + 1] = id
          bands[nl + 2] = band
          nl = nl + 2
        else
          ready[nq + 1] = bandn
          ready[nq + 2] = id
          nq = nq + 2
        end
        added = added + 1
      end
    end
    i = i + 3 + 2 * n
  end
  if nq > 0 then
    number_arrivals(ready, nq / 2)
    bulk('ZADD', Q, ready, nq)
  end
  if nl > 0 then
    bulk('ZADD', SCHED, later, nl)
    bulk('HSET', BANDS, bands, nl)
  end
  readied = readied + nq / 2
  deferred = deferred + nl / 2
  return added
end

-- End deliveries, each only by its owner. ARGV[from..to]: groups of a mode, the token of
-- the jobs' owner, the count of values, then the values: per job its id and the mode's
-- own values:
--   'd'  done: the job is over, its record goes;
--   'r'  release: back to the queue now, first in line (it was under way), or among the
--        suspects for one that ran alone (the shutdown that cut it off proves nothing);
--   'l'  later, due ms, band: to the scheduled set.
-- In capitals for jobs that ran alone (suspects). A job that ended without its worker
-- dying ('d', 'l') is no longer a suspect. Returns how many jobs were not owned by the
-- token given (left alone).
local STRIDE = {d = 1, D = 1, r = 1, R = 1, l = 3, L = 3}
local function settle(from, to)
  local keys, tokens, modes, at = {}, {}, {}, {}
  local n = 0
  local g = from
  while g <= to do
    local mode, token, count = ARGV[g], ARGV[g + 1], tonumber(ARGV[g + 2])
    for j = g + 3, g + 2 + count, STRIDE[mode] do
      n = n + 1
      keys[n] = IP .. ARGV[j]
      tokens[n] = token
      modes[n] = mode
      at[n] = j
    end
    g = g + 3 + count
  end
  if n == 0 then return 0 end
  local owners = mget(keys, n)
  local mine, drop, cleared, queued, suspects, later, bands = {}, {}, {}, {}, {}, {}, {}
  local nm, nd, nc, nq, ns, nl = 0, 0, 0, 0, 0, 0
  local over, again, no, na = {}, {}, 0, 0
  local foreign = 0
  local rnow
  for k = 1, n do
    if owners[k] == tokens[k] then
      local mode, j = modes[k], at[k]
      local id = ARGV[j]
      nm = nm + 1
      mine[nm] = id
      nd = nd + 1
      drop[nd] = keys[k]
      if mode == 'd' or mode == 'D' then
        nd = nd + 1
        drop[nd] = JP .. id
        no = no + 1
        over[no] = id
        if mode == 'D' then
          nc = nc + 1
          cleared[nc] = id
        end
      elseif mode == 'r' then
        na = na + 1
        again[na] = id
        queued[nq + 1] = 0
        queued[nq + 2] = id
        nq = nq + 2
      elseif mode == 'R' then
        na = na + 1
        again[na] = id
        rnow = rnow or num(clock())
        suspects[ns + 1] = rnow
        suspects[ns + 2] = id
        ns = ns + 2
      else
        na = na + 1
        again[na] = id
        later[nl + 1] = ARGV[j + 1]
        later[nl + 2] = id
        bands[nl + 1] = id
        bands[nl + 2] = ARGV[j + 2]
        nl = nl + 2
        if mode == 'L' then
          nc = nc + 1
          cleared[nc] = id
        end
      end
    else
      foreign = foreign + 1
    end
  end
  if nm > 0 then
    bulk('ZREM', RUN, mine, nm)
    bulk('DEL', false, drop, nd)
  end
  if nc > 0 then bulk('HDEL', LOST, cleared, nc) end
  if no > 0 then bulk('SREM', AGAIN, over, no) end
  if na > 0 then bulk('SADD', AGAIN, again, na) end
  if nq > 0 then bulk('ZADD', Q, queued, nq) end
  if ns > 0 then bulk('ZADD', SUS, suspects, ns) end
  if nl > 0 then
    bulk('ZADD', SCHED, later, nl)
    bulk('HSET', BANDS, bands, nl)
  end
  readied = readied + (nq + ns) / 2
  deferred = deferred + nl / 2
  return foreign
end

-- Claim for ``worker`` (``idle``: it runs nothing; ``draining``: its last claim told it to
-- drain). 1. scheduled jobs now due move to the queue; 2. jobs whose lease ran out become
-- suspects (a loss counted for those that ran alone); 3. an idle worker takes one suspect
-- (alone); a busy one, while suspects wait, may be chosen to drain: it claims nothing
-- more, so that it becomes idle and takes the next suspect; 4. otherwise up to ``want``
-- jobs, lowest score first, move to the running set with their lease, and their records
-- are read. Returns {{id, record or false, delivered before (1/0), ...}, next due or '',
-- drain, reaped, losses of the one suspect claimed or -1, the control epoch}.
local function claim(worker, want, lease, idle, draining)
  local rnow = clock()
  local deadline = num(rnow + tonumber(lease))

  local due = redis.call('ZRANGEBYSCORE', SCHED, '-inf', NOW, 'LIMIT', 0, 1000)
  if #due > 0 then
    local bands = redis.call('HMGET', BANDS, unpack(due))
    local z = {}
    for i, id in ipairs(due) do
      z[2 * i - 1] = tonumber(bands[i]) or 0
      z[2 * i] = id
    end
    number_arrivals(z, #due)
    redis.call('ZADD', Q, unpack(z))
    redis.call('ZREM', SCHED, unpack(due))
    redis.call('HDEL', BANDS, unpack(due))
  end

  local expired = redis.call('ZRANGEBYSCORE', RUN, '-inf', rnow, 'LIMIT', 0, 1000)
  if #expired > 0 then
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
    redis.call('ZREM', RUN, unpack(expired))
    redis.call('DEL', unpack(keys))
    redis.call('ZADD', SUS, 'NX', unpack(z))
    redis.call('SADD', AGAIN, unpack(expired))
  end

  local claimed = {}
  local drain, solo_lost = 0, -1
  if redis.call('EXISTS', SUS) == 1 then
    if idle and want > 0 then
      local s = redis.call('ZPOPMIN', SUS)
      local id = s[1]
      redis.call('SET', IP .. id, worker .. '|solo')
      redis.call('ZADD', RUN, deadline, id, '+inf', SENTINEL)
      claimed = {id, redis.call('GET', JP .. id), 1}
      solo_lost = tonumber(redis.call('HGET', LOST, id) or '0')
      want = 0
      if redis.call('GET', DRAIN) == worker then redis.call('DEL', DRAIN) end
    elseif not idle then
      local holder = redis.call('GET', DRAIN)
      if holder == worker then
        redis.call('PEXPIRE', DRAIN, lease)
        drain = 1
      elseif not holder then
        redis.call('SET', DRAIN, worker, 'PX', lease)
        drain = 1
      end
      if drain == 1 then want = 0 end
    end
  elseif draining and redis.call('GET', DRAIN) == worker then
    redis.call('DEL', DRAIN)
  end

  if want > 0 then
    local popped = redis.call('ZRANGE', Q, 0, want - 1)
    local n = #popped
    if n > 0 then
      redis.call('ZREMRANGEBYRANK', Q, 0, n - 1)
      local owned, running, records = {}, {}, {}
      for k = 1, n do
        local id = popped[k]
        owned[2 * k - 1] = IP .. id
        owned[2 * k] = worker
        running[2 * k - 1] = deadline
        running[2 * k] = id
        records[k] = JP .. id
      end
      running[2 * n + 1] = '+inf'
      running[2 * n + 2] = SENTINEL
      bulk('MSET', false, owned, 2 * n)
      bulk('ZADD', RUN, running, 2 * n + 2)
      local data = mget(records, n)
      -- (SISMEMBER each, only when the set has members: SMISMEMBER needs Redis 6.2.)
      local any_again = redis.call('SCARD', AGAIN) > 0
      for k = 1, n do
        claimed[3 * k - 2] = popped[k]
        claimed[3 * k - 1] = data[k]
        claimed[3 * k] = any_again and redis.call('SISMEMBER', AGAIN, popped[k]) or 0
      end
      readied = readied - n
    end
  end

  local nxt = redis.call('ZRANGE', SCHED, 0, 0, 'WITHSCORES')
  return {claimed, nxt[2] or '', drain, #expired, solo_lost, redis.call('GET', EPOCH) or '0'}
end

-- Wake idle workers: a token per job left pending by this call (and one per deferred
-- job, so that a waiting worker learns of an earlier due time), at most CAP.
local function wake_idle()
  local tokens = deferred
  if readied > 0 then
    tokens = tokens + math.min(readied, redis.call('ZCARD', Q) + redis.call('ZCARD', SUS))
  end
  if tokens > 0 then
    local t = {}
    for k = 1, math.min(tokens, CAP) do t[k] = '1' end
    redis.call('LPUSH', WAKE, unpack(t))
    redis.call('LTRIM', WAKE, 0, CAP - 1)
  end
end
"""

_PRELUDE = _PRELUDE.replace("@CHUNK@", str(CHUNK)).replace("@SENTINEL@", SENTINEL)

# ARGV[5..]: the enqueue groups (see ``enqueue``). Returns how many jobs were new.
ENQUEUE = (
    _PRELUDE
    + """
local added = enqueue(5, #ARGV)
wake_idle()
return added
"""
)

# ARGV[5..]: sections, each a tag, the count of its values, then its values: 'E' enqueue
# groups, 'S' ends of deliveries, 'C' claims (five values each: worker, want, lease ms,
# idle '1'/'0', draining '1'/'0'), 'P' ids of executions to announce as settled. Returns
# the claims' answers, in order.
TICK = (
    _PRELUDE
    + """
local answers = {}
local i = 5
while i <= #ARGV do
  local tag, n = ARGV[i], tonumber(ARGV[i + 1])
  local from, to = i + 2, i + 1 + n
  if tag == 'E' then
    enqueue(from, to)
  elseif tag == 'S' then
    settle(from, to)
  elseif tag == 'C' then
    for j = from, to, 5 do
      answers[#answers + 1] = claim(
        ARGV[j], tonumber(ARGV[j + 1]), ARGV[j + 2], ARGV[j + 3] == '1', ARGV[j + 4] == '1')
    end
  elseif tag == 'P' then
    for j = from, to do redis.call('PUBLISH', SETTLED, ARGV[j]) end
  end
  i = to + 1
end
wake_idle()
return answers
"""
)

# Extend the leases of a worker's running jobs, one call for all of them; a job it no
# longer owns (its lease ran out and it was put back) is left alone and returned.
# ARGV[5..]: lease ms, worker, then per job its id and token.
RENEW = (
    _PRELUDE
    + """
local deadline = num(clock() + tonumber(ARGV[5]))
local keys, ids, tokens = {}, {}, {}
for i = 7, #ARGV, 2 do
  ids[#ids + 1] = ARGV[i]
  tokens[#tokens + 1] = ARGV[i + 1]
  keys[#keys + 1] = IP .. ARGV[i]
end
local owners = mget(keys, #keys)
local z, gone = {}, {}
for k, id in ipairs(ids) do
  if owners[k] == tokens[k] then
    z[#z + 1] = deadline
    z[#z + 1] = id
  else
    gone[#gone + 1] = id
  end
end
local i = 1
while i <= #z do
  local j = math.min(i + CHUNK - 1, #z)
  redis.call('ZADD', RUN, 'XX', unpack(z, i, j))
  i = j + 1
end
if redis.call('GET', DRAIN) == ARGV[6] then redis.call('PEXPIRE', DRAIN, ARGV[5]) end
return gone
"""
)

# Take jobs that have not started out of the queue (a settled execution's deadline job).
# ARGV[5..]: the ids.
REMOVE = (
    _PRELUDE
    + """
local ids, records = {}, {}
for i = 5, #ARGV do
  ids[#ids + 1] = ARGV[i]
  records[#records + 1] = JP .. ARGV[i]
end
bulk('ZREM', Q, ids)
bulk('ZREM', SCHED, ids)
bulk('HDEL', BANDS, ids)
bulk('ZREM', SUS, ids)
bulk('DEL', false, records)
return #ids
"""
)
