-- KEYS: index (zset), entries (hash). ARGV: add id json | take id.
if ARGV[1] == 'add' then
  local T = redis.call('TIME')
  redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
  redis.call('ZADD', KEYS[1], tonumber(T[1]) * 1000 + math.floor(tonumber(T[2]) / 1000), ARGV[2])
  return 1
end
local entry = redis.call('HGET', KEYS[2], ARGV[2])
if not entry then return false end
redis.call('HDEL', KEYS[2], ARGV[2])
redis.call('ZREM', KEYS[1], ARGV[2])
return entry
