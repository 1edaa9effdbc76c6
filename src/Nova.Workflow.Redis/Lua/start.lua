-- ARGV: nodeId, attempt, token, worker, leaseMs, maxLosses, rateGranted, workerLostErrorJson
-- Codes: 0 Started, 1 Stale, 2 Duplicate, 3 Paused, 4 NeedsRate {handler, limit, periodMs}, 5 WorkerLost
if not execStatus then return { 1 } end
local i = nidx(ARGV[1])
if not i or finished() or nnum('a', i) ~= tonumber(ARGV[2]) then return { 1 } end
local token = ARGV[3]
local s = nst(i)
if s == 2 then
  if nget('t', i) == token then
    redis.call('HSET', S, 'le' .. i, NOW + tonumber(ARGV[5]))
    s = -1
  elseif (nnum('le', i) or 0) > NOW then
    return { 2, nnum('le', i) - NOW }
  else
    -- The lease lapsed: the worker holding it died or froze.
    history(i, nnum('a', i), 4, nnum('sa', i) or NOW, NOW, nget('w', i), 'WorkerLost', 'The worker stopped renewing its lease.')
    local losses = redis.call('HINCRBY', S, 'l' .. i, 1)
    if losses >= tonumber(ARGV[6]) then
      fail_node(i, ARGV[8], 'Workers were lost on this node ' .. losses .. ' times in a row.')
      check_finished()
      return result(5)
    end
    redis.call('HSET', S, 's' .. i, 1, 't' .. i, '', 'ra' .. i, NOW)
    s = 1
  end
end
if s == 1 then
  if execStatus == 2 then return result(3) end
  local rl = pget('rl', i)
  if rl and rl ~= '' and ARGV[7] ~= '1' then
    local limit, period = string.match(rl, '(%d+):(%d+)')
    return { 4, pget('h', i), limit, period }
  end
  redis.call('HSET', S, 's' .. i, 2, 't' .. i, token, 'w' .. i, ARGV[4], 'sa' .. i, NOW, 'le' .. i, NOW + tonumber(ARGV[5]))
  ev(2, i, nnum('a', i))
elseif s ~= -1 then
  return { 1 }
end
return result(0, started_info(i))
