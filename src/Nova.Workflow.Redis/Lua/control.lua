-- ARGV[1]: command. pause | cancel | resume | retry | stranded.
-- Codes: 0 done, 1 not found, 2 invalid state {message}, 3 review decision missing {node ids}.
if not execStatus then return { 1 } end
local cmd = ARGV[1]
if cmd == 'stranded' then
  -- ARGV[2]: stranded-after ms. Queued too long, or Running with a lapsed lease. A paused execution has none yet.
  if execStatus ~= 1 then return { 0, done, N, execStatus, {}, {}, {}, NOW } end
  local sts, stored = statuses(span(0, N))
  for i = 0, N - 1 do
    local s = sts[i + 1]
    if s == 1 or s == 2 then
      local r = node_of(i, stored[i + 1])
      if (s == 1 and (tonumber(r[4]) or 0) <= NOW - tonumber(ARGV[2])) or (s == 2 and (tonumber(r[7]) or 0) <= NOW) then
        job(i, tonumber(r[2]), 0)
      end
    end
  end
  return { 0, done, N, execStatus, {}, jobs, {}, NOW }
elseif cmd == 'pause' then
  if execStatus == 2 then return result(0) end
  if execStatus ~= 1 then return { 2, 'only a running execution can be paused' } end
  execStatus = 2
  redis.call('HSET', X, 'st', 2)
  ev(9, -1, 0)
elseif cmd == 'cancel' then
  if finished() then return result(0) end
  cancel_unfinished()
  end_exec(5, 12)
  redis.call('PUBLISH', ARGV[2], ARGV[3])
elseif cmd == 'resume' then
  -- ARGV: hasDecision, approved, output, rejectionErrorJson, reason, then (nodeIndex, taken) pairs.
  if execStatus ~= 2 then return { 2, 'only a paused execution can be resumed' } end
  local reviewing = {}
  local sts = statuses(span(0, N))
  for i = 0, N - 1 do
    if sts[i + 1] == 7 then reviewing[#reviewing + 1] = i end
  end
  if #reviewing > 0 and ARGV[2] ~= '1' then
    local waiting = {}
    for _, i in ipairs(reviewing) do waiting[#waiting + 1] = pget('id', i) end
    return { 3, waiting }
  end
  local takenOf = {}
  for k = 7, #ARGV, 2 do takenOf[tonumber(ARGV[k])] = ARGV[k + 1] end
  if ARGV[3] == '1' then
    -- The caller evaluated the edge conditions of the nodes it saw awaiting review; another may have joined since.
    for _, i in ipairs(reviewing) do
      if takenOf[i] == nil then return { 4 } end
    end
  end
  execStatus = 1
  redis.call('HSET', X, 'st', 1, 'rv', 0)
  ev(13, -1, 0)
  for _, i in ipairs(reviewing) do
    -- A rejection under FailFast ends the execution and cancels the other reviewed nodes: skip them.
    if nst(i) ~= 7 then
    elseif ARGV[3] == '1' then
      finish(i, 3, 3, 'Approved by review', nil, 'o' .. i, ARGV[4], 'e' .. i, '')
      local taken = takenOf[i]
      if not taken or taken == '' then taken = false end
      propagate(i, taken)
    else
      fail_node(i, ARGV[5], ARGV[6])
    end
  end
  if execStatus == 1 then
    local queued, stored = statuses(span(0, N))
    for i = 0, N - 1 do
      if queued[i + 1] == 1 then
        local r = node_of(i, stored[i + 1])
        local ra = tonumber(r[4]) or 0
        if ra > NOW then job(i, tonumber(r[2]), ra) else job(i, tonumber(r[2]), 0) end
      end
    end
  end
elseif cmd == 'retry' then
  -- ARGV[2]: node id or ''.
  local selected = {}
  if ARGV[2] ~= '' then
    local i = nidx(ARGV[2])
    local s = i and nst(i)
    if not i or (s ~= 4 and s ~= 6) then return { 2, 'node ' .. ARGV[2] .. ' is not failed or canceled; there is nothing to retry' } end
    selected[1] = i
  else
    local sts = statuses(span(0, N))
    for i = 0, N - 1 do
      local s = sts[i + 1]
      if s == 4 or s == 6 then selected[#selected + 1] = i end
    end
  end
  if #selected == 0 then return { 2, 'no failed or canceled node to retry' } end
  local reset, order, stack = {}, {}, selected
  while #stack > 0 do
    local n = table.remove(stack)
    if not reset[n] then
      reset[n] = true
      order[#order + 1] = n
      local ch = pget('ch', n)
      if ch and ch ~= '' then
        for c in string.gmatch(ch, '(%d+):%d+:%d+') do stack[#stack + 1] = tonumber(c) end
      end
    end
  end
  for _, n in ipairs(order) do
    local r = node_read(n)
    if terminal(r[1]) then done = done - 1 end
    r[1], r[3], r[5], r[8] = 0, '0', '', ''
    node_write(n, r, 'o' .. n, '', 'e' .. n, '')
  end
  for _, n in ipairs(order) do
    local pending = 0
    local ps = pnum('ps', n)
    local pa = pget('pa', n)
    local k = 0
    if pa and pa ~= '' then
      for p in string.gmatch(pa, '(%d+)') do
        if not terminal(nst(tonumber(p))) then
          set_eo(ps + k, 0)
          pending = pending + 1
        end
        k = k + 1
      end
    end
    -- 'pp' counts the parents that have finished.
    redis.call('HSET', S, 'pp' .. n, k - pending)
  end
  execStatus = 1
  redis.call('HSET', X, 'st', 1, 'err', '', 'out', '')
  redis.call('HDEL', X, 'ea')
  redis.call('PERSIST', X)
  redis.call('PERSIST', S)
  redis.call('PERSIST', H)
  ev(13, -1, 0, 'Retry')
  local ready = {}
  for _, n in ipairs(order) do
    if (tonumber(nget('pp', n)) or 0) == pnum('pc', n) then ready[#ready + 1] = n end
  end
  for _, n in ipairs(ready) do
    if decide(n) then propagate(n, false) end
  end
end
check_finished()
return result(0)
