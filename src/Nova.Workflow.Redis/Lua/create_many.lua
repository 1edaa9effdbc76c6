-- Group commit of creates (one server; plans already stored, no idempotency keys). KEYS: per create its three execution
-- keys, per distinct queue layout its queue keys, then the listing and active indexes. ARGV[1] = the number of creates;
-- then per create: its argument count C, the index of its first key, the index before its layout's first queue key, then
-- its C arguments (create.lua's, ending with a plan field count of 0). Each create is applied on its own: one that fails
-- reports { -1, message } and the others stand. The indexes are written once, and the jobs due now put per queue once, at
-- the end. Returns one reply per create, flat and short (result() in prelude.lua).
-- BATCH: each execution's record writes go in one HSET when the next is bound (sync()), so a root started for a worker
-- (eager start) is written once, Running, not Queued and then Running.
BATCH = true
DEFER = {}
LEASED = {}
CREATED = {}
local out = {}
FLAT = out
-- A create that went as planned answers -1 (ScriptResults.Accepted), not its eight values: the caller reads nothing else
-- of it (its jobs are the plan's roots, RootJobs).
SHORT = true
local at = 2
for m = 1, NUM[ARGV[1]] do
  local count, xk, kb = NUM[ARGV[at]], NUM[ARGV[at + 1]], NUM[ARGV[at + 2]]
  bind(KEYS[xk], KEYS[xk + 1], KEYS[xk + 2])
  local mark = #out
  local ok, r = pcall(create, at + 2, at + 2 + count, kb, false)
  if ok then
    if r ~= true then flat_add(out, r) end
  else
    for k = #out, mark + 1, -1 do out[k] = nil end
    flat_add(out, { -1, type(r) == 'table' and r.err or tostring(r) })
    rebind()
  end
  at = at + 3 + count
end
if X then flush() end
-- The indexes first: should the put below fail, the executions are in the active index, where the sweep for stranded
-- jobs finds their queued nodes.
if #CREATED > 0 then
  local scored = {}
  for k = 1, #CREATED do
    scored[2 * k - 1], scored[2 * k] = NOWS, CREATED[k]
  end
  for from = 1, #CREATED, 500 do
    local to = math.min(from + 499, #CREATED)
    redis.call('ZADD', KEYS[#KEYS - 1], unpack(scored, 2 * from - 1, 2 * to))
    redis.call('SADD', KEYS[#KEYS], unpack(CREATED, from, to))
  end
end
put_leased()
put_due(DEFER)
return out
