-- KEYS[4] (optional): idempotency key. ARGV: n, workflow, version, input, traceparent, idemKey, failureMode,
-- leaves, retentionMs, channel, executionId, roots, field-pair count F, F node-hash field/value pairs,
-- then (fused variant) the enqueue arguments. KEYS[4] is the idempotency key or '' when there is none; the fused variant
-- ends KEYS with the queue keys, then the execution listing and active indexes.
if KEYS[4] and KEYS[4] ~= '' then
  local existing = redis.call('GET', KEYS[4])
  if existing then return { 1, existing } end
  redis.call('SET', KEYS[4], ARGV[11], 'PX', tonumber(ARGV[9]) + 604800000)
end
if redis.call('EXISTS', X) == 1 then return { 2 } end
redis.call('HSET', X, 'st', 1, 'wf', ARGV[2], 'ver', ARGV[3], 'n', ARGV[1], 'done', 0, 'ca', NOW, 'in', ARGV[4],
  'tp', ARGV[5], 'ik', ARGV[6], 'fm', ARGV[7], 'leaves', ARGV[8], 'ret', ARGV[9], 'ch', ARGV[10], 'rv', 0)
local batch = { 'HSET', S }
local fieldEnd = 13 + tonumber(ARGV[13])
for k = 14, fieldEnd do
  batch[#batch + 1] = ARGV[k]
  if #batch >= 2002 then
    redis.call(unpack(batch))
    batch = { 'HSET', S }
  end
end
if #batch > 2 then redis.call(unpack(batch)) end
execStatus = 1
N = tonumber(ARGV[1])
ev(0, -1, 0)
for root in string.gmatch(ARGV[12], '(%d+)') do queue(tonumber(root), 1, nil, true) end
if FUSED then
  fused_enqueue(fieldEnd + 1, 4)
  -- One server: the listing and active indexes are the last two keys.
  redis.call('ZADD', KEYS[#KEYS - 1], NOW, ARGV[11])
  redis.call('SADD', KEYS[#KEYS], ARGV[11])
end
return result(0)
