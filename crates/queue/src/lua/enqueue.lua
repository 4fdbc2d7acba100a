-- Enqueues jobs; an id that exists already is left as it is.
-- ARGV: wake channel, count, flags, then per job: id, spec JSON, delay ms,
-- priority ('' for the queue's default), group ('' for none of the
-- producer's: the queue's `group_from` may give one; see `place`). The
-- flags are a sum: 1 when the caller
-- made every id of this call itself, just now, so that none can exist; 2
-- for the short layout, per job only id and spec, for a call whose jobs
-- all start now, with no priority or group of their producer's (a bulk call of plain
-- jobs: three fewer arguments a job for Redis to make into Lua strings,
-- and none to convert; with the loop's own counts below, a tenth off the
-- script's time). '0' and '1' are the long layout, as before the short
-- one existed.
-- A queue with `max_waiting` refuses the whole call when its jobs would
-- take the jobs not finished past it (`over_bound`).
-- Returns per job: 1 if created waiting, 2 if created delayed, 3 if created
-- and leased at once to an idle consumer (`hand_off`, for a call of one
-- job without a group), or, for an id that existed, its state's name
-- (nothing was changed).
-- A job's enqueue time is its spec's `created_at`, the producer's clock (as
-- BullMQ's `timestamp`): the `created` hash, which held the server's clock
-- beside it, was a fifth of a bulk call's time in Redis and is no longer
-- written; a record still reads it for a job enqueued before.
-- The batch's reads and writes are one call each (see `call_many`): one
-- HMGET says which ids exist (none, with new ids: most jobs' ids are made
-- by the runner, and the check was a thirteenth of Redis's work per job),
-- and the new jobs' specs, sets and the groups' fair-queueing sequences
-- (`wait_score`, `save_seqs`) are written once at the end.
local channel, n, flags = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
if flags == nil or flags < 0 or flags > 3 or flags % 1 ~= 0 then
  return redis.error_reply('enqueue: the third argument (flags) must be 0, 1, 2 or 3, not ' .. tostring(ARGV[3]))
end
local new_ids, short = flags % 2 == 1, flags >= 2
local stride = short and 2 or 5
-- A layout that does not match the flags would read delays as ids and
-- priorities as specs: refused, with nothing written.
if n == nil or n < 0 or #ARGV ~= 3 + n * stride then
  return redis.error_reply(string.format(
    'enqueue: %d arguments after the first 3 for %s jobs in the %s layout (%d each)',
    #ARGV - 3, tostring(ARGV[2]), short and 'short' or 'long', stride))
end
local full = over_bound(K.meta, K.wait, K.delayed, K.active, n)
if full then return full end
local now = now_ms()
local out, woken = {}, false
local prios, groups, waiting, delayed = {}, {}, {}, {}
local earliest_new = nil
-- The group of the batch's first job, for the hand-off below.
local first_group = nil
-- Jobs created earlier in this batch: their sets are written at the end,
-- so a repeated id reads its state here (not needed with new ids, which
-- cannot repeat).
local fresh = {}
-- The lengths of `specs` and `waiting`: Lua's `#` is a search, paid for
-- every append.
local ns, nw = 0, 0
local specs = {}
local existing = {}
if not new_ids then
  local ids = {}
  for i = 0, n - 1 do ids[i + 1] = ARGV[4 + i * stride] end
  existing = hmget_many(K.specs, ids)
end
for i = 0, n - 1 do
  local b = 4 + i * stride
  local id, spec = ARGV[b], ARGV[b + 1]
  if existing[i + 1] or fresh[id] then
    out[i + 1] = fresh[id] or state_of(id) or 'unknown'
  else
    local delay, priority, group = 0, '', ''
    if not short then delay, priority, group = tonumber(ARGV[b + 2]), ARGV[b + 3], ARGV[b + 4] end
    priority, group = place(spec, priority, group)
    if i == 0 then first_group = group end
    local state
    specs[ns + 1] = id; specs[ns + 2] = spec
    ns = ns + 2
    if priority ~= 0 then prios[#prios + 1] = id; prios[#prios + 1] = int(priority) end
    if group ~= '' then groups[#groups + 1] = id; groups[#groups + 1] = group end
    if delay > 0 then
      delayed[#delayed + 1] = int(now + delay); delayed[#delayed + 1] = id
      if earliest_new == nil or now + delay < earliest_new then earliest_new = now + delay end
      state = 'delayed'
      out[i + 1] = 2
    else
      -- As `push_wait`, for a new job (it has no saved place).
      waiting[nw + 1] = int(wait_score(priority, group)); waiting[nw + 2] = id; nw = nw + 2
      woken = true
      state = 'waiting'
      out[i + 1] = 1
    end
    if not new_ids then fresh[id] = state end
  end
end
if earliest_new ~= nil then
  -- A delayed job due before every other: a consumer asleep until a later
  -- one (or with none to wait for) must wake to learn the new due time.
  local head = redis.call('ZRANGE', K.delayed, 0, 0, 'WITHSCORES')
  if not head[2] or earliest_new < tonumber(head[2]) then woken = true end
end
call_many('HSET', K.specs, specs)
call_many('HSET', K.prios, prios)
call_many('HSET', K.groups, groups)
call_many('ZADD', K.delayed, delayed)
-- One job, and a consumer idle for it: leased to it now, so it need not
-- wait, nor anyone wake. (A bulk call's jobs go to the line, in order.)
if n == 1 and out[1] == 1 and first_group == ''
    and hand_off(K, ARGV[4], ARGV[5], now, math.max(seq_vt or 0, tonumber(waiting[1]) % SEQ_SPAN)) then
  out[1], woken, waiting = 3, false, {}
end
call_many('ZADD', K.wait, waiting)
save_seqs()
if n == 1 then event('added', ARGV[4]) elseif n > 1 then event('added', ARGV[4], 'count', n) end
if woken then wake(channel) end
return out
