-- Records a failed attempt of a leased job and retries it or fails it for
-- good. Refused (returns {'stale', 0}) when the token is not current.
-- ARGV: id, token, kind (retry | retry_after | permanent), delay ms,
-- message, random in [0,1), wake channel, progress (-1: none), log JSON,
-- and optionally the attempt's run, 'STARTED_MS RUNNER' (kept in its
-- error entry).
-- Returns: the new state and when it runs (delayed only).
local id, token, kind = ARGV[1], ARGV[2], ARGV[3]
local delay, message, rnd, channel = tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6]), ARGV[7]
if redis.call('HGET', K.tokens, id) ~= token then return { 'stale', 0 } end
local now = now_ms()
redis.call('HDEL', K.tokens, id)
redis.call('HDEL', K.unstarted, id)
redis.call('ZREM', K.active, id)
if ARGV[8] ~= '-1' then redis.call('HSET', K.progress, id, ARGV[8]) end
if ARGV[9] ~= '' then redis.call('HSET', K.logs, id, ARGV[9]) end
local attempts = tonumber(redis.call('HGET', K.attempts, id) or '0')
return retry_or_fail(id, attempts, kind, delay, message, now, rnd, channel, ARGV[10])
