-- Completes a batch of leased jobs. A job whose token is not the current
-- one (its lease expired and it was handed to someone else, or it was
-- removed) is refused, so a stale worker can never complete it.
-- ARGV: count, keep count, keep age ms, then per job: id, token, result
-- JSON ('' for none), progress (-1: none), log JSON ('' for none).
-- Returns per job: 1 completed, 0 refused.
-- The batch's reads and writes are one call each (see `call_many`), and
-- its `completed` event is one entry.
local n, keep_count, keep_age = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local now = now_ms()
local now_s = int(now)
local ids = {}
for i = 1, n do ids[i] = ARGV[4 + (i - 1) * 5] end
local current = hmget_many(K.tokens, ids)
local out, done, seen = {}, {}, {}
local finished, results, progress, logs = {}, {}, {}, {}
for i = 1, n do
  local b = 4 + (i - 1) * 5
  local id = ids[i]
  -- The same job twice in one batch: the second finds its lease spent.
  if current[i] ~= ARGV[b + 1] or seen[id] then
    out[i] = 0
  else
    seen[id] = true
    out[i] = 1
    table.insert(done, id)
    table.insert(finished, now_s); table.insert(finished, id)
    if ARGV[b + 2] ~= '' then table.insert(results, id); table.insert(results, ARGV[b + 2]) end
    if ARGV[b + 3] ~= '-1' then table.insert(progress, id); table.insert(progress, ARGV[b + 3]) end
    if ARGV[b + 4] ~= '' then table.insert(logs, id); table.insert(logs, ARGV[b + 4]) end
  end
end
if #done > 0 then
  call_many('HDEL', K.tokens, done)
  call_many('ZREM', K.active, done)
  call_many('ZADD', K.completed, finished)
  call_many('HSET', K.results, results)
  call_many('HSET', K.progress, progress)
  call_many('HSET', K.logs, logs)
  -- One event for the batch: its ids, space-separated (an id has no space).
  if #done == 1 then
    event('completed', done[1])
  else
    event('completed', done[1], 'count', #done, 'ids', table.concat(done, ' '))
  end
end
retain(K.completed, keep_count, keep_age, now)
return out
