-- An execution's snapshot in one reply that stays small for large executions: { the execution hash as
-- HGETALL returns it, the nodes packed into one string }. Per node, in index order: status, attempt, started
-- at, ended at, worker, output, error, then (ARGV[1] == '1', when the caller has no plan to name them) id and
-- handler. Each value is written as "<byte length>:<bytes>", a missing one as "-".
-- KEYS: execution hash, node hash. A missing execution returns nil.
local x = redis.call('HGETALL', KEYS[1])
if #x == 0 then return false end
local xv = redis.call('HMGET', KEYS[1], 'n', 'p')
local n = tonumber(xv[1])
-- Ids and handlers are the plan's: in the plan hash the execution names (the node hash itself on a cluster).
local plan = xv[2] or KEYS[2]
local names = { 's', 'a', 'sa', 'ea', 'w', 'o', 'e' }
local width = #names
local named = ARGV[1] == '1'
local out = {}
local k = 0
local fields = {}
for i = 0, n - 1 do
  for f = 1, width do fields[f] = names[f] .. i end
  local values = redis.call('HMGET', KEYS[2], unpack(fields))
  if named then
    local static = redis.call('HMGET', plan, 'id' .. i, 'h' .. i)
    values[width + 1], values[width + 2] = static[1], static[2]
  end
  for f = 1, #values do
    local v = values[f]
    if v then
      out[k + 1] = #v
      out[k + 2] = ':'
      out[k + 3] = v
      k = k + 3
    else
      k = k + 1
      out[k] = '-'
    end
  end
end
return { x, table.concat(out) }
