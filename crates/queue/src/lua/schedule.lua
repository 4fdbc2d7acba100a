-- Fires a recurring schedule's tick exactly once, however many runners
-- try: only the caller that still sees the expected next-run time moves it
-- on and enqueues the tick's job (whose id names the tick, so even a retry
-- of this call cannot enqueue it twice).
-- ARGV: wake channel, schedule id, expected next ms, new next ms, job id,
-- spec JSON, priority ('' for the queue's default), group ('' for none of
-- the schedule's: the queue's `group_from` may give one; see `place`).
-- Returns 1 if this call fired the tick, 0 if another did (or it was removed).
local channel, sid = ARGV[1], ARGV[2]
local current = redis.call('ZSCORE', K.schedule_next, sid)
if not current or tonumber(current) ~= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', K.schedule_next, ARGV[4], sid)
redis.call('HSET', K.meta, 'last_run:' .. sid, ARGV[3])
local id, spec = ARGV[5], ARGV[6]
if redis.call('HSETNX', K.specs, id, spec) == 1 then
  local priority, group = place(spec, ARGV[7], ARGV[8])
  if priority ~= 0 then redis.call('HSET', K.prios, id, int(priority)) end
  if group ~= '' then redis.call('HSET', K.groups, id, group) end
  push_wait(id)
  event('added', id, 'schedule', sid)
  wake(channel)
end
return 1
