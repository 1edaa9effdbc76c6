-- Fused variant (single server): the script also enqueues the jobs it made ready and acks the job it
-- completed, so completion, release of children and ack are one atomic round trip.
-- KEYS from keyBase + 1: 9 keys per queue (ready, age, delayed, leased, jobs, meta, score, token, deliveries).
-- ARGV from `base`: queue count, queue names..., wake prefix, execution id (N), execution id (D), traceparent, ack queue, ack id, ack token.
local FUSED = true
local function fused_enqueue(base, keyBase)
  local qn = tonumber(ARGV[base])
  local offset = {}
  for k = 1, qn do offset[ARGV[base + k]] = keyBase + (k - 1) * 9 end
  local wake, execN, execD, tp = ARGV[base + qn + 1], ARGV[base + qn + 2], ARGV[base + qn + 3], ARGV[base + qn + 4]
  local ackQueue, ackId, ackToken = ARGV[base + qn + 5], ARGV[base + qn + 6], ARGV[base + qn + 7]
  local woken = {}
  for j = 1, #jobs, 5 do
    local node, attempt, nb, q, pr = jobs[j], jobs[j + 1], tonumber(jobs[j + 2]), jobs[j + 3], tonumber(jobs[j + 4])
    local o = offset[q]
    local id = execN .. ':' .. node .. ':' .. attempt
    local payload = { e = execD, n = node, a = tonumber(attempt), q = q, p = pr }
    if tp ~= '' then payload.tp = tp end
    if redis.call('HSETNX', KEYS[o + 5], id, cjson.encode(payload)) == 1 then
      local seq = redis.call('HINCRBY', KEYS[o + 6], 'seq', 1)
      local score = string.format('%.0f', (9 - pr) * 1e13 + seq)
      redis.call('HSET', KEYS[o + 7], id, score)
      if nb > NOW then
        redis.call('ZADD', KEYS[o + 3], nb, id)
      else
        redis.call('ZADD', KEYS[o + 1], score, id)
        redis.call('ZADD', KEYS[o + 2], seq, id)
        woken[q] = true
      end
    end
  end
  if ackId ~= '' then
    local o = offset[ackQueue]
    if redis.call('HGET', KEYS[o + 8], ackId) == ackToken then
      redis.call('ZREM', KEYS[o + 4], ackId)
      redis.call('HDEL', KEYS[o + 5], ackId)
      redis.call('HDEL', KEYS[o + 8], ackId)
      redis.call('HDEL', KEYS[o + 9], ackId)
      redis.call('HDEL', KEYS[o + 7], ackId)
    end
  end
  for q in pairs(woken) do redis.call('PUBLISH', wake .. q, '1') end
end
