-- Shared by every queue script but `push` (concatenated in front of each
-- one, after `common.lua` and the line `scripts.rs` writes: `DEFAULT_OPTS`,
-- the default job options as JSON).
-- KEYS are always the queue's fixed keys, in this order, so every script
-- declares every key it may touch (Redis Cluster: one slot, via {queue}).
local K = {
  meta = KEYS[1], wait = KEYS[2], delayed = KEYS[3], active = KEYS[4],
  completed = KEYS[5], failed = KEYS[6], specs = KEYS[7], attempts = KEYS[8],
  tokens = KEYS[9], created = KEYS[10], results = KEYS[11], errors = KEYS[12],
  logs = KEYS[13], progress = KEYS[14], stalls = KEYS[15], prios = KEYS[16],
  events = KEYS[17], rl = KEYS[18], schedules = KEYS[19], schedule_next = KEYS[20],
  groups = KEYS[21], gvt = KEYS[22], grl = KEYS[23], gscore = KEYS[24],
  idle = KEYS[25], unstarted = KEYS[26], dead = KEYS[27],
  parents = KEYS[28], notify = KEYS[29], waiting_children = KEYS[30], spawn = KEYS[31],
  kids = KEYS[32], vals = KEYS[33], fcounts = KEYS[34], stats = KEYS[35],
  runs = KEYS[36],
}
-- A producer of another language may declare the first 27 keys only: the
-- flow keys (and `stats` and `runs`) are then nil, and so is the last
-- state here (`ipairs` stops; `runs` is last in the lists below for that).
local ALL_STATES = { K.wait, K.delayed, K.active, K.completed, K.failed, K.waiting_children }
local PER_JOB = { K.specs, K.attempts, K.tokens, K.created, K.results, K.errors,
                  K.logs, K.progress, K.stalls, K.prios, K.groups, K.gscore, K.unstarted, K.runs }
-- What a finished job may still have: its lease token went when it finished.
local FINISHED = { K.specs, K.attempts, K.created, K.results, K.errors,
                   K.logs, K.progress, K.stalls, K.prios, K.groups, K.gscore, K.runs }

local function event(name, id, ...) add_event(K.events, name, id, ...) end

-- Counts jobs finished for good (`outcome`: 'c' completed, 'f' failed) for
-- the dashboard's totals and history charts (`stats.rs` reads them): an
-- all-time total, then per minute over the last 60 and per hour over the
-- last 168 (7 days) in ring slots, so the hash never grows past 687
-- fields. A slot's stamp names the minute (hour) its counts are of; one
-- stamped with an older one is started again at zero. Three to five
-- calls per batch, whatever its size.
local function count_finished(outcome, n, now)
  if not K.stats or n == 0 then return end
  redis.call('HINCRBY', K.stats, outcome, n)
  local other = 'f'
  if outcome == 'f' then other = 'c' end
  local minute, hour = math.floor(now / 60000), math.floor(now / 3600000)
  local ms, hs = 'm' .. (minute % 60), 'h' .. (hour % 168)
  local stamps = redis.call('HMGET', K.stats, ms, hs)
  if tonumber(stamps[1]) == minute then
    redis.call('HINCRBY', K.stats, ms .. outcome, n)
  else
    redis.call('HSET', K.stats, ms, int(minute), ms .. outcome, n, ms .. other, 0)
  end
  if tonumber(stamps[2]) == hour then
    redis.call('HINCRBY', K.stats, hs .. outcome, n)
  else
    redis.call('HSET', K.stats, hs, int(hour), hs .. outcome, n, hs .. other, 0)
  end
end
local function wake(channel) publish_wake(K.meta, channel) end

