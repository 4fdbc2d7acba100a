-- Reads jobs for `get` and listings. ARGV: ids.
-- Returns per id: state (or ''), spec, attempts, created, result, errors,
-- logs, progress, stalls, state score (run-at, lease end or finished-at).
local out = {}
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
end
return out
