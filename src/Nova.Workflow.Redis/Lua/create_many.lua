-- Group commit of creates without idempotency keys (one server). KEYS: per execution its three keys, per distinct queue
-- layout its queue keys, then the listing and active indexes. ARGV[1] = the number of creates; then per create: its
-- argument count C, the index of its execution's first key, the index before its layout's first queue key, the index of
-- its plan's field count, then its C arguments (create.lua). Each create is applied on its own: one that fails reports
-- { -1, message } and the others stand. Returns one reply per create, as create.lua returns it.
local out = {}
local at = 2
for m = 1, tonumber(ARGV[1]) do
  local count, xk, kb, fieldAt = tonumber(ARGV[at]), tonumber(ARGV[at + 1]), tonumber(ARGV[at + 2]), tonumber(ARGV[at + 3])
  bind(KEYS[xk], KEYS[xk + 1], KEYS[xk + 2])
  local ok, r = pcall(create, at + 3, fieldAt, kb, false)
  if ok then out[m] = r else out[m] = { -1, type(r) == 'table' and r.err or tostring(r) } end
  at = at + 4 + count
end
return out
