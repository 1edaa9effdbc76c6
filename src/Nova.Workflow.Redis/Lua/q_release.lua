-- KEYS: the queue's keys (q_record.lua). ARGV: wake channel, id, token, delayMs. Gives a leased job back: ready again, or
-- delayed by delayMs; the lease it had does not count as a delivery.
local T = redis.call('TIME')
local NOW = tonumber(T[1]) * 1000 + math.floor(tonumber(T[2]) / 1000)
local id = ARGV[2]
local v = redis.call('HGET', KEYS[5], id)
if not v then return 0 end
local score, dl, tk, payload = rec_parse(v)
if not score or tk ~= ARGV[3] then return 0 end
redis.call('ZREM', KEYS[4], id)
redis.call('HSET', KEYS[5], id, rec(score, math.max(dl - 1, 0), '', payload))
local delay = tonumber(ARGV[4])
if delay > 0 then
  redis.call('ZADD', KEYS[3], NOW + delay, id)
else
  redis.call('ZADD', KEYS[1], score, id)
  if redis.call('HDEL', KEYS[6], 'idle') == 1 then redis.call('PUBLISH', ARGV[1], '1') end
end
return 1
