-- Completes a batch of leased jobs. A job whose token is not the current
-- one (its lease expired and it was handed to someone else, or it was
-- removed) is refused, so a stale worker can never complete it.
-- ARGV: count, keep count, keep age ms, fields per job (6, 3, 5 or 2), then
-- per job: id, token, and with 6 or 5, result JSON ('' for none), progress
-- (-1: none), log JSON ('' for none); then with 6 or 3, the attempt's run,
-- 'STARTED_MS RUNNER' (written to `runs` as it is, for the dashboard's
-- durations and timeline). Three fields are the short layout, for a batch
-- whose jobs have no result, progress or log (a no-op's): Redis makes a Lua
-- string of every argument, and three of six per job were empty. (5 and 2
-- are the layouts of runners before `runs`, which send no run.)
-- After the jobs, optionally: a count of start marks, then id, token
-- pairs: jobs of the same runner that started and have not finished (see
-- `common.lua`; a batch of marks alone has a count of 0 jobs).
-- Returns per job: 1 completed, 0 refused.
-- The batch's reads and writes are one call each (see `call_many`), and
-- its `completed` event is one entry. Lists grow by counters rather than
-- `table.insert`, a function call per element.
local n, keep_count, keep_age, width = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local marks_at = 5 + (n or 0) * (width or 0)
local marks = tonumber(ARGV[marks_at] or '0')
local full, has_run = width == 6 or width == 5, width == 6 or width == 3
if not n or not (full or has_run or width == 2) or not marks
    or (#ARGV ~= 4 + n * width and #ARGV ~= marks_at + 2 * marks) then
  return redis.error_reply('complete: ' .. #ARGV .. ' arguments for ' .. tostring(n) .. ' jobs of ' .. tostring(ARGV[4]) .. ' fields and ' .. tostring(ARGV[marks_at]) .. ' start marks')
end
-- The start marks: a mark whose lease is current clears the job's
-- unstarted mark, so that a stall of its lease now spends its attempt.
if marks > 0 and redis.call('HLEN', K.unstarted) > 0 then
  local ids = {}
  for i = 1, marks do ids[i] = ARGV[marks_at + 2 * i - 1] end
  local held = hmget_many(K.tokens, ids)
  local started, ns = {}, 0
  for i = 1, marks do
    if held[i] == ARGV[marks_at + 2 * i] then ns = ns + 1; started[ns] = ids[i] end
  end
  call_many('HDEL', K.unstarted, started)
end
local now = now_ms()
local now_s = int(now)
local ids = {}
for i = 1, n do ids[i] = ARGV[5 + (i - 1) * width] end
local current = hmget_many(K.tokens, ids)
local out, done, seen, at = {}, {}, {}, {}
local finished, results, progress, logs, runs = {}, {}, {}, {}, {}
local nd, nr, np, nl, nru = 0, 0, 0, 0, 0
for i = 1, n do
  local b = 5 + (i - 1) * width
  local id = ids[i]
  -- The same job twice in one batch: the second finds its lease spent.
  if current[i] ~= ARGV[b + 1] or seen[id] then
    out[i] = 0
  else
    seen[id] = true
    out[i] = 1
    nd = nd + 1
    done[nd] = id
    at[nd] = b
    finished[2 * nd - 1] = now_s
    finished[2 * nd] = id
    if has_run and ARGV[b + width - 1] ~= '' then
      runs[nru + 1] = id; runs[nru + 2] = ARGV[b + width - 1]; nru = nru + 2
    end
    if full then
      if ARGV[b + 2] ~= '' then
        results[nr + 1] = id; results[nr + 2] = ARGV[b + 2]; nr = nr + 2
      end
      if ARGV[b + 3] ~= '-1' then
        progress[np + 1] = id; progress[np + 2] = ARGV[b + 3]; np = np + 2
      end
      if ARGV[b + 4] ~= '' then
        logs[nl + 1] = id; logs[nl + 2] = ARGV[b + 4]; nl = nl + 2
      end
    end
  end
end
if nd > 0 then
  call_many('HDEL', K.tokens, done)
  if redis.call('HLEN', K.unstarted) > 0 then call_many('HDEL', K.unstarted, done) end
  call_many('ZREM', K.active, done)
  call_many('ZADD', K.completed, finished)
  count_finished('c', nd, now)
  call_many('HSET', K.results, results)
  call_many('HSET', K.progress, progress)
  call_many('HSET', K.logs, logs)
  if K.runs then call_many('HSET', K.runs, runs) end
  -- Children of flows tell their parents, with their outputs
  -- (`flow_child_done`); a queue with no pending child pays one HLEN.
  if K.parents and redis.call('HLEN', K.parents) > 0 then
    local linked = hmget_many(K.parents, done)
    for i = 1, nd do
      if linked[i] then
        local result = ''
        if full then result = ARGV[at[i] + 2] end
        flow_child_done(done[i], 'completed', result)
      end
    end
  end
  -- One event for the batch: its ids, space-separated (an id has no space).
  if nd == 1 then
    event('completed', done[1])
  else
    event('completed', done[1], 'count', nd, 'ids', table.concat(done, ' '))
  end
end
-- A batch of marks alone finished no job: nothing to trim.
if n > 0 then retain(K.completed, keep_count, keep_age, now) end
return out
