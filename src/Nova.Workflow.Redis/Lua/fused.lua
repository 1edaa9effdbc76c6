-- Fused variant (single server): the script also enqueues the jobs it made ready and acks the job it
-- completed, so completion, release of children and ack are one atomic round trip.
-- KEYS from keyBase + 1: 9 keys per queue (ready, age, delayed, leased, jobs, meta, score, token, deliveries).
-- ARGV from `base`: queue count, queue names..., wake prefix, execution id (N), execution id (D), traceparent, ack queue, ack id, ack token,
-- then eager dispatch: lease token ('' when the worker made no offer), worker id, lease ms.
-- Eager dispatch: of the jobs the completion made ready on the acked job's queue (due now, not rate limited), the one of highest
-- priority is started for the completing worker and written already leased to it; `continued` describes it for the reply.
local FUSED = true
local continued = {}
local function fused_enqueue(base, keyBase)
  local qn = tonumber(ARGV[base])
  local offset = {}
  for k = 1, qn do offset[ARGV[base + k]] = keyBase + (k - 1) * 9 end
  local wake, execN, execD, tp = ARGV[base + qn + 1], ARGV[base + qn + 2], ARGV[base + qn + 3], ARGV[base + qn + 4]
  local ackQueue, ackId, ackToken = ARGV[base + qn + 5], ARGV[base + qn + 6], ARGV[base + qn + 7]
  local leaseToken, worker, leaseMs = ARGV[base + qn + 8] or '', ARGV[base + qn + 9], tonumber(ARGV[base + qn + 10])
  local eager = 0
  if leaseToken ~= '' and execStatus == 1 then
    local best = -1
    for j = 1, #jobs, 5 do
      local pr = tonumber(jobs[j + 4])
      if tonumber(jobs[j + 2]) == 0 and jobs[j + 3] == ackQueue and pr > best then
        local rl = pget('rl', jobIndex[j])
        if not rl or rl == '' then eager, best = j, pr end
      end
    end
  end
  local woken = {}
  local kept = {}
  for j = 1, #jobs, 5 do
    local node, attempt, nb, q, pr = jobs[j], jobs[j + 1], tonumber(jobs[j + 2]), jobs[j + 3], tonumber(jobs[j + 4])
    local o = offset[q]
    local id = execN .. ':' .. node .. ':' .. attempt
    local payload = { e = execD, n = node, a = tonumber(attempt), q = q, p = pr }
    if tp ~= '' then payload.tp = tp end
    if j ~= eager then for k = 0, 4 do kept[#kept + 1] = jobs[j + k] end end
    if redis.call('HSETNX', KEYS[o + 5], id, cjson.encode(payload)) == 1 then
      local seq = redis.call('HINCRBY', KEYS[o + 6], 'seq', 1)
      local score = string.format('%.0f', (9 - pr) * 1e13 + seq)
      redis.call('HSET', KEYS[o + 7], id, score)
      if j == eager then
        -- Started and leased in one step: a lapsed lease makes it ready again like any other delivery.
        local i = jobIndex[j]
        local expires = NOW + leaseMs
        local x = IX[i]
        redis.call('HSET', S, 's' .. x, '2', 't' .. x, leaseToken, 'w' .. x, worker, 'sa' .. x, NOWS, 'le' .. x, tostring(expires))
        ev(2, i, tonumber(attempt))
        local d = redis.call('HINCRBY', KEYS[o + 9], id, 1)
        redis.call('HSET', KEYS[o + 8], id, leaseToken)
        redis.call('ZADD', KEYS[o + 4], expires, id)
        local info = started_info(i)
        continued = { info[1], info[2], info[3], info[4], node, attempt, q, pr, d, expires }
      elseif nb > NOW then
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
  -- A wake-up only when a worker waits on the queue (q_idle.lua marked it idle); HDEL takes the mark.
  for q in pairs(woken) do
    if redis.call('HDEL', KEYS[offset[q] + 6], 'idle') == 1 then redis.call('PUBLISH', wake .. q, '1') end
  end
  jobs = kept
end
