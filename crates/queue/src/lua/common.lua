-- First in every queue script, before the prelude or the lean `push`:
-- what needs none of the prelude's state, so that `push` can run without
-- the prelude. Functions that touch keys take them as arguments (the
-- prelude's key table `K` comes after this file; `push` has a smaller one).
-- Holds: whole numbers as strings, the server's clock, the tokens hash's
-- pinned field, the waiting score's constants, events, the wake-up, and
-- the hand-off of a new job to an idle consumer.

-- The tokens hash holds one field no job id can be (ids have no spaces),
-- with a value too long for a listpack: Redis keeps a hash of up to 512
-- short fields as a listpack, searched end to end on every lookup, so a
-- batch of n completions checked against m live leases cost n * m string
-- comparisons. A hashtable, once made, stays one while the key exists,
-- and the field keeps the key. (With `int` below: a fifth less Redis CPU
-- per job in the drain at concurrency 50; docs/queue-protocol.md.)
local PIN_FIELD = 'pinned encoding'
local PIN_VALUE = 'keeps this hash a hashtable: as a listpack, every lookup of a lease token would search it end to end'

-- Whole numbers as strings for `redis.call`: a Lua number passed as it is
-- is printed with '%.17g', a multi-precision conversion that was a tenth
-- of Redis's work per job in a bulk enqueue; '%d' is a plain integer's.
local function int(n) return string.format('%d', n) end

-- The server's clock, so runners with skewed clocks agree.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- A waiting job's score from its priority and its fair-queueing sequence
-- (the prelude's `wait_score` says how the sequence is chosen): higher
-- priority first, then the sequence; exact in a double.
local MAX_PRIORITY = 4000
local SEQ_SPAN = 1099511627776
local function score_of(priority, seq)
  return (MAX_PRIORITY - priority) * SEQ_SPAN + seq % SEQ_SPAN
end

-- The events stream is capped (approximately, which is O(1)).
local EVENTS_MAXLEN = 10000
local function add_event(events, name, id, ...)
  redis.call('XADD', events, 'MAXLEN', '~', EVENTS_MAXLEN, '*', 'event', name, 'id', id, ...)
end

-- The queue's bound on jobs not finished (`max_waiting` in meta; 0 or
-- none: no bound): waiting, delayed and leased, so that a retry, which
-- moves a job between those, never takes the queue past it. An error
-- reply when `adding` more jobs would pass it, else nil. Checked before
-- anything is written, so a refused call writes nothing. The reply starts
-- with `QUEUE_FULL` and the counts, which the runner reads back into a
-- clear error.
local function over_bound(meta, wait, delayed, active, adding)
  local cap = tonumber(redis.call('HGET', meta, 'max_waiting') or '0')
  if cap <= 0 then return nil end
  local have = redis.call('ZCARD', wait) + redis.call('ZCARD', delayed) + redis.call('ZCARD', active)
  if have + adding > cap then
    return redis.error_reply(string.format('QUEUE_FULL %d %d %d', have, cap, adding))
  end
  return nil
end

-- Wakes the queue's consumers, unless it is paused.
local function publish_wake(meta, channel)
  if redis.call('HGET', meta, 'paused') ~= '1' then
    redis.call('PUBLISH', channel, '1')
  end
end

-- Leases start *unstarted*: a lease's attempt is counted when it is
-- written (so a job's `attempts` is the attempt it is on), but the job is
-- in `unstarted` (id -> token) until the runner says it started it (a
-- start mark, sent with its next `complete` call or on its own within a
-- few milliseconds) or finishes it. A lease that expires unstarted was
-- fetched ahead and never run (its runner died with it in a buffer, or
-- with a hand-off in flight): `fetch` puts it back with the attempt given
-- back, as a release does, instead of spending it as a stall.

-- A consumer's registration in `idle` (fetch.lua): until when it holds,
-- how many more jobs it takes, the lease it asked for, and where to send
-- them (the channel is the last field, so it may hold spaces).
local function idle_entry(expires, room, lease, channel)
  return int(expires) .. ' ' .. int(room) .. ' ' .. int(lease) .. ' ' .. channel
end

-- Leases the new job `id` to an idle consumer instead of its waiting in
-- line, if one is registered and listening, by publishing it (fencing
-- token, id, spec) on the consumer's channel: the consumer starts it
-- without a fetch's round trip. The lease is the one a fetch would write:
-- a token, attempt 1, a deadline in `active`, and the fair-queueing time
-- moved on past the job. `PUBLISH` answers how many clients got the
-- message; with none, the registration is stale (its consumer is gone)
-- and goes. Only when nothing is waiting (else the job would jump the
-- line) and the queue is not paused and has no rate limits (which only
-- `fetch` applies), and when the script was given the `idle` and
-- `unstarted` keys (a producer of another language may declare the first
-- 24 only). The lease is marked unstarted, as a fetch's are (see
-- `mark_unstarted`). `K` is
-- the caller's key table; `vt`, the queue's fair-queueing time once the
-- job is out (the larger of the queue's and the job's sequence). Returns
-- whether the job was handed off; if not, the caller puts it in `wait`.
local function hand_off(K, id, spec, now, vt)
  if not K.idle or not K.unstarted or redis.call('ZCARD', K.wait) > 0 then return false end
  local meta = redis.call('HMGET', K.meta, 'paused', 'rl_max', 'grl_max')
  if meta[1] == '1' or tonumber(meta[2] or '0') > 0 or tonumber(meta[3] or '0') > 0 then
    return false
  end
  local idle = redis.call('HGETALL', K.idle)
  for i = 1, #idle, 2 do
    local who = idle[i]
    local expires, room, lease, channel = string.match(idle[i + 1], '^(%d+) (%d+) (%d+) (.+)$')
    expires, room, lease = tonumber(expires), tonumber(room), tonumber(lease)
    if expires and expires > now and room > 0 then
      local token = redis.call('HINCRBY', K.meta, 'token', 1)
      if redis.call('PUBLISH', channel, int(token) .. ' ' .. id .. ' ' .. spec) > 0 then
        redis.call('HSET', K.tokens, PIN_FIELD, PIN_VALUE, id, int(token))
        redis.call('HSET', K.attempts, id, 1)
        redis.call('HSET', K.unstarted, id, int(token))
        redis.call('ZADD', K.active, int(now + lease), id)
        redis.call('HSET', K.meta, 'vt', int(vt))
        if room > 1 then
          redis.call('HSET', K.idle, who, idle_entry(expires, room - 1, lease, channel))
        else
          redis.call('HDEL', K.idle, who)
        end
        return true
      end
    end
    redis.call('HDEL', K.idle, who)
  end
  return false
end
