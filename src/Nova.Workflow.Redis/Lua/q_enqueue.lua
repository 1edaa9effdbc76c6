-- KEYS: ready, age, delayed, jobs, meta, score. ARGV: wake channel, then (id, payload, priority, notBeforeMs) quads.
-- A job id is execution:node:attempt, so HSETNX drops a job that is already waiting or leased.
local T = redis.call('TIME')
local NOW = tonumber(T[1]) * 1000 + math.floor(tonumber(T[2]) / 1000)
local wake = false
for k = 2, #ARGV, 4 do
  local id = ARGV[k]
  if redis.call('HSETNX', KEYS[4], id, ARGV[k + 1]) == 1 then
    local seq = redis.call('HINCRBY', KEYS[5], 'seq', 1)
    local score = string.format('%.0f', (9 - tonumber(ARGV[k + 2])) * 1e13 + seq)
    redis.call('HSET', KEYS[6], id, score)
    local nb = tonumber(ARGV[k + 3])
    if nb > NOW then
      redis.call('ZADD', KEYS[3], nb, id)
    else
      redis.call('ZADD', KEYS[1], score, id)
      redis.call('ZADD', KEYS[2], seq, id)
      wake = true
    end
  end
end
-- A wake-up only when a worker waits on the queue (q_idle.lua marked it idle); HDEL takes the mark.
if wake and redis.call('HDEL', KEYS[5], 'idle') == 1 then redis.call('PUBLISH', ARGV[1], '1') end
return 0
