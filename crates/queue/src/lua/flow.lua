-- Flows: parents that wait for their children (`flow.rs` says how the
-- steps fit together; `prelude.lua`, at `FLOW_CHANNEL`, how a flow's keys
-- are laid out). ARGV: operation, wake channel, ...
--   add N, then per job: ID SPEC DELAY PRIORITY GROUP PARENT PLAN NKIDS
--       REF...   jobs of flows, in this queue. PARENT is the JSON reference
--       a child keeps to its parent ('' for a root); a job with NKIDS
--       children (each REF "QUEUE ID", in order) waits for them in
--       `waiting_children`, with PLAN, the children not yet created (''
--       when none is left to create). Answers per job: its new state, or
--       `repeat` (this very job exists already: an earlier try of the same
--       step) or `exists` (another job has the id; nothing is written)
--   notify N, then per outcome: PID REF STATUS BODY ON
--       outcomes of children (REF "QUEUE ID") for parents in this queue,
--       each recorded once (answers per outcome: `applied`, `repeat` or
--       `orphan` when the parent is gone). ON says what a failure does:
--       fail (the parent fails for good), ignore (the parent waits for the
--       rest) or continue (the parent runs now)
--   spawned PID   the children of PID all exist: its plan goes
--   outbox_done ID...   outcomes delivered (`flow.rs` reads the outbox,
--       `notify`, and the plans left, `spawn`, with HSCAN)
--   children PID FROM COUNT   the parent's counts (JSON, or '' for no
--       flow), then up to COUNT children from number FROM (1-based) on:
--       number, ref, outcome ('' while pending)
--   remove ID TELL   removes a job of a flow, answering its children's refs
--       (for the caller to remove next); TELL 1 tells its parent it was
--       removed, 0 leaves the parent alone (its flow is being removed too)
local op, channel = ARGV[1], ARGV[2]
local now = now_ms()

-- A parent whose children are done (or one failed with `continue`) joins
-- the line, or waits out its own delay.
local function release(pid)
  redis.call('ZREM', K.waiting_children, pid)
  local spec = cjson.decode(redis.call('HGET', K.specs, pid))
  local delay = tonumber(spec.opts and spec.opts.delay_ms or 0) or 0
  if delay > 0 then
    redis.call('ZADD', K.delayed, now + delay, pid)
  else
    push_wait(pid)
  end
  event('waiting', pid, 'after', 'children')
  wake(channel)
end

-- A parent fails for good because a child did, with the child named.
local function fail_parent(pid, ref, reason)
  redis.call('ZREM', K.waiting_children, pid)
  local spec = cjson.decode(redis.call('HGET', K.specs, pid))
  local opts, dead_letter = effective_opts(spec)
  local attempts = tonumber(redis.call('HGET', K.attempts, pid) or '0')
  local message = 'child ' .. string.gsub(ref, ' ', '/') .. ' failed: ' .. reason
  add_error(pid, attempts, now, 'child', message)
  fail_for_good(pid, spec, opts, dead_letter, attempts, message, now)
end

if op == 'add' then
  local n = tonumber(ARGV[3])
  local full = over_bound(K.meta, K.wait, K.delayed, K.active, n)
  if full then return full end
  local out, i, woken = {}, 4, false
  for j = 1, n do
    local id, spec, delay, priority, group = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2]), ARGV[i + 3], ARGV[i + 4]
    local parent, plan, nkids = ARGV[i + 5], ARGV[i + 6], tonumber(ARGV[i + 7])
    local refs = i + 8
    i = refs + nkids
    local old = redis.call('HGET', K.specs, id)
    if old then
      -- The same step tried again finds its own job: the same parent.
      local mine = false
      if parent ~= '' then
        local ok, decoded = pcall(cjson.decode, old)
        local p = cjson.decode(parent)
        mine = ok and type(decoded.parent) == 'table' and decoded.parent.queue == p.queue and decoded.parent.id == p.id
      end
      out[j] = mine and 'repeat' or 'exists'
    else
      redis.call('HSET', K.specs, id, spec)
      if parent ~= '' then redis.call('HSET', K.parents, id, parent) end
      priority, group = place(spec, priority, group)
      if priority ~= 0 then redis.call('HSET', K.prios, id, int(priority)) end
      if group ~= '' then redis.call('HSET', K.groups, id, group) end
      if nkids > 0 then
        redis.call('ZADD', K.waiting_children, now, id)
        local members = {}
        for k = 1, nkids do
          members[2 * k - 1] = '0'
          members[2 * k] = id .. ' ' .. string.format('%07d', k) .. ' ' .. ARGV[refs + k - 1]
        end
        call_many('ZADD', K.kids, members)
        redis.call('HSET', K.fcounts, id, cjson.encode({ total = nkids, pending = nkids, completed = 0, failed = 0, removed = 0 }))
        if plan ~= '' then redis.call('HSET', K.spawn, id, plan) end
        out[j] = 'waiting_children'
      elseif delay > 0 then
        redis.call('ZADD', K.delayed, now + delay, id)
        woken = true
        out[j] = 'delayed'
      else
        push_wait(id)
        woken = true
        out[j] = 'waiting'
      end
      event('added', id)
    end
  end
  if woken then wake(channel) end
  return out
