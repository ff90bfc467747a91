"""The Lua scripts of the queue: each operation is one Redis round trip, and what the jobs
of one event-loop tick ask (enqueue children, end deliveries, claim more, announce settled
executions) is one script call (``TICK``).

Layout (``P`` is the engine's key prefix; job records in arq's layout, so arq's ``Job``
can read a job's record and status). Jobs wait in **lanes** (named queues): the default
lane's keys are ``P:queue``, ``P:running``, ``P:suspects``, ``P:drain``, ``P:wake``; lane
``x``'s are ``P:q:x:queue``, ``P:q:x:running``, and so on (``keys.py``; ``lane`` below):

* ``arq:job:<id>`` — the job record (arq's encoding), deleted when the job is done (or
  taken out of the queue): records have no time to live, nothing is dropped behind the
  engine's back;
* a lane's ``queue`` — its pending jobs only, scored by priority band + arrival number
  (``P:seq`` counts arrivals, one counter for every lane so scores compare across lanes),
  lowest first;
* ``P:scheduled`` — deferred jobs of every lane (start delays, retry backoff) scored by due
  time; ``P:bands`` keeps each one's priority band, then ``:<lane>`` unless it goes to the
  default lane, until it is promoted to its lane's queue;
* a lane's ``running`` — its claimed jobs, scored by the deadline of their lease (on the
  Redis clock); a claim moves a job here from the queue in the same script, so claiming
  never looks at running jobs;
* ``arq:in-progress:<id>`` — set while a job runs, to its owner's token (the worker's id,
  ``|solo`` appended for a suspect running alone): finishing, renewing and rescheduling
  only act for the owner, so a worker that lost its lease cannot touch the job again;
* a lane's ``suspects`` — its jobs whose worker was lost while they ran (their lease ran
  out), in the order they were found; a suspect is claimed only by a worker of its lane
  with nothing else running, which then runs it alone; ``P:lost`` counts, per job, the
  workers lost during such solo runs; a lane's ``drain`` names the busy worker that
  stopped claiming to run the lane's next suspect;
* a lane's ``wake`` — a list its idle workers block on; a script that leaves jobs of the
  lane pending pushes tokens to it;
* ``P:queues`` — the lanes other than the default one that jobs were ever sent to;
* ``P:again`` — jobs delivered before (rescheduled, released, or lost with their worker)
  and not done yet: a claim says of each job whether it is a member;
* ``P:epoch`` — counts control actions (pause, cancel, timeout); each claim answers it, so
  a worker knows whether what it learned of executions before the claim may be out of date.

Every command that takes many keys or members is sent once per script call for all of
them (``MSET``, ``MGET``, ``ZADD``, ``DEL`` with many arguments), in chunks of at most
``CHUNK`` arguments (Lua's stack limit).

Every script takes the same ``KEYS`` (``QueueKeys.script_keys``) and starts its ``ARGV``
with the same five values: the in-progress key prefix, the job key prefix, the client's
time (ms; scores of new jobs), the cap on wake tokens and the key prefix (for the keys of
lanes other than the default one: the scripts do not run on Redis Cluster).
"""

from __future__ import annotations

from spane_py.queue.jobs import DEFAULT_QUEUE
from spane_py.queue.lua_claim import CLAIM

CHUNK = 6000
# A member of each running set that is never claimed, renewed or reaped (its score is +inf):
# longer than Redis's compact-encoding limit for sorted-set members (64 bytes), it keeps the
# set in its skiplist encoding. Compact sets cost O(n) per insert and delete, several times
# a skiplist's at the sizes of a running set (tens to hundreds of jobs).
SENTINEL = "~spane:running-set:" + "~" * 56
# ARGV values every script starts with (see above); its own come after.
HEADER = 5

