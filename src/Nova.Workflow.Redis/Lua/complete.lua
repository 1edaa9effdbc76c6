-- ARGV: nodeId, attempt, token, outcome (0 succeeded, 1 failed, 2 review), finalAttempt, startedAtMs, output,
-- taken, errorJson, errorType, errorMessage, timedOut, retryAtMs, prior-attempt count P, P history JSON entries,
-- then (fused variant) the enqueue/ack arguments.
if not execStatus then return { 1 } end
local i = tonumber(redis.call('HGET', S, 'n2i:' .. ARGV[1]))
if not i or finished() or nnum('s', i) ~= 2 or nget('t', i) ~= ARGV[3] or nnum('a', i) ~= tonumber(ARGV[2]) then return { 1 } end
local priors = tonumber(ARGV[14])
for k = 15, 14 + priors do redis.call('RPUSH', H, ARGV[k]) end
local attempt = tonumber(ARGV[5])
local started = tonumber(ARGV[6])
if priors == 0 then started = nnum('sa', i) or started end
local worker = nget('w', i)
redis.call('HSET', S, 'a' .. i, attempt, 'l' .. i, 0, 't' .. i, '')
local outcome = ARGV[4]
if outcome == '0' then
  history(i, attempt, 0, started, NOW, worker, false, false)
  redis.call('HSET', S, 'o' .. i, ARGV[7])
  finish(i, 3, 3)
  local taken = ARGV[8]
  if taken == '' then taken = false end
  propagate(i, taken)
elseif outcome == '2' then
  history(i, attempt, 5, started, NOW, worker, ARGV[10], ARGV[11])
  redis.call('HSET', S, 's' .. i, 7, 'e' .. i, ARGV[9])
  redis.call('HINCRBY', X, 'rv', 1)
  ev(8, i, attempt, ARGV[11])
  if execStatus == 1 then
    execStatus = 2
    redis.call('HSET', X, 'st', 2)
    ev(9, -1, 0, 'Awaiting review of ' .. ARGV[1])
  end
else
  local status = 2
  if ARGV[12] == '1' then status = 3 elseif ARGV[13] ~= '' then status = 1 end
  history(i, attempt, status, started, NOW, worker, ARGV[10], ARGV[11])
  redis.call('HSET', S, 'e' .. i, ARGV[9])
  if ARGV[13] ~= '' then
    ev(4, i, attempt, ARGV[11])
    queue(i, attempt + 1, tonumber(ARGV[13]), false)
  else
    fail_node(i, ARGV[9], ARGV[11])
  end
end
check_finished()
if FUSED then
  fused_enqueue(15 + priors, 3)
  return result(0, continued)
end
return result(0)
