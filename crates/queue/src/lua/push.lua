-- Enqueues one new job that starts now, with no priority or group of its
-- producer's, with an id the caller made just now (the runner's ULIDs): the common
-- single enqueue, which `enqueue` covers too. This one runs after
-- `common.lua` alone, without the prelude, and declares only the 11 keys
-- it touches (`keys::PUSH_NAMES`, in this order), because at light load a
-- job's wait from enqueue to start is mostly fixed costs paid on cold
-- caches: Redis making Lua strings of 25 keys and running the prelude came
-- before this script's first line. Measured with time stamps inside Redis
-- and the runner: 30 to 80 µs less from enqueue to start
-- (docs/performance.md, "A third look"). What it writes is what `enqueue`
-- writes for such a job, to the byte: the same hand-off (`hand_off`), or
-- the same place in line and wake-up, the same sequence, the same event.
-- ARGV: wake channel, id, spec JSON.
-- Returns 1 if created waiting, 3 if created and leased at once to an idle
-- consumer (as `enqueue`), or 0, having written nothing, when the queue's
-- policy gives its jobs a priority or a group (`place` in the prelude,
-- which this script has not): the caller sends the job to `enqueue`.
local K = {
  meta = KEYS[1], wait = KEYS[2], active = KEYS[3], specs = KEYS[4], attempts = KEYS[5],
  tokens = KEYS[6], events = KEYS[7], gvt = KEYS[8], idle = KEYS[9], unstarted = KEYS[10],
  delayed = KEYS[11],
}
if #KEYS ~= 11 or #ARGV ~= 3 then
  return redis.error_reply(string.format('push: 11 keys and 3 arguments (channel, id, spec), not %d and %d', #KEYS, #ARGV))
end
local full = over_bound(K.meta, K.wait, K.delayed, K.active, 1)
if full then return full end
local channel, id, spec = ARGV[1], ARGV[2], ARGV[3]
local meta = redis.call('HMGET', K.meta, 'vt', 'default_priority', 'group_from')
if meta[2] or meta[3] then return 0 end
local now = now_ms()
-- As `wait_score` for a job in no group (the group '') at priority 0.
local vt = tonumber(meta[1] or '0')
local seq = math.max(tonumber(redis.call('HGET', K.gvt, '') or '0'), vt) + 1
redis.call('HSET', K.specs, id, spec)
local out = 1
if hand_off(K, id, spec, now, math.max(vt, seq % SEQ_SPAN)) then
  out = 3
else
  redis.call('ZADD', K.wait, int(score_of(0, seq)), id)
end
redis.call('HSET', K.gvt, '', int(seq))
add_event(K.events, 'added', id)
if out == 1 then publish_wake(K.meta, channel) end
return out
