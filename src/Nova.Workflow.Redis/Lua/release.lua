-- ARGV: nodeId, attempt, token. Running -> Queued under the same attempt (graceful shutdown).
if not execStatus or finished() then return 0 end
local i = nidx(ARGV[1])
local r = i and node_read(i)
if not r or r[1] ~= 2 or r[5] ~= ARGV[3] or tonumber(r[2]) ~= tonumber(ARGV[2]) then return 0 end
r[1], r[4], r[5] = 1, NOWS, ''
node_write(i, r)
return 1
