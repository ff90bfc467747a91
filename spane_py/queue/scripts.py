"""Lua scripts that keep each queue operation to one Redis round trip.

Keys follow arq's layout (``arq:job:<id>`` holds the job, ``arq:in-progress:<id>`` marks it
taken) so arq's ``Worker.run_job`` and ``finish_job`` work on our jobs unchanged. On top:

* the main queue (``<prefix>:queue``) holds only jobs that may run now, scored by priority
  band + arrival time, lowest first;
* ``<prefix>:scheduled`` holds deferred jobs (start delays, retry backoff) scored by due
  time; ``<prefix>:bands`` remembers each one's priority band until it is promoted;
* ``<prefix>:wake`` is a list idle workers block on; every enqueue pushes tokens to it;
* the in-progress key is a lease: it expires unless its worker keeps refreshing it.
"""

from __future__ import annotations

# KEYS: queue, scheduled, bands, wake
# ARGV: job_prefix, now_ms, wake_cap, then 5 per job: id, value, ttl_ms, due_ms (0 = now), band
ENQUEUE = """
local job_prefix = ARGV[1]
local now = tonumber(ARGV[2])
local wake_cap = tonumber(ARGV[3])
local added = 0
for i = 4, #ARGV, 5 do
  local id = ARGV[i]
  local key = job_prefix .. id
  if redis.call('EXISTS', key) == 0 then
    redis.call('SET', key, ARGV[i + 1], 'PX', ARGV[i + 2])
    local due = tonumber(ARGV[i + 3])
    local band = tonumber(ARGV[i + 4])
    if due > now then
      redis.call('ZADD', KEYS[2], due, id)
      redis.call('HSET', KEYS[3], id, band)
    else
      redis.call('ZADD', KEYS[1], band + now, id)
    end
    added = added + 1
  end
end
if added > 0 then
  local tokens = math.min(added, wake_cap)
  for _ = 1, tokens do redis.call('LPUSH', KEYS[4], '1') end
  redis.call('LTRIM', KEYS[4], 0, wake_cap - 1)
end
return added
"""

# KEYS: queue, scheduled, bands
# ARGV: in_progress_prefix, now_ms, want, lease_ms, max_scan, job_prefix, retry_prefix
# Claims up to ``want`` jobs and fetches them (what arq's run_job would fetch next: the job
# and its incremented try counter). Returns {id, score, job or false, try, ...; next due}.
CLAIM = """
local ip = ARGV[1]
local now = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local lease = ARGV[4]
local max_scan = tonumber(ARGV[5])
local jp, rp = ARGV[6], ARGV[7]
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 500)
for _, id in ipairs(due) do
  local band = tonumber(redis.call('HGET', KEYS[3], id) or '0')
  redis.call('ZADD', KEYS[1], band + now, id)
  redis.call('ZREM', KEYS[2], id)
  redis.call('HDEL', KEYS[3], id)
end
local claimed = {}
local n = 0
local offset = 0
while n < want and offset < max_scan do
  local batch = redis.call('ZRANGE', KEYS[1], offset, offset + 99, 'WITHSCORES')
  if #batch == 0 then break end
  for i = 1, #batch, 2 do
    local id = batch[i]
    if redis.call('SET', ip .. id, '1', 'NX', 'PX', lease) then
      local try = redis.call('INCR', rp .. id)
      redis.call('EXPIRE', rp .. id, 88400)
      claimed[#claimed + 1] = id
      claimed[#claimed + 1] = batch[i + 1]
      claimed[#claimed + 1] = redis.call('GET', jp .. id)
      claimed[#claimed + 1] = try
      n = n + 1
      if n >= want then break end
    end
  end
  offset = offset + 100
end
local nxt = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
return {claimed, nxt[2] or ''}
"""

# Move a running job back to the scheduled set (retry with backoff); arq's RetryJob then
# only drops its in-progress key. The delivery ended on purpose: its try counter restarts
# (the counter counts deliveries lost with their worker, see FINISH).
# KEYS: queue, scheduled, bands, job key, wake, retry key
# ARGV: id, due_ms, band, ttl_ms
RESCHEDULE = """
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[3])
redis.call('PEXPIRE', KEYS[4], ARGV[4])
redis.call('LPUSH', KEYS[5], '1')
redis.call('LTRIM', KEYS[5], 0, 63)
redis.call('DEL', KEYS[6])
return 1
"""

# Finish many jobs at once (arq's finish_job, batched). Four ARGV per job:
# id, mode ('done' | 'release' | 'incr'), incr score, keep-in-progress ms ('' = delete it).
# 'release' (a job put back on purpose: retried, cancelled by a shutdown) also restarts its
# try counter, so the counter tells how many deliveries in a row were lost with a worker.
# KEYS: queue, abort set. ARGV[1..3]: job prefix, in-progress prefix, retry prefix.
FINISH = """
local jp, ip, rp = ARGV[1], ARGV[2], ARGV[3]
for i = 4, #ARGV, 4 do
  local id, mode, incr, keep = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  if keep == '' then
    redis.call('DEL', ip .. id)
  else
    redis.call('PEXPIRE', ip .. id, keep)
  end
  if mode == 'done' then
    redis.call('DEL', rp .. id, jp .. id)
    redis.call('ZREM', KEYS[2], id)
    redis.call('ZREM', KEYS[1], id)
  elseif mode == 'release' then
    redis.call('DEL', rp .. id)
  elseif mode == 'incr' then
    redis.call('ZINCRBY', KEYS[1], incr, id)
  end
end
return 1
"""

# Announce settled executions (batched). KEYS: channel; ARGV: execution ids.
PUBLISH = """
for i = 1, #ARGV do redis.call('PUBLISH', KEYS[1], ARGV[i]) end
return #ARGV
"""
