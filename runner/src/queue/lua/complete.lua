-- Completes a batch of leased jobs. A job whose token is not the current
-- one (its lease expired and it was handed to someone else, or it was
-- removed) is refused, so a stale worker can never complete it.
-- ARGV: count, keep count, keep age ms, then per job: id, token, result
-- JSON ('' for none), progress (-1: none), log JSON ('' for none).
-- Returns per job: 1 completed, 0 refused.
local n, keep_count, keep_age = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local now = now_ms()
local out = {}
for i = 0, n - 1 do
  local b = 4 + i * 5
  local id, token = ARGV[b], ARGV[b + 1]
  if redis.call('HGET', K.tokens, id) ~= token then
    table.insert(out, 0)
  else
    redis.call('HDEL', K.tokens, id)
    redis.call('ZREM', K.active, id)
    redis.call('ZADD', K.completed, now, id)
    if ARGV[b + 2] ~= '' then redis.call('HSET', K.results, id, ARGV[b + 2]) end
    if ARGV[b + 3] ~= '-1' then redis.call('HSET', K.progress, id, ARGV[b + 3]) end
    if ARGV[b + 4] ~= '' then redis.call('HSET', K.logs, id, ARGV[b + 4]) end
    event('completed', id)
    table.insert(out, 1)
  end
end
retain(K.completed, keep_count, keep_age, now)
return out
