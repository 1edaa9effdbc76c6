-- KEYS[1]: the handler's sliding log. ARGV: limit, periodMs, member. Returns 0 when a start is allowed, else ms to wait.
local T = redis.call('TIME')
local NOW = tonumber(T[1]) * 1000 + math.floor(tonumber(T[2]) / 1000)
local period = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', NOW - period)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return math.max(1, tonumber(oldest[2]) + period - NOW)
end
redis.call('ZADD', KEYS[1], NOW, ARGV[3])
redis.call('PEXPIRE', KEYS[1], period)
return 0
