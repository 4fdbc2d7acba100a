-- Extends the leases of jobs still held with their current token.
-- ARGV: lease ms, count, then id, token pairs. Returns per job: 1 or 0 (lost).
local lease, n = tonumber(ARGV[1]), tonumber(ARGV[2])
local now = now_ms()
local out = {}
for i = 0, n - 1 do
  local id, token = ARGV[3 + i * 2], ARGV[4 + i * 2]
  if redis.call('HGET', K.tokens, id) == token then
    redis.call('ZADD', K.active, 'XX', now + lease, id)
    table.insert(out, 1)
  else
    table.insert(out, 0)
  end
end
return out
