-- ARGV: nodeId, attempt, token, worker, leaseMs, maxLosses, rateGranted, workerLostErrorJson
-- Codes: 0 Started, 1 Stale, 2 Duplicate, 3 Paused, 4 NeedsRate {handler, limit, periodMs}, 5 WorkerLost
if not execStatus then return { 1 } end
local i = nidx(ARGV[1])
if not i or finished() then return { 1 } end
local r = node_read(i)
if tonumber(r[2]) ~= tonumber(ARGV[2]) then return { 1 } end
local token = ARGV[3]
local s = r[1]
if s == 2 then
  if r[5] == token then
    r[7] = tostring(NOW + tonumber(ARGV[5]))
    node_write(i, r)
    s = -1
  elseif (tonumber(r[7]) or 0) > NOW then
    return { 2, tonumber(r[7]) - NOW }
  else
    -- The lease lapsed: the worker holding it died or froze.
    history(i, tonumber(r[2]) or 0, 4, r[6] ~= '' and r[6] or NOWS, NOWS, r[9], 'WorkerLost', 'The worker stopped renewing its lease.')
    local losses = (tonumber(r[3]) or 0) + 1
    r[3] = tostring(losses)
    if losses >= tonumber(ARGV[6]) then
      fail_node(i, ARGV[8], 'Workers were lost on this node ' .. losses .. ' times in a row.', r)
      check_finished()
      return result(5)
    end
    r[1], r[4], r[5] = 1, NOWS, ''
    node_write(i, r)
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
  r[1], r[5], r[6], r[7], r[9] = 2, token, NOWS, tostring(NOW + tonumber(ARGV[5])), ARGV[4]
  node_write(i, r)
  ev(2, i, tonumber(r[2]))
elseif s ~= -1 then
  return { 1 }
end
return result(0, started_info(i))
