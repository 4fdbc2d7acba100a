-- Fires a recurring schedule's tick exactly once, however many runners
-- try: only the caller that still sees the expected next-run time moves it
-- on and enqueues the tick's job (whose id names the tick, so even a retry
-- of this call cannot enqueue it twice).
-- ARGV: wake channel, schedule id, expected next ms, new next ms, job id,
-- spec JSON, priority, group ('' for none).
-- Returns 1 if this call fired the tick, 0 if another did (or it was removed).
local channel, sid = ARGV[1], ARGV[2]
local current = redis.call('ZSCORE', K.schedule_next, sid)
if not current or tonumber(current) ~= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', K.schedule_next, ARGV[4], sid)
redis.call('HSET', K.meta, 'last_run:' .. sid, ARGV[3])
local id, spec = ARGV[5], ARGV[6]
if redis.call('HSETNX', K.specs, id, spec) == 1 then
  if tonumber(ARGV[7]) ~= 0 then redis.call('HSET', K.prios, id, ARGV[7]) end
  if ARGV[8] ~= '' then redis.call('HSET', K.groups, id, ARGV[8]) end
  push_wait(id)
  event('added', id, 'schedule', sid)
  wake(channel)
end
return 1
