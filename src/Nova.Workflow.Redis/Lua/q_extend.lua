-- KEYS: the queue's keys (q_record.lua). ARGV: leaseMs, then (id, token) pairs. Returns 1 per lease still held.
local T = redis.call('TIME')
local NOW = tonumber(T[1]) * 1000 + math.floor(tonumber(T[2]) / 1000)
local out = {}
for k = 2, #ARGV, 2 do
  if rec_token(redis.call('HGET', KEYS[5], ARGV[k])) == ARGV[k + 1] then
    redis.call('ZADD', KEYS[4], 'XX', NOW + tonumber(ARGV[1]), ARGV[k])
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
