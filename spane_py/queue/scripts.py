"""Lua scripts that keep each queue operation to one Redis round trip.

Layout (``P`` is the engine's key prefix; job records in arq's layout, so arq's ``Job``
can read a job's record and status):

* ``arq:job:<id>`` — the job record (arq's encoding), deleted when the job is done;
* ``P:queue`` — pending jobs only, scored by priority band + arrival time (lowest first);
* ``P:scheduled`` — deferred jobs (start delays, retry backoff) scored by due time;
  ``P:bands`` keeps each one's priority band until it is promoted to the queue;
* ``P:running`` — claimed jobs, scored by the deadline of their lease; a claim moves a
  job here from the queue in the same script, so claiming never looks at running jobs;
* ``arq:in-progress:<id>`` — set while a job runs, to its owner's token (the worker's id,
  ``|solo`` appended for a suspect running alone): finishing, renewing and rescheduling
  only act for the owner, so a worker that lost its lease cannot touch the job again;
* ``P:suspects`` — jobs whose worker was lost while they ran (their lease ran out), in the
  order they were found; a suspect is claimed only by a worker with nothing else running,
  which then runs it alone; ``P:lost`` counts, per job, the workers lost during such solo
  runs; ``P:drain`` names the busy worker that stopped claiming to run the next suspect;
* ``P:wake`` — a list idle workers block on; enqueues push tokens to it.

Every command that takes many keys or members is sent once per script call for all of
them (``MSET``, ``MGET``, ``ZADD``, ``DEL`` with many arguments), in chunks of at most
``CHUNK`` (Lua's stack limit): the Redis work per job is a few hash-table operations.
"""

from __future__ import annotations

CHUNK = 6000

# Helpers shared by the scripts. Scores go to Redis as integer text: Lua would otherwise
# format a number with 14 significant digits, and band + milliseconds needs 15.
_COMMON = f"""
local function num(x) return string.format('%.0f', x) end
-- Leases run on the Redis clock, so workers on hosts with skewed clocks agree on them.
local function clock()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function each_chunk(args, f)
  local n = #args
  local i = 1
  while i <= n do
    local j = math.min(i + {CHUNK - 1}, n)
    f(i, j)
    i = j + 1
  end
end
local function bulk(cmd, key, args)
  each_chunk(args, function(i, j) redis.call(cmd, key, unpack(args, i, j)) end)
end
local function bulk_keys(cmd, args)
  each_chunk(args, function(i, j) redis.call(cmd, unpack(args, i, j)) end)
end
local function mget(keys)
  local out = {{}}
  each_chunk(keys, function(i, j)
    local got = redis.call('MGET', unpack(keys, i, j))
    for k = 1, j - i + 1 do out[i + k - 1] = got[k] end
  end)
  return out
end
local function wake(key, n, cap)
  if n > 0 then
    local tokens = {{}}
    for k = 1, math.min(n, cap) do tokens[k] = '1' end
    redis.call('LPUSH', key, unpack(tokens))
    redis.call('LTRIM', key, 0, cap - 1)
  end
end
"""

# KEYS: queue, scheduled, bands, wake
# ARGV: job_prefix, now_ms, wake_cap, then 5 per job: id, value, ttl_ms, due_ms (0 = now),
# priority band. A job whose record exists (queued, running, scheduled) is left alone.
ENQUEUE = (
    _COMMON
    + """
local jp = ARGV[1]
local now = tonumber(ARGV[2])
local ready, later, bands = {}, {}, {}
local added = 0
for i = 4, #ARGV, 5 do
  local id = ARGV[i]
  if redis.call('SET', jp .. id, ARGV[i + 1], 'NX', 'PX', ARGV[i + 2]) then
    if tonumber(ARGV[i + 3]) > now then
      later[#later + 1] = ARGV[i + 3]
      later[#later + 1] = id
      bands[#bands + 1] = id
      bands[#bands + 1] = ARGV[i + 4]
    else
      ready[#ready + 1] = num(tonumber(ARGV[i + 4]) + now)
      ready[#ready + 1] = id
    end
    added = added + 1
  end
end
bulk('ZADD', KEYS[1], ready)
bulk('ZADD', KEYS[2], later)
bulk('HSET', KEYS[3], bands)
wake(KEYS[4], added, tonumber(ARGV[3]))
return added
"""
)

