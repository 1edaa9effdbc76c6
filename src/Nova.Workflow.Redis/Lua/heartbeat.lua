-- ARGV: leaseMs, then (nodeId, attempt, token) triples. Returns 1 per run still owned, else 0.
local owned = {}
for k = 2, #ARGV, 3 do
  local ok = 0
  if execStatus and not finished() then
    local i = nidx(ARGV[k])
    if i and nst(i) == 2 and nget('t', i) == ARGV[k + 2] and nnum('a', i) == tonumber(ARGV[k + 1]) then
      redis.call('HSET', S, 'le' .. i, NOW + tonumber(ARGV[1]))
      ok = 1
    end
  end
  owned[#owned + 1] = ok
end
return owned
