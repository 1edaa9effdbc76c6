-- KEYS: ready, age, delayed, leased, jobs, meta, score, token, deliveries.
-- ARGV: max, leaseMs, fairness interval, then one fresh lease token per job.
-- Returns (payload, token, deliveries, leaseExpiresMs, id) per job.
local T = redis.call('TIME')
local NOW = tonumber(T[1]) * 1000 + math.floor(tonumber(T[2]) / 1000)
local ready, age, delayed, leased, jobs, meta, sc, tk, dl = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local function make_ready(id)
  local score = redis.call('HGET', sc, id)
  if not score then return end
  redis.call('ZADD', ready, score, id)
  redis.call('ZADD', age, string.format('%.0f', tonumber(score) % 1e13), id)
end
for _, id in ipairs(redis.call('ZRANGEBYSCORE', delayed, '-inf', NOW, 'LIMIT', 0, 1000)) do
  redis.call('ZREM', delayed, id)
  make_ready(id)
end
-- Leases that lapsed: their worker died or froze; deliver them again.
for _, id in ipairs(redis.call('ZRANGEBYSCORE', leased, '-inf', NOW, 'LIMIT', 0, 1000)) do
  redis.call('ZREM', leased, id)
  redis.call('HDEL', tk, id)
  make_ready(id)
end
local out = {}
local lease = NOW + tonumber(ARGV[2])
local fairness = tonumber(ARGV[3])
for n = 1, tonumber(ARGV[1]) do
  local taken = redis.call('HINCRBY', meta, 'taken', 1)
  local pick
  if taken % fairness == 0 then pick = redis.call('ZRANGE', age, 0, 0) else pick = redis.call('ZRANGE', ready, 0, 0) end
  local id = pick[1]
  if not id then
    redis.call('HINCRBY', meta, 'taken', -1)
    break
  end
  redis.call('ZREM', ready, id)
  redis.call('ZREM', age, id)
  local token = ARGV[3 + n]
  local d = redis.call('HINCRBY', dl, id, 1)
  redis.call('HSET', tk, id, token)
  redis.call('ZADD', leased, lease, id)
  out[#out + 1] = redis.call('HGET', jobs, id) or ''
  out[#out + 1] = token
  out[#out + 1] = d
  out[#out + 1] = lease
  out[#out + 1] = id
end
return out
