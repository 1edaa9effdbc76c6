-- KEYS: the queue's keys (q_record.lua). ARGV: wake channel, then (id, payload, priority, notBeforeMs) quads.
local T = redis.call('TIME')
local NOW = tonumber(T[1]) * 1000 + math.floor(tonumber(T[2]) / 1000)
local wake = false
for k = 2, #ARGV, 4 do
  local nb = tonumber(ARGV[k + 3])
  if q_put(1, ARGV[k], ARGV[k + 1], tonumber(ARGV[k + 2]), nb, NOW) and nb <= NOW then wake = true end
end
-- A wake-up only when a worker waits on the queue (q_idle.lua marked it idle); HDEL takes the mark.
if wake and redis.call('HDEL', KEYS[6], 'idle') == 1 then redis.call('PUBLISH', ARGV[1], '1') end
return 0
