-- Enqueues jobs; an id that exists already is left as it is.
-- ARGV: wake channel, count, then per job: id, spec JSON, delay ms,
-- priority, group ('' for none).
-- Returns per job: id, 1 if created (0 if it existed), its state.
-- The batch's reads and writes are one call each (see `call_many`): one
-- HMGET says which ids exist, and the new jobs' specs, sets and the
-- groups' fair-queueing sequences (`wait_score`, `save_seqs`) are written
-- once at the end.
local channel, n = ARGV[1], tonumber(ARGV[2])
local now = now_ms()
local out, woken = {}, false
local created, prios, groups, waiting, delayed = {}, {}, {}, {}, {}
local earliest_new = nil
-- Jobs created earlier in this batch: their sets are written at the end,
-- so a repeated id reads its state here.
local fresh = {}
local ids, specs = {}, {}
for i = 0, n - 1 do ids[i + 1] = ARGV[3 + i * 5] end
local existing = hmget_many(K.specs, ids)
for i = 0, n - 1 do
  local b = 3 + i * 5
  local id, spec = ARGV[b], ARGV[b + 1]
  local delay, priority, group = tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3]), ARGV[b + 4]
  local state
  if existing[i + 1] or fresh[id] then
    table.insert(out, id); table.insert(out, 0); table.insert(out, fresh[id] or state_of(id) or 'unknown')
  else
    table.insert(specs, id); table.insert(specs, spec)
    table.insert(created, id); table.insert(created, now)
    if priority ~= 0 then table.insert(prios, id); table.insert(prios, priority) end
    if group ~= '' then table.insert(groups, id); table.insert(groups, group) end
    if delay > 0 then
      table.insert(delayed, now + delay); table.insert(delayed, id)
      if earliest_new == nil or now + delay < earliest_new then earliest_new = now + delay end
      state = 'delayed'
    else
      -- As `push_wait`, for a new job (it has no saved place).
      table.insert(waiting, wait_score(priority, group)); table.insert(waiting, id)
      woken = true
      state = 'waiting'
    end
    fresh[id] = state
    table.insert(out, id); table.insert(out, 1); table.insert(out, state)
  end
end
if earliest_new ~= nil then
  -- A delayed job due before every other: a consumer asleep until a later
  -- one (or with none to wait for) must wake to learn the new due time.
  local head = redis.call('ZRANGE', K.delayed, 0, 0, 'WITHSCORES')
  if not head[2] or earliest_new < tonumber(head[2]) then woken = true end
end
call_many('HSET', K.specs, specs)
call_many('HSET', K.created, created)
call_many('HSET', K.prios, prios)
call_many('HSET', K.groups, groups)
call_many('ZADD', K.delayed, delayed)
call_many('ZADD', K.wait, waiting)
save_seqs()
if n == 1 then event('added', ARGV[3]) elseif n > 1 then event('added', ARGV[3], 'count', n) end
if woken then wake(channel) end
return out