_PRELUDE = """
local IP, JP, NOW, CAP, P = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local Q, SCHED, BANDS, RUN, SUS, LOST, DRAIN, WAKE, SETTLED, SEQ, EPOCH, AGAIN, LANES =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10],
  KEYS[11], KEYS[12], KEYS[13]
local CHUNK = @CHUNK@
local SENTINEL = '@SENTINEL@'
local DEFAULT = '@DEFAULT@'

-- Lanes: the keys of each, built once per call. The default lane's are KEYS; lane x's are
-- P:q:x:queue, ... Each lane counts the jobs this call made claimable (readied) and those
-- it deferred: its idle workers are woken for them.
local lanes, touched = {}, {}
local function lane(name)
  local l = lanes[name]
  if l then return l end
  if name == DEFAULT then
    l = {name = name, q = Q, run = RUN, sus = SUS, drain = DRAIN, wake = WAKE}
  else
    local b = P .. ':q:' .. name .. ':'
    l = {name = name, q = b .. 'queue', run = b .. 'running', sus = b .. 'suspects',
         drain = b .. 'drain', wake = b .. 'wake'}
  end
  l.readied, l.deferred = 0, 0
  lanes[name] = l
  touched[#touched + 1] = l
  return l
end

-- Every lane: the default one, then those jobs were ever sent to.
local function all_lanes()
  local found = {lane(DEFAULT)}
  for _, name in ipairs(redis.call('SMEMBERS', LANES)) do found[#found + 1] = lane(name) end
  return found
end

-- A scheduled job's entry in BANDS: its band, and its lane unless it is the default.
local function band_of(band, l)
  if l.name == DEFAULT then return band end
  return band .. ':' .. l.name
end

-- Scores go to Redis as integer text: Lua would format a number with 14 significant
-- digits, and band + arrival number needs 15.
local function num(x) return string.format('%.0f', x) end

-- Queue scores: priority band + arrival number, so jobs of one priority are taken in the
-- order they became claimable (even within a millisecond), in every lane. ``z`` holds
-- band, id pairs of ``n`` jobs; their bands become scores.
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

-- Enqueue. ARGV[from..to]: groups of count, due ms (0 = now), priority band, lane, then id
-- and record of each job. A job whose record exists (queued, scheduled, running) is left
-- alone. Usually every job is new: one MSETNX writes all the records; else each is tried
-- alone. A lane other than the default one is listed in LANES. Returns how many were added.
local function enqueue(from, to)
  local records, nr = {}, 0
  local i = from
  while i <= to do
    local n = tonumber(ARGV[i])
    for j = i + 4, i + 3 + 2 * n, 2 do
      records[nr + 1] = JP .. ARGV[j]
      records[nr + 2] = ARGV[j + 1]
      nr = nr + 2
    end
    i = i + 4 + 2 * n
  end
  if nr == 0 then return 0 end
  local all_new = nr <= CHUNK and redis.call('MSETNX', unpack(records, 1, nr)) == 1
  local ready, order = {}, {}  -- per lane: {band, id pairs, their count}; lanes in order
  local later, bands = {}, {}
  local nl = 0
  local added, r = 0, 0
  i = from
  while i <= to do
    local n, due, band, l = tonumber(ARGV[i]), ARGV[i + 1], ARGV[i + 2], lane(ARGV[i + 3])
    local is_later = tonumber(due) > NOW
    local bandn = tonumber(band)
    if l.name ~= DEFAULT and not l.listed then
      redis.call('SADD', LANES, l.name)
      l.listed = true
    end
    local z = ready[l]
    if not z then
      z = {{}, 0}
      ready[l] = z
      order[#order + 1] = l
    end
    local zs, nq = z[1], z[2]
    for j = i + 4, i + 3 + 2 * n, 2 do
      r = r + 2
      if all_new or redis.call('SET', records[r - 1], records[r], 'NX') then
        local id = ARGV[j]
        if is_later then
          later[nl + 1] = due
          later[nl + 2] = id
          bands[nl + 1] = id
          bands[nl + 2] = band_of(band, l)
          nl = nl + 2
          l.deferred = l.deferred + 1
        else
          zs[nq + 1] = bandn
          zs[nq + 2] = id
          nq = nq + 2
        end
        added = added + 1
      end
    end
    z[2] = nq
    i = i + 4 + 2 * n
  end
  for _, l in ipairs(order) do
    local zs, nq = ready[l][1], ready[l][2]
    if nq > 0 then
      number_arrivals(zs, nq / 2)
      bulk('ZADD', l.q, zs, nq)
      l.readied = l.readied + nq / 2
    end
  end
  if nl > 0 then
    bulk('ZADD', SCHED, later, nl)
    bulk('HSET', BANDS, bands, nl)
  end
  return added
end

-- End deliveries, each only by its owner. ARGV[from..to]: groups of a mode, the token of
-- the jobs' owner, their lane, the count of values, then the values: per job its id and
-- the mode's own values:
--   'd'  done: the job is over, its record goes;
--   'r'  release: back to its lane's queue now, first in line (it was under way), or among
--        the lane's suspects for one that ran alone (the shutdown that cut it off proves
--        nothing);
--   'l'  later, due ms, band: to the scheduled set (its lane kept in BANDS).
-- In capitals for jobs that ran alone (suspects). A job that ended without its worker
-- dying ('d', 'l') is no longer a suspect. Returns how many jobs were not owned by the
-- token given (left alone).
local STRIDE = {d = 1, D = 1, r = 1, R = 1, l = 3, L = 3}
local function settle(from, to)
  local keys, tokens, modes, at, where = {}, {}, {}, {}, {}
  local n = 0
  local g = from
  while g <= to do
    local mode, token, l, count = ARGV[g], ARGV[g + 1], lane(ARGV[g + 2]), tonumber(ARGV[g + 3])
    for j = g + 4, g + 3 + count, STRIDE[mode] do
      n = n + 1
      keys[n] = IP .. ARGV[j]
      tokens[n] = token
      modes[n] = mode
      at[n] = j
      where[n] = l
    end
    g = g + 4 + count
  end
  if n == 0 then return 0 end
  local owners = mget(keys, n)
  -- Per lane: {jobs leaving its running set, released ones (score, id), suspects}.
  local per, order = {}, {}
  local drop, cleared, later, bands = {}, {}, {}, {}
  local nd, nc, nl = 0, 0, 0
  local over, again, no, na = {}, {}, 0, 0
  local foreign = 0
  local rnow
  for k = 1, n do
    if owners[k] == tokens[k] then
      local mode, j, l = modes[k], at[k], where[k]
      local b = per[l]
      if not b then
        b = {{}, {}, {}}
        per[l] = b
        order[#order + 1] = l
      end
      local id = ARGV[j]
      b[1][#b[1] + 1] = id
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
        local q = b[2]
        q[#q + 1] = 0
        q[#q + 1] = id
      elseif mode == 'R' then
        na = na + 1
        again[na] = id
        rnow = rnow or num(clock())
        local s = b[3]
        s[#s + 1] = rnow
        s[#s + 1] = id
      else
        na = na + 1
        again[na] = id
        later[nl + 1] = ARGV[j + 1]
        later[nl + 2] = id
        bands[nl + 1] = id
        bands[nl + 2] = band_of(ARGV[j + 2], l)
        nl = nl + 2
        l.deferred = l.deferred + 1
        if mode == 'L' then
          nc = nc + 1
          cleared[nc] = id
        end
      end
    else
      foreign = foreign + 1
    end
  end
  for _, l in ipairs(order) do
    local b = per[l]
    bulk('ZREM', l.run, b[1])
    if #b[2] > 0 then bulk('ZADD', l.q, b[2]) end
    if #b[3] > 0 then bulk('ZADD', l.sus, b[3]) end
    l.readied = l.readied + (#b[2] + #b[3]) / 2
  end
  if nd > 0 then bulk('DEL', false, drop, nd) end
  if nc > 0 then bulk('HDEL', LOST, cleared, nc) end
  if no > 0 then bulk('SREM', AGAIN, over, no) end
  if na > 0 then bulk('SADD', AGAIN, again, na) end
  if nl > 0 then
    bulk('ZADD', SCHED, later, nl)
    bulk('HSET', BANDS, bands, nl)
  end
  return foreign
end

@CLAIM@

-- Wake idle workers, per lane: a token per job of the lane left pending by this call (and
-- one per deferred job, so that a waiting worker learns of an earlier due time), at most
-- CAP.
local function wake_idle()
  for _, l in ipairs(touched) do
    local tokens = l.deferred
    if l.readied > 0 then
      tokens = tokens + math.min(l.readied, redis.call('ZCARD', l.q) + redis.call('ZCARD', l.sus))
    end
    if tokens > 0 then
      local t = {}
      for k = 1, math.min(tokens, CAP) do t[k] = '1' end
      redis.call('LPUSH', l.wake, unpack(t))
      redis.call('LTRIM', l.wake, 0, CAP - 1)
    end
  end
end
"""

