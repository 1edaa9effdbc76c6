-- An execution's snapshot in one reply that stays small for large executions: { the execution hash as
-- HGETALL returns it, the nodes packed into one string }. Per node, in index order: its record (prelude.lua), output,
-- error, then (ARGV[1] == '1', when the caller has no plan to name them) id and handler. Each value is written as
-- "<byte length>:<bytes>", a missing one as "-".
-- KEYS: execution hash, node hash. A missing execution returns nil.
local x = redis.call('HGETALL', KEYS[1])
if #x == 0 then return false end
local xv = redis.call('HMGET', KEYS[1], 'n', 'p', 'nf')
local n = NUM[xv[1]]
-- Ids and handlers are the plan's: in the plan hash the execution names (the node hash itself on a cluster).
local plan = xv[2] or KEYS[2]
local named = ARGV[1] == '1'
local out = {}
local k = 0
-- 1,000 nodes at a time: one HMGET per kind of field.
for from = 0, n - 1, 1000 do
  local list = span(from, math.min(1000, n - from))
  -- An execution an earlier build wrote, not yet touched by this one, has its records made here (prelude.lua).
  local records
  if xv[3] == NODE_FORMAT then records = many(KEYS[2], '', list) else records = legacy_records(KEYS[2], from, #list) end
  local columns = { records, many(KEYS[2], 'o', list), many(KEYS[2], 'e', list) }
  if named then
    columns[4], columns[5] = many(plan, 'id', list), many(plan, 'h', list)
  end
  for m = 1, #list do
    for c = 1, #columns do
      local v = columns[c][m]
      if v then
        -- The length as IX's text: table.concat would format each number with sprintf.
        out[k + 1] = IX[#v]
        out[k + 2] = ':'
        out[k + 3] = v
        k = k + 3
      else
        k = k + 1
        out[k] = '-'
      end
    end
  end
end
return { x, table.concat(out) }
