-- Takes up to `count` jobs under a lease. First puts back jobs whose lease
-- expired (a stall, retried like a failure) and moves due delayed jobs to
-- waiting. ARGV: count, lease ms, random in [0,1), wake channel, then,
-- for a consumer that takes jobs handed off by `enqueue`: its id ('' for
-- none), its push channel, how long its registration holds (ms), and '1'
-- if its last fetch registered it (so that a busy consumer's fetches,
-- which never do, spend no call on ending a registration).
-- Returns: next-due delay ms (-1: none), rate-limit wait ms (0: none),
-- stalls found (as -1 - stalls when the consumer was registered), then per
-- job: id, token, attempt, spec JSON.
-- A consumer whose fetch comes back short of `count` (the queue is
-- drained) is registered in `idle` with the room it has left, so that the
-- next enqueue can lease a job to it at once (see `enqueue.lua`); any
-- fetch of its own ends its registration first.
local count, lease, rnd, channel = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local me, push_channel, idle_ttl = ARGV[5] or '', ARGV[6], tonumber(ARGV[7] or '0')
local now = now_ms()
if me ~= '' and ARGV[8] == '1' then redis.call('HDEL', K.idle, me) end

-- A lease that expired unstarted (see `common.lua`) goes back unspent, as
-- a release does: its runner died before running it. Up to
-- `MAX_UNSTARTED_STALLS` times per job: a job that takes its runner down
-- before its start mark lands (within milliseconds of starting) would
-- otherwise come back for ever; past that, its stalls spend attempts.
local MAX_UNSTARTED_STALLS = 10
local expired = redis.call('ZRANGEBYSCORE', K.active, '-inf', now, 'LIMIT', 0, 100)
for _, id in ipairs(expired) do
  redis.call('ZREM', K.active, id)
  redis.call('HDEL', K.tokens, id)
  local stalls = redis.call('HINCRBY', K.stalls, id, 1)
  local attempts = tonumber(redis.call('HGET', K.attempts, id) or '0')
  if redis.call('HDEL', K.unstarted, id) == 1 and stalls <= MAX_UNSTARTED_STALLS then
    redis.call('HSET', K.attempts, id, int(math.max(0, attempts - 1)))
    push_wait(id)
    event('stalled', id, 'attempts', attempts - 1, 'started', 0)
    wake(channel)
  else
    event('stalled', id, 'attempts', attempts)
    retry_or_fail(id, attempts, 'stalled', 0, 'stalled: the lease expired before the job finished (worker lost or too slow)', now, rnd, channel)
  end
end

local due = redis.call('ZRANGEBYSCORE', K.delayed, '-inf', now, 'LIMIT', 0, 1000)
for _, id in ipairs(due) do
  redis.call('ZREM', K.delayed, id)
  push_wait(id)
end

