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
  local r = node_read(i)
  if r[1] ~= 2 or r[5] ~= token or tonumber(r[2]) ~= tonumber(ARGV[a + 2]) then return { 1 } end
  ids[i] = node
  local priors = tonumber(ARGV[a + 14])
  for k = a + 15, a + 14 + priors do push_history(ARGV[k]) end
  local attempt = tonumber(ARGV[a + 5])
  -- When this attempt started (text, for the history entry): as the record has it, unless earlier attempts ran in process.
  local started = ARGV[a + 6]
  if priors == 0 and r[6] ~= '' then started = r[6] end
  local worker = r[9]
  -- The attempt that ran last, with the lost-worker count reset, whatever the outcome.
  r[2], r[3] = ARGV[a + 5], '0'
  if outcome == '0' then
    history(i, attempt, 0, started, NOWS, worker, false, false)
    -- The record and the output in one write.
    finish(i, 3, 3, nil, r, 'o' .. x, ARGV[a + 7])
    outputs[i] = ARGV[a + 7]
    local taken = ARGV[a + 8]
    if taken == '' then taken = false end
    propagate(i, taken, 3)
  elseif outcome == '2' then
    history(i, attempt, 5, started, NOWS, worker, ARGV[a + 10], ARGV[a + 11])
    r[1], r[5] = 7, ''
    node_write(i, r, 'e' .. x, ARGV[a + 9])
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
    history(i, attempt, status, started, NOWS, worker, ARGV[a + 10], ARGV[a + 11])
    if retryAt ~= '' then
      ev(4, i, attempt, ARGV[a + 11])
      queue(i, attempt + 1, tonumber(retryAt), false, r, 'e' .. x, ARGV[a + 9])
    else
      fail_node(i, ARGV[a + 9], ARGV[a + 11], r)
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
