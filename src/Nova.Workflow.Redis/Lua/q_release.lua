-- KEYS: ready, age, delayed, leased, token, deliveries, score, meta. ARGV: wake channel, id, token, delayMs.
local T = redis.call('TIME')
local NOW = tonumber(T[1]) * 1000 + math.floor(tonumber(T[2]) / 1000)
local id = ARGV[2]
if redis.call('HGET', KEYS[5], id) ~= ARGV[3] then return 0 end
redis.call('ZREM', KEYS[4], id)
redis.call('HDEL', KEYS[5], id)
redis.call('HINCRBY', KEYS[6], id, -1)
local delay = tonumber(ARGV[4])
if delay > 0 then
  redis.call('ZADD', KEYS[3], NOW + delay, id)
else
  local score = redis.call('HGET', KEYS[7], id)
  redis.call('ZADD', KEYS[1], score, id)
  redis.call('ZADD', KEYS[2], string.format('%.0f', tonumber(score) % 1e13), id)
  if redis.call('HDEL', KEYS[8], 'idle') == 1 then redis.call('PUBLISH', ARGV[1], '1') end
end
return 1
