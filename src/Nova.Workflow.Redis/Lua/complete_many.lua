-- Group commit of completions (one server). KEYS: per execution its three keys, per distinct queue layout its queue keys,
-- then the active-executions index. ARGV[1] = the number of completions, ARGV[2] = the length B of the shared blocks that
-- follow it (fused.lua: one per execution, layout and offer the completions have in common); then per completion: its
-- argument count C, the index of its execution's first key, the index before its layout's first queue key, the index of
-- its shared block, then its C arguments (complete.lua). Each completion is applied on its own: one that fails reports
-- { -1, message } and the others stand. Returns one reply per completion, flat (result() in prelude.lua).
BATCH = true
DEFER = {}
local out = {}
FLAT = out
SHORT = true
local at = 3 + NUM[ARGV[2]]
local active = KEYS[#KEYS]
local indexed = {}
local n = NUM[ARGV[1]]
for m = 1, n do
  local count, xk, kb, sb = NUM[ARGV[at]], NUM[ARGV[at + 1]], NUM[ARGV[at + 2]], NUM[ARGV[at + 3]]
  -- A completion with an offer for eager dispatch (ARGV[at + 13], complete.lua) may start a child: what the start needs of the
  -- execution (started_info) is read with the rest.
  if bind(KEYS[xk], KEYS[xk + 1], KEYS[xk + 2], ARGV[at + 13] ~= '') and execStatus then
    -- The records of this and the following completions of the same execution, read in one command.
    local list, b = {}, at
    for _ = m, n do
      if NUM[ARGV[b + 1]] ~= xk then break end
      list[#list + 1] = nidx(ARGV[b + 4])
      b = b + 4 + NUM[ARGV[b]]
    end
    prefetch(list)
  end
  local mark = #out
  local ok, r = pcall(complete, at + 3, kb, sb)
  if ok then
    if r ~= true then
      flat_add(out, r)
      CODE = r[1]
    end
    if CODE == 0 then
      -- A running execution is added back once per script: the index heals if it ever lost one (a resume whose separate
      -- SADD was lost, a sweep that read it just before a retry made it run again).
      -- Written together after the loop: an execution ends once, so its last state here is the one to write.
      local id = ARGV[sb + NUM[ARGV[sb]] + 2]
      if finished() then
        indexed[id] = false
      elseif execStatus == 1 and indexed[id] == nil then
        indexed[id] = true
      end
    end
  else
    for k = #out, mark + 1, -1 do out[k] = nil end
    flat_add(out, { -1, type(r) == 'table' and r.err or tostring(r) })
    -- What this script holds of the execution may no longer match what the failed step wrote: read it again.
    rebind()
  end
  at = at + 4 + count
end
if X then flush() end
local adds, removes = {}, {}
for id, running in pairs(indexed) do
  if running then adds[#adds + 1] = id else removes[#removes + 1] = id end
end
for from = 1, #adds, 1000 do redis.call('SADD', active, unpack(adds, from, math.min(from + 999, #adds))) end
for from = 1, #removes, 1000 do redis.call('SREM', active, unpack(removes, from, math.min(from + 999, #removes))) end
-- The jobs made ready go in before the completed ones are acked: a failure between leaves a job delivered again, not lost.
put_due(DEFER)
-- Every completion above stands whatever happens here: a failed ack leaves its job leased, to be delivered again and
-- dropped as stale, rather than failing the call and losing the replies.
pcall(flush_acks)
return out