PRELUDE = (
    _PRELUDE.replace("@CLAIM@", CLAIM)
    .replace("@CHUNK@", str(CHUNK))
    .replace("@SENTINEL@", SENTINEL)
    .replace("@DEFAULT@", DEFAULT_QUEUE)
)

# ARGV[6..]: the enqueue groups (see ``enqueue``). Returns how many jobs were new.
ENQUEUE = (
    PRELUDE
    + """
local added = enqueue(6, #ARGV)
wake_idle()
return added
"""
)

# ARGV[6..]: sections, each a tag, the count of its values, then its values: 'E' enqueue
# groups, 'S' ends of deliveries, 'C' claims (each: worker, want, lease ms, idle '1'/'0',
# draining '1'/'0', the count of its lanes, the lanes), 'P' ids of executions to announce
# as settled. Returns the claims' answers, in order.
TICK = (
    PRELUDE
    + """
local answers = {}
local i = 6
while i <= #ARGV do
  local tag, n = ARGV[i], tonumber(ARGV[i + 1])
  local from, to = i + 2, i + 1 + n
  if tag == 'E' then
    enqueue(from, to)
  elseif tag == 'S' then
    settle(from, to)
  elseif tag == 'C' then
    local j = from
    while j <= to do
      local nq = tonumber(ARGV[j + 5])
      local mine = {}
      for k = 1, nq do mine[k] = lane(ARGV[j + 5 + k]) end
      answers[#answers + 1] = claim(
        ARGV[j], tonumber(ARGV[j + 1]), ARGV[j + 2], ARGV[j + 3] == '1', ARGV[j + 4] == '1', mine)
      j = j + 6 + nq
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
# longer owns (its lease ran out and it was put back) is left alone and returned. The
# worker's drain turns (in any lane) are extended too.
# ARGV[6..]: lease ms, worker, then per job its id, token and lane.
RENEW = (
    PRELUDE
    + """
local lease, worker = ARGV[6], ARGV[7]
local deadline = num(clock() + tonumber(lease))
local keys, ids, tokens, where = {}, {}, {}, {}
for i = 8, #ARGV, 3 do
  ids[#ids + 1] = ARGV[i]
  tokens[#tokens + 1] = ARGV[i + 1]
  keys[#keys + 1] = IP .. ARGV[i]
  where[#where + 1] = lane(ARGV[i + 2])
end
local owners = mget(keys, #keys)
local per, order, gone = {}, {}, {}
for k, id in ipairs(ids) do
  if owners[k] == tokens[k] then
    local l = where[k]
    local z = per[l]
    if not z then
      z = {}
      per[l] = z
      order[#order + 1] = l
    end
    z[#z + 1] = deadline
    z[#z + 1] = id
  else
    gone[#gone + 1] = id
  end
end
for _, l in ipairs(order) do
  local z = per[l]
  local i = 1
  while i <= #z do
    local j = math.min(i + CHUNK - 1, #z)
    redis.call('ZADD', l.run, 'XX', unpack(z, i, j))
    i = j + 1
  end
end
for _, l in ipairs(all_lanes()) do
  if redis.call('GET', l.drain) == worker then redis.call('PEXPIRE', l.drain, lease) end
end
return gone
"""
)

# Take jobs that have not started out of the queue (a settled execution's deadline job),
# whichever lane holds them. ARGV[6..]: the ids.
REMOVE = (
    PRELUDE
    + """
local ids, records = {}, {}
for i = 6, #ARGV do
  ids[#ids + 1] = ARGV[i]
  records[#records + 1] = JP .. ARGV[i]
end
for _, l in ipairs(all_lanes()) do
  bulk('ZREM', l.q, ids)
  bulk('ZREM', l.sus, ids)
end
bulk('ZREM', SCHED, ids)
bulk('HDEL', BANDS, ids)
bulk('DEL', false, records)
return #ids
"""
)
