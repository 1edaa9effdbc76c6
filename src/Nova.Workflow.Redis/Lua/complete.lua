-- Completes one attempt of the bound execution. Its arguments are ARGV[a + 1] onwards: nodeId, attempt, token, outcome
-- (0 succeeded, 1 failed, 2 review), finalAttempt, startedAtMs, output, taken, errorJson, errorType, errorMessage, timedOut,
-- retryAtMs, prior-attempt count P, P history JSON entries, then (fused variant) the enqueue/ack arguments, whose queue
-- keys follow KEYS[kb].
local function complete(a, kb)
  if not execStatus then return { 1 } end
  local node, token, outcome = ARGV[a + 1], ARGV[a + 3], ARGV[a + 4]
  local i = nidx(node)
  if not i or finished() then return { 1 } end
  local x = IX[i]
  local row = redis.call('HMGET', S, 's' .. x, 't' .. x, 'a' .. x, 'sa' .. x, 'w' .. x)
  if tonumber(row[1]) ~= 2 or row[2] ~= token or tonumber(row[3]) ~= tonumber(ARGV[a + 2]) then return { 1 } end
  ids[i] = node
  local priors = tonumber(ARGV[a + 14])
  for k = a + 15, a + 14 + priors do push_history(ARGV[k]) end
  local attempt = tonumber(ARGV[a + 5])
  local started = tonumber(ARGV[a + 6])
  if priors == 0 then started = tonumber(row[4]) or started end
  local worker = row[5]
  if outcome == '0' then
    history(i, attempt, 0, started, NOW, worker, false, false)
    -- The attempt, the output and (finish) the status in one write.
    finish(i, 3, 3, nil, attempt, { 'a' .. x, ARGV[a + 5], 'l' .. x, '0', 'o' .. x, ARGV[a + 7] })
    outputs[i] = ARGV[a + 7]
    local taken = ARGV[a + 8]
    if taken == '' then taken = false end
    propagate(i, taken, 3)
  elseif outcome == '2' then
    history(i, attempt, 5, started, NOW, worker, ARGV[a + 10], ARGV[a + 11])
    redis.call('HSET', S, 'a' .. x, ARGV[a + 5], 'l' .. x, '0', 't' .. x, '', 's' .. x, '7', 'e' .. x, ARGV[a + 9])
    redis.call('HINCRBY', X, 'rv', 1)
    ev(8, i, attempt, ARGV[a + 11])
    if execStatus == 1 then
      execStatus = 2
      redis.call('HSET', X, 'st', 2)
      ev(9, -1, 0, 'Awaiting review of ' .. node)
    end
  else
    local status = 2
    local retryAt = ARGV[a + 13]
    if ARGV[a + 12] == '1' then status = 3 elseif retryAt ~= '' then status = 1 end
    history(i, attempt, status, started, NOW, worker, ARGV[a + 10], ARGV[a + 11])
    redis.call('HSET', S, 'a' .. x, ARGV[a + 5], 'l' .. x, '0', 't' .. x, '', 'e' .. x, ARGV[a + 9])
    if retryAt ~= '' then
      ev(4, i, attempt, ARGV[a + 11])
      queue(i, attempt + 1, tonumber(retryAt), false)
    else
      fail_node(i, ARGV[a + 9], ARGV[a + 11])
    end
  end
  check_finished()
  if FUSED then
    continued = {}
    fused_enqueue(a + 15 + priors, kb)
    return result(0, continued)
  end
  return result(0)
end