elseif op == 'notify' then
  local n = tonumber(ARGV[3])
  local out = {}
  for j = 0, n - 1 do
    local b = 4 + j * 5
    local pid, ref, status, body, on = ARGV[b], ARGV[b + 1], ARGV[b + 2], ARGV[b + 3], ARGV[b + 4]
    local counts = redis.call('HGET', K.fcounts, pid)
    local field = pid .. ' ' .. ref
    if not counts then
      out[j + 1] = 'orphan'
    elseif redis.call('HSETNX', K.vals, field, status .. ' ' .. body) == 0 then
      out[j + 1] = 'repeat'
    else
      out[j + 1] = 'applied'
      counts = cjson.decode(counts)
      counts.pending = counts.pending - 1
      counts[status] = (counts[status] or 0) + 1
      redis.call('HSET', K.fcounts, pid, cjson.encode(counts))
      if redis.call('ZSCORE', K.waiting_children, pid) then
        if status == 'failed' and on == 'fail' then
          fail_parent(pid, ref, body)
        elseif (status == 'failed' and on == 'continue') or counts.pending <= 0 then
          release(pid)
        end
      end
    end
  end
  return out
elseif op == 'spawned' then
  return redis.call('HDEL', K.spawn, ARGV[3])
elseif op == 'outbox_done' then
  local ids = {}
  for k = 3, #ARGV do ids[k - 2] = ARGV[k] end
  call_many('HDEL', K.notify, ids)
  return #ids
elseif op == 'children' then
  local pid, from, count = ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
  local counts = redis.call('HGET', K.fcounts, pid) or ''
  local out = { counts }
  if counts == '' then return out end
  local _, hi = kids_range(pid)
  local members = redis.call('ZRANGEBYLEX', K.kids, '[' .. pid .. ' ' .. string.format('%07d', from), hi, 'LIMIT', 0, count)
  local fields = {}
  for k, m in ipairs(members) do
    local ord, ref = string.match(m, '^%S+ (%d+) (%S+ %S+)$')
    out[#out + 1] = ord
    out[#out + 1] = ref
    fields[k] = pid .. ' ' .. ref
  end
  local vals = hmget_many(K.vals, fields)
  for k = 1, #members do out[#out + 1] = vals[k] or '' end
  return out
elseif op == 'remove' then
  local id, tell = ARGV[3], ARGV[4]
  local refs = {}
  if K.fcounts and redis.call('HEXISTS', K.fcounts, id) == 1 then
    local lo, hi = kids_range(id)
    for k, m in ipairs(redis.call('ZRANGEBYLEX', K.kids, lo, hi)) do
      refs[k] = string.match(m, '^%S+ %d+ (%S+ %S+)$')
    end
  end
  local existed = redis.call('HEXISTS', K.specs, id) == 1
  -- Removed with its whole flow: nothing of it is told to the parent,
  -- not even an outcome still in the outbox.
  if tell ~= '1' then
    redis.call('HDEL', K.parents, id)
    redis.call('HDEL', K.notify, id)
  end
  remove_job(id)
  if existed then event('removed', id) end
  table.insert(refs, 1, existed and 1 or 0)
  return refs
end
return redis.error_reply('flow: unknown operation ' .. tostring(op))
