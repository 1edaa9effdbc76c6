-- ARGV: nodeId, attempt, token. Running -> Queued under the same attempt (graceful shutdown).
if not execStatus or finished() then return 0 end
local i = nidx(ARGV[1])
if not i or nst(i) ~= 2 or nget('t', i) ~= ARGV[3] or nnum('a', i) ~= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', S, 's' .. i, 1, 't' .. i, '', 'ra' .. i, NOW)
return 1
