-- ARGV: leaseMs, then (nodeId, attempt, token) triples. Returns 1 per run still owned, else 0.
local owned = {}
for k = 2, #ARGV, 3 do
  local ok = 0
  if execStatus and not finished() then
    local i = nidx(ARGV[k])
    local r = i and node_read(i)
    if r and r[1] == 2 and r[5] == ARGV[k + 2] and tonumber(r[2]) == tonumber(ARGV[k + 1]) then
      r[7] = tostring(NOW + tonumber(ARGV[1]))
      node_write(i, r)
      ok = 1
    end
  end
  owned[#owned + 1] = ok
end
return owned
