-- Reads jobs for `get` and listings. ARGV: ids.
-- Returns the queue's policy JSON ('' for none), then per id: state (or ''), spec, attempts, created, result, errors,
-- logs, progress, stalls, state score (run-at, lease end or finished-at),
-- group (its producer's, or the one read at the queue's `group_from`),
-- for a flow's parent its children's counts (JSON), and the run of the
-- attempt that completed it ('STARTED_MS RUNNER').
local out = { redis.call('HGET', K.meta, 'policy') or '' }
for _, id in ipairs(ARGV) do
  local state, score = '', ''
  for i, key in ipairs(ALL_STATES) do
    local s = redis.call('ZSCORE', key, id)
    if s then state = STATE_NAMES[i]; score = s; break end
  end
  table.insert(out, state)
  for _, key in ipairs({ K.specs, K.attempts, K.created, K.results, K.errors, K.logs, K.progress, K.stalls }) do
    table.insert(out, redis.call('HGET', key, id) or '')
  end
  table.insert(out, score)
  table.insert(out, redis.call('HGET', K.groups, id) or '')
  table.insert(out, redis.call('HGET', K.fcounts, id) or '')
  table.insert(out, (K.runs and redis.call('HGET', K.runs, id)) or '')
end
return out
