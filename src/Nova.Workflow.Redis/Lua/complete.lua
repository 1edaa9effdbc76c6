-- Completes one attempt of the bound execution. Its arguments are ARGV[a + 1] onwards: nodeId, attempt, token, outcome
-- (0 succeeded, 1 failed, 2 review), finalAttempt, startedAtMs, output, taken, the job's queue (fused variant: acked
-- there), the lease token for eager dispatch ('' for none), prior-attempt count P, P history JSON entries, then, unless it
-- succeeded, errorJson, errorType, errorMessage, timedOut, retryAtMs: a success, most completions, sends none of those.
-- Fused variant: the block its transitions share starts at ARGV[sb] (fused.lua), and its queue keys follow KEYS[kb]; the
-- acked job's id is its execution, node and attempt, and its lease token is the completion's.
local function complete(a, kb, sb)
  if not execStatus then return { 1 } end
  local node, token, outcome = ARGV[a + 1], ARGV[a + 3], ARGV[a + 4]
  local i = nidx(node)
  if not i or finished() then return { 1 } end
  local x = IX[i]
  local r = node_read(i)
  if r[1] ~= 2 or r[5] ~= token or NUM[r[2]] ~= NUM[ARGV[a + 2]] then return { 1 } end
  ids[i] = node
  local priors = NUM[ARGV[a + 11]]
  for k = a + 12, a + 11 + priors do push_history(ARGV[k]) end
  -- Where the failure's arguments start (f + 1).
  local f = a + 11 + priors
  local attempt = NUM[ARGV[a + 5]]
  -- When this attempt started (text, for the history entry): as the record has it, unless earlier attempts ran in process.
  local started = ARGV[a + 6]
  if priors == 0 and r[6] ~= '' then started = r[6] end
  local worker = r[9]
  -- The attempt that ran last, with the lost-worker count reset, whatever the outcome.
  r[2], r[3] = ARGV[a + 5], '0'
  if outcome == '0' then
    history(i, attempt, 0, started, NOWS, worker, false, false)
    -- The record and the output in one write. A null output is not written: an absent one reads as null everywhere
    -- (children's inputs, the execution's result, snapshots), and most handlers return none.
    local output = ARGV[a + 7]
    if output == 'null' then finish(i, 3, 3, nil, r) else finish(i, 3, 3, nil, r, 'o' .. x, output) end
    outputs[i] = output
    local taken = ARGV[a + 8]
    if taken == '' then taken = false end
    propagate(i, taken, 3)
  elseif outcome == '2' then
    history(i, attempt, 5, started, NOWS, worker, ARGV[f + 2], ARGV[f + 3])
    r[1], r[5] = 7, ''
    node_write(i, r, 'e' .. x, ARGV[f + 1])
    redis.call('HINCRBY', X, 'rv', 1)
    ev(8, i, attempt, ARGV[f + 3])
    if execStatus == 1 then
      execStatus = 2
      redis.call('HSET', X, 'st', 2)
      ev(9, -1, 0, 'Awaiting review of ' .. node)
    end
  else
    local status = 2
    local retryAt = ARGV[f + 5]
    if ARGV[f + 4] == '1' then status = 3 elseif retryAt ~= '' then status = 1 end
    history(i, attempt, status, started, NOWS, worker, ARGV[f + 2], ARGV[f + 3])
    if retryAt ~= '' then
      ev(4, i, attempt, ARGV[f + 3])
      queue(i, attempt + 1, tonumber(retryAt), false, r, 'e' .. x, ARGV[f + 1])
    else
      fail_node(i, ARGV[f + 1], ARGV[f + 3], r)
    end
  end
  check_finished()
  if FUSED then
    continued = EMPTY
    fused_enqueue(sb, kb, ARGV[a + 9], ARGV[sb + NUM[ARGV[sb]] + 2] .. ':' .. node .. ':' .. ARGV[a + 2], token, ARGV[a + 10])
    return result(0, continued)
  end
  return result(0)
end
