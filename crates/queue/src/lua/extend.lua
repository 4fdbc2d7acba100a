-- Extends the leases of jobs still held with their current token. A job
-- whose lease is held is running, so its unstarted mark goes too (for a
-- long job, this call may be the first to say it started).
-- ARGV: lease ms, count, then id, token pairs. Returns per job: 1 (held and
-- extended), 0 (taken: another lease holds the job) or 2 (ended: no lease
-- holds it, the job having finished, gone back to wait, or been removed).
-- A runner tells a completion that Redis recorded before this call (2) from
-- a job another runner now runs (0).
local lease, n = tonumber(ARGV[1]), tonumber(ARGV[2])
local now = now_ms()
local out, held, nh = {}, {}, 0
for i = 0, n - 1 do
  local id, token = ARGV[3 + i * 2], ARGV[4 + i * 2]
  local current = redis.call('HGET', K.tokens, id)
  if current == token then
    redis.call('ZADD', K.active, 'XX', now + lease, id)
    nh = nh + 1
    held[nh] = id
    out[i + 1] = 1
  elseif current then
    out[i + 1] = 0
  else
    out[i + 1] = 2
  end
end
if nh > 0 and redis.call('HLEN', K.unstarted) > 0 then call_many('HDEL', K.unstarted, held) end
return out