local out = { -1, 0, #expired }
local function next_due()
  local d = redis.call('ZRANGE', K.delayed, 0, 0, 'WITHSCORES')
  local a = redis.call('ZRANGE', K.active, 0, 0, 'WITHSCORES')
  local best = -1
  if d[2] then best = math.max(0, tonumber(d[2]) - now) end
  if a[2] then
    local w = math.max(0, tonumber(a[2]) - now)
    if best < 0 or w < best then best = w end
  end
  return best
end

if count <= 0 or redis.call('HGET', K.meta, 'paused') == '1' then
  out[1] = next_due()
  return out
end

local limit_max = tonumber(redis.call('HGET', K.meta, 'rl_max') or '0')
if limit_max > 0 then
  local used = tonumber(redis.call('GET', K.rl) or '0')
  if used >= limit_max then
    out[1] = next_due()
    out[2] = math.max(1, redis.call('PTTL', K.rl))
    return out
  end
  count = math.min(count, limit_max - used)
end

-- Per-group rate limit: a job whose group has used its window waits it
-- out in `delayed` (keeping its place in line for when it returns).
local group_max = tonumber(redis.call('HGET', K.meta, 'grl_max') or '0')
local group_window = tonumber(redis.call('HGET', K.meta, 'grl_window_ms') or '0')
local function group_allows(id, score)
  if group_max <= 0 then return true end
  local group = redis.call('HGET', K.groups, id)
  if not group then return true end
  local start, used = 0, 0
  local f = redis.call('HGET', K.grl, group)
  if f then
    local a, b = string.match(f, '^(%d+):(%d+)$')
    start, used = tonumber(a), tonumber(b)
  end
  if now - start >= group_window then start, used = now, 0 end
  if used >= group_max then
    redis.call('HSET', K.gscore, id, score)
    redis.call('ZADD', K.delayed, start + group_window, id)
    event('group_limited', id, 'group', group)
    return false
  end
  redis.call('HSET', K.grl, group, start .. ':' .. (used + 1))
  return true
end

-- Per job, the loops below do no more than they must: counters rather
-- than `#` (a search) or `table.insert` (a call), and the group check
-- only where groups are limited.
local taken, n, vt, budget = {}, 0, tonumber(redis.call('HGET', K.meta, 'vt') or '0'), count * 10 + 100
while n < count and budget > 0 do
  local popped = redis.call('ZPOPMIN', K.wait, count - n)
  if #popped == 0 then break end
  for i = 1, #popped, 2 do
    local id, score = popped[i], tonumber(popped[i + 1])
    budget = budget - 1
    local seq = score % SEQ_SPAN
    if seq > vt then vt = seq end
    if group_max <= 0 or group_allows(id, score) then
      n = n + 1
      taken[n] = id
    end
  end
end
-- The leases of the whole batch, a handful of calls for any number of jobs:
-- consecutive fencing tokens from one HINCRBY, attempts and specs read
-- with one HMGET each, tokens, attempts, deadlines and the unstarted marks
-- (`common.lua`) written with one call each.
if n > 0 then
  local first_token = redis.call('HINCRBY', K.meta, 'token', n) - n + 1
  local attempts, specs = hmget_many(K.attempts, taken), hmget_many(K.specs, taken)
  local tokens, counts, deadlines, unstarted = { PIN_FIELD, PIN_VALUE }, {}, {}, {}
  local deadline = int(now + lease)
  for i, id in ipairs(taken) do
    local token, attempt = first_token + i - 1, (tonumber(attempts[i]) or 0) + 1
    tokens[2 * i + 1] = id
    tokens[2 * i + 2] = int(token)
    counts[2 * i - 1] = id
    -- Almost every job is on its first attempt.
    counts[2 * i] = attempt == 1 and '1' or int(attempt)
    deadlines[2 * i - 1] = deadline
    deadlines[2 * i] = id
    unstarted[2 * i - 1] = id
    unstarted[2 * i] = int(token)
    local o = 4 * i
    out[o], out[o + 1], out[o + 2], out[o + 3] = id, token, attempt, specs[i]
  end
  call_many('HSET', K.tokens, tokens)
  call_many('HSET', K.attempts, counts)
  call_many('ZADD', K.active, deadlines)
  call_many('HSET', K.unstarted, unstarted)
end
redis.call('HSET', K.meta, 'vt', int(vt))
if limit_max > 0 and n > 0 then
  if redis.call('INCRBY', K.rl, n) == n then
    redis.call('PEXPIRE', K.rl, tonumber(redis.call('HGET', K.meta, 'rl_window_ms')))
  end
end
-- Drained, and no limit that a hand-off would have to apply: registered.
-- (A paused queue returned above, so it registers no one.)
if me ~= '' and n < count and limit_max <= 0 and group_max <= 0 then
  redis.call('HSET', K.idle, me, idle_entry(now + idle_ttl, count - n, lease, push_channel))
  out[3] = -1 - out[3]
end
out[1] = next_due()
return out