# KEYS: queue, scheduled, bands, running, suspects, lost, drain
# ARGV: in_progress_prefix, job_prefix, now_ms, want, lease_ms, worker, idle ('1': the
# worker runs nothing), draining ('1': the worker's last claim told it to drain)
#
# 1. scheduled jobs now due move to the queue; 2. jobs whose lease ran out become suspects
# (a loss counted for those that ran alone); 3. an idle worker takes one suspect (alone); a
# busy one, while suspects wait, may be chosen to drain: it claims nothing more, so that it
# becomes idle and takes the next suspect; 4. otherwise up to ``want`` jobs, lowest score
# first, move to the running set with their lease, and their records are read.
# Returns {jobs: {id, score, record or false, lost, solo, ...}, next due or '', drain,
# reaped}.
CLAIM = (
    _COMMON
    + """
local ip, jp = ARGV[1], ARGV[2]
local now = tonumber(ARGV[3])
local want = tonumber(ARGV[4])
local lease = ARGV[5]
local rnow = clock()
local deadline = num(rnow + tonumber(lease))
local worker = ARGV[6]

local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[3], 'LIMIT', 0, 1000)
if #due > 0 then
  local bands = redis.call('HMGET', KEYS[3], unpack(due))
  local z = {}
  for i, id in ipairs(due) do
    z[#z + 1] = num((tonumber(bands[i]) or 0) + now)
    z[#z + 1] = id
  end
  redis.call('ZADD', KEYS[1], unpack(z))
  redis.call('ZREM', KEYS[2], unpack(due))
  redis.call('HDEL', KEYS[3], unpack(due))
end

local expired = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', rnow, 'LIMIT', 0, 1000)
if #expired > 0 then
  local keys, z = {}, {}
  for i, id in ipairs(expired) do
    keys[i] = ip .. id
    z[#z + 1] = num(rnow)
    z[#z + 1] = id
  end
  local owners = redis.call('MGET', unpack(keys))
  for i, id in ipairs(expired) do
    local owner = owners[i]
    if owner and string.sub(owner, -5) == '|solo' then
      redis.call('HINCRBY', KEYS[6], id, 1)
    end
  end
  redis.call('ZREM', KEYS[4], unpack(expired))
  redis.call('DEL', unpack(keys))
  redis.call('ZADD', KEYS[5], 'NX', unpack(z))
end

local claimed = {}
local drain = 0
local nxt
if redis.call('EXISTS', KEYS[5]) == 1 then
  if ARGV[7] == '1' and want > 0 then
    local s = redis.call('ZPOPMIN', KEYS[5])
    local id = s[1]
    redis.call('SET', ip .. id, worker .. '|solo')
    redis.call('ZADD', KEYS[4], deadline, id)
    claimed = {id, s[2], redis.call('GET', jp .. id), redis.call('HGET', KEYS[6], id) or 0, 1}
    want = 0
    if redis.call('GET', KEYS[7]) == worker then redis.call('DEL', KEYS[7]) end
  elseif ARGV[7] ~= '1' then
    local holder = redis.call('GET', KEYS[7])
    if holder == worker then
      redis.call('PEXPIRE', KEYS[7], lease)
      drain = 1
    elseif not holder then
      redis.call('SET', KEYS[7], worker, 'PX', lease)
      drain = 1
    end
    if drain == 1 then want = 0 end
  end
elseif ARGV[8] == '1' and redis.call('GET', KEYS[7]) == worker then
  redis.call('DEL', KEYS[7])
end

if want > 0 then
  local popped = redis.call('ZPOPMIN', KEYS[1], want)
  if #popped > 0 then
    local owned, running, records = {}, {}, {}
    for i = 1, #popped, 2 do
      local id = popped[i]
      owned[#owned + 1] = ip .. id
      owned[#owned + 1] = worker
      running[#running + 1] = deadline
      running[#running + 1] = id
      records[#records + 1] = jp .. id
    end
    redis.call('MSET', unpack(owned))
    redis.call('ZADD', KEYS[4], unpack(running))
    local data = redis.call('MGET', unpack(records))
    for i = 1, #popped, 2 do
      local k = (i + 1) / 2
      claimed[#claimed + 1] = popped[i]
      claimed[#claimed + 1] = popped[i + 1]
      claimed[#claimed + 1] = data[k]
      claimed[#claimed + 1] = 0
      claimed[#claimed + 1] = 0
    end
  end
end

nxt = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
return {claimed, nxt[2] or '', drain, #expired}
"""
)

