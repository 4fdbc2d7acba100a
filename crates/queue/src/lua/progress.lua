-- Records a leased job's progress while it runs. ARGV: id, token, percent.
if redis.call('HGET', K.tokens, ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HSET', K.progress, ARGV[1], ARGV[3])
event('progress', ARGV[1], 'progress', ARGV[3])
return 1
