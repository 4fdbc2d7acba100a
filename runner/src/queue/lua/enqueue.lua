-- Enqueues jobs; an id that exists already is left as it is.
-- ARGV: wake channel, count, then per job: id, spec JSON, delay ms,
-- priority, group ('' for none).
-- Returns per job: id, 1 if created (0 if it existed), its state.
local channel, n = ARGV[1], tonumber(ARGV[2])
local now = now_ms()
local out, woken = {}, false
for i = 0, n - 1 do
  local b = 3 + i * 5
  local id, spec = ARGV[b], ARGV[b + 1]
  local delay, priority, group = tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3]), ARGV[b + 4]
  if redis.call('HSETNX', K.specs, id, spec) == 0 then
    table.insert(out, id); table.insert(out, 0); table.insert(out, state_of(id) or 'unknown')
  else
    redis.call('HSET', K.created, id, now)
    if priority ~= 0 then redis.call('HSET', K.prios, id, priority) end
    if group ~= '' then redis.call('HSET', K.groups, id, group) end
    if delay > 0 then
      redis.call('ZADD', K.delayed, now + delay, id)
      -- Now the earliest delayed job: a consumer asleep until a later one
      -- (or with none to wait for) must wake to learn the new due time.
      if redis.call('ZRANGE', K.delayed, 0, 0)[1] == id then woken = true end
      table.insert(out, id); table.insert(out, 1); table.insert(out, 'delayed')
    else
      push_wait(id)
      woken = true
      table.insert(out, id); table.insert(out, 1); table.insert(out, 'waiting')
    end
  end
end
if n == 1 then event('added', ARGV[3]) elseif n > 1 then event('added', ARGV[3], 'count', n) end
if woken then wake(channel) end
return out