# Extend the leases of a worker's running jobs, one call for all of them; a job it no
# longer owns (its lease ran out and it was put back) is left alone and returned.
# KEYS: running, drain. ARGV: in_progress_prefix, lease_ms, worker, then 2 per job: id,
# token.
RENEW = (
    _COMMON
    + """
local ip = ARGV[1]
local deadline = num(clock() + tonumber(ARGV[2]))
local keys, ids, tokens = {}, {}, {}
for i = 4, #ARGV, 2 do
  ids[#ids + 1] = ARGV[i]
  tokens[#tokens + 1] = ARGV[i + 1]
  keys[#keys + 1] = ip .. ARGV[i]
end
local owners = mget(keys)
local z, gone = {}, {}
for k, id in ipairs(ids) do
  if owners[k] == tokens[k] then
    z[#z + 1] = deadline
    z[#z + 1] = id
  else
    gone[#gone + 1] = id
  end
end
each_chunk(z, function(i, j) redis.call('ZADD', KEYS[1], 'XX', unpack(z, i, j)) end)
if redis.call('GET', KEYS[2]) == ARGV[3] then redis.call('PEXPIRE', KEYS[2], ARGV[2]) end
return gone
"""
)

# End many deliveries at once; each only by its owner (the token its claim set).
# KEYS: queue, scheduled, bands, running, suspects, lost, wake
# ARGV: in_progress_prefix, job_prefix, wake_cap, then 6 per job: id, token, mode,
# a, b, c. Modes:
#   'done'     the job is over: its record goes;
#   'release'  back to the queue now (a: its score), or among the suspects for one that ran
#              alone (the shutdown that cut it off proves nothing);
#   'later'    to the scheduled set (a: due ms, b: band, c: the record's new ttl ms).
# A job that ended without its worker dying ('done', 'later') is no longer a suspect.
# Returns how many jobs were not owned by the token given (left alone).
SETTLE = (
    _COMMON
    + """
local ip, jp = ARGV[1], ARGV[2]
local rnow = num(clock())
local keys = {}
for i = 4, #ARGV, 6 do keys[#keys + 1] = ip .. ARGV[i] end
local owners = mget(keys)
local mine, drop, cleared, queued, suspects, later, bands = {}, {}, {}, {}, {}, {}, {}
local woken, foreign = 0, 0
local k = 0
for i = 4, #ARGV, 6 do
  k = k + 1
  local id, token, mode = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  if owners[k] == token then
    mine[#mine + 1] = id
    drop[#drop + 1] = keys[k]
    local solo = string.sub(token, -5) == '|solo'
    if mode == 'done' then
      drop[#drop + 1] = jp .. id
      if solo then cleared[#cleared + 1] = id end
    elseif mode == 'release' then
      if solo then
        suspects[#suspects + 1] = rnow
        suspects[#suspects + 1] = id
      else
        queued[#queued + 1] = ARGV[i + 3]
        queued[#queued + 1] = id
      end
      woken = woken + 1
    else
      later[#later + 1] = ARGV[i + 3]
      later[#later + 1] = id
      bands[#bands + 1] = id
      bands[#bands + 1] = ARGV[i + 4]
      redis.call('PEXPIRE', jp .. id, ARGV[i + 5])
      if solo then cleared[#cleared + 1] = id end
      woken = woken + 1
    end
  else
    foreign = foreign + 1
  end
end
bulk('ZREM', KEYS[4], mine)
bulk_keys('DEL', drop)
bulk('HDEL', KEYS[6], cleared)
bulk('ZADD', KEYS[1], queued)
bulk('ZADD', KEYS[5], suspects)
bulk('ZADD', KEYS[2], later)
bulk('HSET', KEYS[3], bands)
wake(KEYS[7], woken, tonumber(ARGV[3]))
return foreign
"""
)

# Take jobs that have not started out of the queue (a settled execution's deadline job).
# KEYS: queue, scheduled, bands, suspects. ARGV: job_prefix, then the ids.
REMOVE = """
for i = 2, #ARGV do
  local id = ARGV[i]
  redis.call('ZREM', KEYS[1], id)
  redis.call('ZREM', KEYS[2], id)
  redis.call('HDEL', KEYS[3], id)
  redis.call('ZREM', KEYS[4], id)
  redis.call('DEL', ARGV[1] .. id)
end
return #ARGV - 1
"""

# Announce settled executions (batched). KEYS: channel; ARGV: execution ids.
PUBLISH = """
for i = 1, #ARGV do redis.call('PUBLISH', KEYS[1], ARGV[i]) end
return #ARGV
"""
