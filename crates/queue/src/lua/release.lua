-- Puts a leased job back on the queue without counting the attempt: the
-- runner is shutting down and cancelled it, which is not the job's fault.
-- ARGV: id, token, wake channel. Returns 1, or 0 if the token is stale.
if redis.call('HGET', K.tokens, ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HDEL', K.tokens, ARGV[1])
redis.call('HDEL', K.unstarted, ARGV[1])
redis.call('ZREM', K.active, ARGV[1])
local attempts = tonumber(redis.call('HGET', K.attempts, ARGV[1]) or '1')
redis.call('HSET', K.attempts, ARGV[1], math.max(0, attempts - 1))
push_wait(ARGV[1])
event('released', ARGV[1])
wake(ARGV[3])
return 1