-- Commands over many jobs go as one call per batch rather than one per
-- job: a `redis.call` costs the Lua-to-command round trip whatever it
-- carries, and that was most of Redis's work per job. Lua's `unpack` is
-- bounded by its C stack (about 8000 values), so long lists go in pieces;
-- the step is even, so (score, member) and (field, value) pairs never split.
local UNPACK_STEP = 4000
local function call_many(cmd, key, list)
  for i = 1, #list, UNPACK_STEP do
    redis.call(cmd, key, unpack(list, i, math.min(i + UNPACK_STEP - 1, #list)))
  end
end

-- HMGET over any number of fields; a missing field reads as false.
local function hmget_many(key, fields)
  local out = {}
  for i = 1, #fields, UNPACK_STEP do
    local part = redis.call('HMGET', key, unpack(fields, i, math.min(i + UNPACK_STEP - 1, #fields)))
    for j = 1, #part do out[i + j - 1] = part[j] end
  end
  return out
end

-- Waiting order: higher priority first; within a priority, fair between
-- groups and first in, first out within a group. The second part of the
-- score is a start-time fair-queueing sequence: a job gets one more than
-- the larger of its group's last sequence and the sequence of the last job
-- handed out (`vt`). A burst of 10,000 jobs from one group lines up behind
-- itself, while a job from another group starts next to the head. Jobs
-- without a group form one group, so a queue without groups is plain FIFO.
-- The score is `score_of(priority, sequence)` (common.lua).

-- The queue's `vt` and each group's last sequence, read once per script
-- call: a batch (`enqueue`) computes many scores and writes the groups'
-- sequences once at the end (`save_seqs`); `push_wait` writes at once.
local seq_vt, last_seq = nil, {}
local function wait_score(priority, group)
  if seq_vt == nil then seq_vt = tonumber(redis.call('HGET', K.meta, 'vt') or '0') end
  local last = last_seq[group]
  if last == nil then last = tonumber(redis.call('HGET', K.gvt, group) or '0') end
  local seq = math.max(last, seq_vt) + 1
  last_seq[group] = seq
  return score_of(priority, seq)
end

local function save_seqs()
  local seqs = {}
  for group, seq in pairs(last_seq) do table.insert(seqs, group); table.insert(seqs, int(seq)) end
  call_many('HSET', K.gvt, seqs)
end

-- A new job's priority and group where its producer set none ('' or nil):
-- the queue's default priority, and the string or number at the queue's
-- JSON pointer into the payload (`group_from`), both from `meta`, read
-- once per call. A payload with nothing usable there leaves the job in no
-- group. The spec is decoded only when the queue has a pointer.
local placement = nil
local function unescape_pointer(part)
  return (string.gsub(string.gsub(part, '~1', '/'), '~0', '~'))
end
local function group_at(spec, pointer)
  local ok, decoded = pcall(cjson.decode, spec)
  if not ok or type(decoded) ~= 'table' then return nil end
  local node = decoded.payload
  for part in string.gmatch(string.sub(pointer, 2) .. '/', '([^/]*)/') do
    if type(node) ~= 'table' then return nil end
    local name = unescape_pointer(part)
    local index = tonumber(name)
    if node[name] ~= nil then node = node[name]
    elseif index and index % 1 == 0 then node = node[index + 1]
    else return nil end
  end
  if type(node) == 'number' then
    if node % 1 == 0 then return int(node) end
    return tostring(node)
  end
  if type(node) == 'string' and node ~= '' and #node <= 256 then return node end
  return nil
end
local function place(spec, priority, group)
  if placement == nil then
    local m = redis.call('HMGET', K.meta, 'default_priority', 'group_from')
    placement = { priority = tonumber(m[1] or '0') or 0, from = m[2] }
  end
  if priority == nil or priority == '' then priority = placement.priority else priority = tonumber(priority) end
  if (group == nil or group == '') and placement.from then group = group_at(spec, placement.from) or '' end
  return priority, group or ''
end

local function push_wait(id)
  -- A job that waited out its group's rate limit returns to its place.
  local saved = redis.call('HGET', K.gscore, id)
  if saved then
    redis.call('HDEL', K.gscore, id)
    redis.call('ZADD', K.wait, saved, id)
    return
  end
  local priority = tonumber(redis.call('HGET', K.prios, id) or '0')
  local group = redis.call('HGET', K.groups, id) or ''
  local score = wait_score(priority, group)
  redis.call('HSET', K.gvt, group, int(last_seq[group]))
  redis.call('ZADD', K.wait, int(score), id)
end

-- Where a job is: its state's name, or false.
local STATE_NAMES = { 'waiting', 'delayed', 'active', 'completed', 'failed', 'waiting_children' }
local function state_of(id)
  for i, key in ipairs(ALL_STATES) do
    if redis.call('ZSCORE', key, id) then return STATE_NAMES[i] end
  end
  return false
end

-- Flows (`flow.rs`, docs/queue-protocol.md). A child's queue holds its
-- link to its parent (`parents`: id -> the parent's JSON reference, with
-- what the child's failure does to it) until the child finishes; then its
-- outcome goes to the queue's outbox (`notify`: id -> "PARENT\nSTATUS\nBODY")
-- and a message to the queue's flow channel, and a runner relays it to the
-- parent's queue, another cluster slot maybe, in a script of its own
-- (`flow.lua`, `notify`), which records each child once. A parent's own
-- queue holds, per parent: its children in order (`kids`, members
-- "PID ORD QUEUE ID", all at score 0, so that one parent's are one range
-- of the set by name), their outcomes (`vals`, "PID QUEUE ID" -> "STATUS
-- BODY"), its counts (`fcounts`, JSON) and, until they exist, the
-- children still to create (`spawn`). Job ids and queue names hold no
-- space, so the separators cannot be forged.
local FLOW_CHANNEL = K.meta and string.sub(K.meta, 1, #K.meta - 4) .. 'flows'

-- A finished job's outcome for its parent, if it is a flow's child.
-- STATUS is completed, failed or removed; BODY the output or the reason.
local function flow_child_done(id, status, body)
  if not K.parents or redis.call('HLEN', K.parents) == 0 then return false end
  local parent = redis.call('HGET', K.parents, id)
  if not parent then return false end
  redis.call('HDEL', K.parents, id)
  redis.call('HSET', K.notify, id, parent .. '\n' .. status .. '\n' .. (body or ''))
  redis.call('PUBLISH', FLOW_CHANNEL, id)
  return true
end

-- One parent's range in `kids`: every member starting "PID ".
local function kids_range(pid) return '[' .. pid .. ' ', '(' .. pid .. '!' end

-- Drops what a parent's flow keeps: its children's list, outcomes and
-- counts, and any children not yet created. O(children).
local function drop_flow(pid)
  if not K.fcounts or redis.call('HDEL', K.fcounts, pid) == 0 then return end
  local lo, hi = kids_range(pid)
  local members = redis.call('ZRANGEBYLEX', K.kids, lo, hi)
  local fields = {}
  for i, m in ipairs(members) do
    local ref = string.match(m, '^%S+ %d+ (%S+ %S+)$')
    fields[i] = pid .. ' ' .. (ref or '')
  end
  call_many('HDEL', K.vals, fields)
  redis.call('ZREMRANGEBYLEX', K.kids, lo, hi)
  redis.call('HDEL', K.spawn, pid)
end

-- Removes a job in any state. A flow's child still pending tells its
-- parent it was removed (the parent no longer waits for it); a parent's
-- flow data goes with it.
local function remove_job(id)
  flow_child_done(id, 'removed', 'removed')
  drop_flow(id)
  for _, key in ipairs(ALL_STATES) do redis.call('ZREM', key, id) end
  for _, key in ipairs(PER_JOB) do redis.call('HDEL', key, id) end
  if K.dead then redis.call('ZREM', K.dead, id) end
end

-- Jobs failed for good that wait to move to the queue's dead-letter queue
-- (`dead`: id -> when it failed; `dead_letter.rs` moves them): retention
-- leaves them alone until they have moved. (`K.dead` is nil for a producer
-- of another language that declares fewer keys; only runners trim.)
local function not_pending_dead(ids)
  if not K.dead or #ids == 0 or redis.call('ZCARD', K.dead) == 0 then return ids end
  local pending = redis.call('ZMSCORE', K.dead, unpack(ids))
  local kept, n = {}, 0
  for i, id in ipairs(ids) do
    if not pending[i] then n = n + 1; kept[n] = id end
  end
  return kept
end

-- Removes jobs known to be in `set` only: one ZREM and one HDEL per hash
-- for the whole list, not a dozen commands per job. A hash that is empty
-- (no job of the queue has a priority, a group, an error...) is skipped:
-- its HLEN is one call, where the HDEL passes every id from Lua to Redis,
-- and the retention trim was the largest part of a completion's cost.
local function purge(set, ids)
  ids = not_pending_dead(ids)
  if #ids == 0 then return end
  redis.call('ZREM', set, unpack(ids))
  -- Finished parents take their flow data with them.
  if K.fcounts and redis.call('HLEN', K.fcounts) > 0 then
    local parents = hmget_many(K.fcounts, ids)
    for i, id in ipairs(ids) do
      if parents[i] then drop_flow(id) end
    end
  end
  for _, key in ipairs(FINISHED) do
    if redis.call('HLEN', key) > 0 then redis.call('HDEL', key, unpack(ids)) end
  end
end

-- Keeps at most `count` members of a finished set and none older than
-- `age_ms`, removing at most 1000 jobs per call so that no call is long;
-- later calls finish the work.
local function retain(set, count, age_ms, now)
  local budget = 1000
  if age_ms > 0 then
    local old = redis.call('ZRANGEBYSCORE', set, '-inf', now - age_ms, 'LIMIT', 0, budget)
    purge(set, old)
    budget = budget - #old
  end
  if count >= 0 and budget > 0 then
    local excess = redis.call('ZCARD', set) - count
    if excess > 0 then
      purge(set, redis.call('ZRANGE', set, 0, math.min(excess, budget) - 1))
    end
  end
end

-- The delay before attempt `attempts + 1`, from the job's backoff policy.
local function backoff_ms(backoff, attempts, rnd)
  if type(backoff) ~= 'table' or backoff.type == 'none' then return 0 end
  local delay = tonumber(backoff.delay_ms) or 0
  if backoff.type == 'exponential' then
    delay = delay * (2 ^ (attempts - 1))
    local cap = tonumber(backoff.max_delay_ms) or 0
    if cap > 0 and delay > cap then delay = cap end
  end
  local jitter = tonumber(backoff.jitter) or 0
  if jitter > 0 then delay = delay * (1 - jitter * rnd) end
  return math.floor(delay)
end

-- After a failed attempt (or a stall): retry per the policy, or fail for good.
-- Returns the new state and, when delayed, the time it runs.
-- A job's options in effect: a spec stores only the options its producer
-- set; the rest come from the queue's policy as it is now (`policy.rs`),
-- then the defaults. Also the policy's dead-letter queue.
local function effective_opts(spec)
  local opts = spec.opts or {}
  local policy = redis.call('HGET', K.meta, 'policy')
  local dead_letter = nil
  if policy then
    policy = cjson.decode(policy)
    dead_letter = policy.dead_letter
    for name, value in pairs(policy) do
      if opts[name] == nil then opts[name] = value end
    end
  end
  for name, value in pairs(cjson.decode(DEFAULT_OPTS)) do
    if opts[name] == nil then opts[name] = value end
  end
  return opts, dead_letter
end

-- Appends one failed attempt to a job's errors (the last 25 are kept).
-- `run`, when the runner sent it: 'STARTED_MS RUNNER', the attempt's start
-- and the runner it ran on.
local function add_error(id, attempt, now, kind, message, run)
  local errors = cjson.decode(redis.call('HGET', K.errors, id) or '[]')
  local entry = { attempt = attempt, at = now, kind = kind, error = message }
  if run then
    local started, runner = string.match(run, '^(%d+) (.+)$')
    if started then entry.started = tonumber(started); entry.runner = runner end
  end
  table.insert(errors, entry)
  while #errors > 25 do table.remove(errors, 1) end
  redis.call('HSET', K.errors, id, cjson.encode(errors))
end

-- A job (out of every other state) failed for good.
local function fail_for_good(id, spec, opts, dead_letter, attempts, message, now)
  redis.call('ZADD', K.failed, now, id)
  redis.call('HSET', K.results, id, cjson.encode({ failed_reason = message, attempts = attempts }))
  event('failed', id, 'reason', message, 'attempts', attempts)
  count_finished('f', 1, now)
  -- Bound for the dead-letter queue: noted, to be moved by a runner
  -- (another slot of a cluster, so not in this script), and kept from
  -- retention until then. Not a job already moved out of one.
  if type(dead_letter) == 'string' and K.dead and not spec.dead_letter then
    redis.call('ZADD', K.dead, now, id)
  end
  flow_child_done(id, 'failed', message)
  local keep = opts.keep_failed or {}
  -- A null count or age (JSON null) means no limit on that side.
  local count, age = keep.count, keep.age_ms
  if type(count) ~= 'number' then count = -1 end
  if type(age) ~= 'number' then age = 0 end
  retain(K.failed, count, age, now)
end

local function retry_or_fail(id, attempts, kind, delay_ms, message, now, rnd, channel, run)
  local spec = cjson.decode(redis.call('HGET', K.specs, id))
  local opts, dead_letter = effective_opts(spec)
  local max = tonumber(opts.attempts) or 1
  add_error(id, attempts, now, kind, message, run)
  if kind == 'permanent' or attempts >= max then
    fail_for_good(id, spec, opts, dead_letter, attempts, message, now)
    return { 'failed', 0 }
  end
  local delay = delay_ms
  if kind ~= 'retry_after' then delay = backoff_ms(opts.backoff, attempts, rnd) end
  if delay > 0 then
    -- Due before every other delayed job: a consumer asleep until a later
    -- due time (its job's lease end, as often as not) must wake to learn
    -- this one, as for a delayed enqueue; else a 100 ms backoff waited out
    -- the consumer's whole sleep.
    local head = redis.call('ZRANGE', K.delayed, 0, 0, 'WITHSCORES')
    if not head[2] or now + delay < tonumber(head[2]) then wake(channel) end
    redis.call('ZADD', K.delayed, now + delay, id)
    event('retrying', id, 'delay_ms', delay, 'attempts', attempts)
    return { 'delayed', now + delay }
  end
  push_wait(id)
  event('retrying', id, 'delay_ms', 0, 'attempts', attempts)
  wake(channel)
  return { 'waiting', 0 }
end
