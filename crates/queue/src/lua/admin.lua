-- Operations on one job or the whole queue. ARGV: operation, wake channel, ...
--   retry ID            a failed job back to waiting, with its attempts reset
--                       (answers `retried`, or the job's state if it was not failed,
--                       or `dead_letter` for a dead letter, which goes back to its
--                       own queue instead: `dead_letter.rs`)
--   retry_failed LIMIT OFFSET  up to LIMIT failed jobs from OFFSET on back to
--                       waiting, dead letters left; returns how many, and how many
--                       dead letters it passed
--   dead_letter_in ID SPEC ERRORS ATTEMPTS REASON FROM
--                       a dead letter from queue FROM, kept failed (`added`, or
--                       the state of a job that had the id: a move done before).
--                       A letter of an earlier failure of the same job (its
--                       retry under way) is replaced (`replaced`)
--   dead_letter_remove ID FAILED_AT
--                       removes the letter ID if it is still that of the failure
--                       at FAILED_AT (`removed`; `newer` if a later failure's
--                       letter replaced it; `missing`)
--   dead_letter_out ID TO  a job moved to queue TO removed here (`moved`, or
--                       `gone` if it was not waiting to move)
--   remove ID           removes a job in any state (a worker holding it is refused at ack)
--   promote ID          a delayed job runs now (answers `promoted`, or the job's state)
--   pause | resume
--   drain LIMIT         removes up to LIMIT waiting and delayed jobs; returns how many
--   clean SET AGE LIMIT removes up to LIMIT completed or failed jobs finished AGE ms ago or more
--   rate_limit MAX WINDOW_MS   at most MAX jobs per window (MAX 0: no limit)
--   group_rate_limit MAX WINDOW_MS   the same, per group
--   max_waiting MAX     enqueues refused past MAX jobs waiting, delayed or leased (0: no bound)
--   policy JSON PRIORITY GROUP_FROM RL_MAX RL_WINDOW GRL_MAX GRL_WINDOW
--                       the queue's policy (`policy.rs`): the JSON for
--                       `retry_or_fail` and the readers, the default priority
--                       and the group's JSON pointer for `place`, the rate
--                       limits (MAX 0: none), all in one call
local op, channel = ARGV[1], ARGV[2]
local now = now_ms()

-- Whether a job is a dead letter (moved here from another queue).
local function is_dead_letter(id)
  local spec = redis.call('HGET', K.specs, id)
  return spec ~= false and cjson.decode(spec).dead_letter ~= nil
end

-- A failed job back to waiting, with its attempts and result reset (and no
-- longer bound for the dead-letter queue).
local function requeue_failed(id)
  redis.call('ZREM', K.failed, id)
  if K.dead then redis.call('ZREM', K.dead, id) end
  redis.call('HSET', K.attempts, id, 0)
  redis.call('HDEL', K.results, id)
  push_wait(id)
end

if op == 'retry' then
  local id = ARGV[3]
  if not redis.call('ZSCORE', K.failed, id) then return state_of(id) or 'missing' end
  if is_dead_letter(id) then return 'dead_letter' end
  requeue_failed(id)
  event('retried', id)
  wake(channel)
  return 'retried'
elseif op == 'retry_failed' then
  local offset = tonumber(ARGV[4] or '0')
  local ids = redis.call('ZRANGE', K.failed, offset, offset + tonumber(ARGV[3]) - 1)
  local n, passed = 0, 0
  for _, id in ipairs(ids) do
    if is_dead_letter(id) then passed = passed + 1 else requeue_failed(id); n = n + 1 end
  end
  if n > 0 then event('retried', '*', 'count', n); wake(channel) end
  return { n, passed }
elseif op == 'dead_letter_in' then
  local id = ARGV[3]
  local answer = 'added'
  if redis.call('HSETNX', K.specs, id, ARGV[4]) == 0 then
    -- The same move again finds its own letter: nothing to write. A letter
    -- of an earlier failure is one whose retry sent the job back and has
    -- not removed it yet: this later failure takes its place, or the
    -- retry's removal would take both.
    local old = cjson.decode(redis.call('HGET', K.specs, id)).dead_letter
    local new = cjson.decode(ARGV[4]).dead_letter
    if not (old and new and new.failed_at > old.failed_at) then return state_of(id) or 'exists' end
    remove_job(id)
    redis.call('HSET', K.specs, id, ARGV[4])
    answer = 'replaced'
  end
  redis.call('HSET', K.errors, id, ARGV[5])
  redis.call('HSET', K.attempts, id, ARGV[6])
  redis.call('HSET', K.results, id, cjson.encode({ failed_reason = ARGV[7], attempts = tonumber(ARGV[6]) }))
  redis.call('ZADD', K.failed, now, id)
  event('dead_letter', id, 'from', ARGV[8])
  return answer
elseif op == 'dead_letter_remove' then
  local id = ARGV[3]
  local spec = redis.call('HGET', K.specs, id)
  if not spec then return 'missing' end
  local letter = cjson.decode(spec).dead_letter
  if not letter or letter.failed_at ~= tonumber(ARGV[4]) then return 'newer' end
  remove_job(id)
  event('removed', id)
  return 'removed'
elseif op == 'dead_letter_out' then
  local id = ARGV[3]
  if not redis.call('ZSCORE', K.dead, id) then return 'gone' end
  remove_job(id)
  event('dead_lettered', id, 'to', ARGV[4])
  return 'moved'
elseif op == 'remove' then
  local state = state_of(ARGV[3])
  if not state then return 'missing' end
  remove_job(ARGV[3])
  event('removed', ARGV[3])
  return state
elseif op == 'promote' then
  local id = ARGV[3]
  if not redis.call('ZSCORE', K.delayed, id) then return state_of(id) or 'missing' end
  redis.call('ZREM', K.delayed, id)
  push_wait(id)
  event('promoted', id)
  wake(channel)
  return 'promoted'
elseif op == 'pause' then
  redis.call('HSET', K.meta, 'paused', '1')
  event('paused', '*')
  return 'paused'
elseif op == 'resume' then
  redis.call('HSET', K.meta, 'paused', '0')
  event('resumed', '*')
  wake(channel)
  return 'resumed'
elseif op == 'drain' then
  local limit, removed = tonumber(ARGV[3]), 0
  for _, set in ipairs({ K.wait, K.delayed }) do
    local ids = redis.call('ZRANGE', set, 0, limit - removed - 1)
    purge(set, ids)
    removed = removed + #ids
    if removed >= limit then break end
  end
  return removed
elseif op == 'clean' then
  local set = K.completed
  if ARGV[3] == 'failed' then set = K.failed end
  local ids = redis.call('ZRANGEBYSCORE', set, '-inf', now - tonumber(ARGV[4]), 'LIMIT', 0, tonumber(ARGV[5]))
  purge(set, ids)
  return #ids
elseif op == 'rate_limit' then
  redis.call('HSET', K.meta, 'rl_max', ARGV[3], 'rl_window_ms', ARGV[4])
  return 'ok'
elseif op == 'max_waiting' then
  redis.call('HSET', K.meta, 'max_waiting', ARGV[3])
  return 'ok'
elseif op == 'policy' then
  redis.call('HSET', K.meta, 'policy', ARGV[3], 'rl_max', ARGV[6], 'rl_window_ms', ARGV[7],
    'grl_max', ARGV[8], 'grl_window_ms', ARGV[9])
  if tonumber(ARGV[4]) ~= 0 then redis.call('HSET', K.meta, 'default_priority', ARGV[4])
  else redis.call('HDEL', K.meta, 'default_priority') end
  if ARGV[5] ~= '' then redis.call('HSET', K.meta, 'group_from', ARGV[5])
  else redis.call('HDEL', K.meta, 'group_from') end
  if tonumber(ARGV[8]) == 0 then redis.call('DEL', K.grl) end
  return 'ok'
elseif op == 'group_rate_limit' then
  redis.call('HSET', K.meta, 'grl_max', ARGV[3], 'grl_window_ms', ARGV[4])
  if tonumber(ARGV[3]) == 0 then redis.call('DEL', K.grl) end
  return 'ok'
end
return redis.error_reply('unknown operation ' .. tostring(op))
