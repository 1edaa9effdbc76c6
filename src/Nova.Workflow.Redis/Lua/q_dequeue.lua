-- Leases up to `max` jobs of the queue whose nine keys start at KEYS[kb]: ready, age, delayed, leased, jobs, meta, score,
-- token, deliveries. Due delayed jobs are promoted and lapsed leases taken back first. ARGV[tokenAt + n - 1] is the fresh
-- lease token of the n-th job. Returns (payload, token, deliveries, leaseExpiresMs, id) per job.
local function dequeue(now, kb, max, leaseMs, fairness, tokenAt)
  local ready, age, delayed, leased, jobs, meta, sc, tk, dl = KEYS[kb], KEYS[kb + 1], KEYS[kb + 2], KEYS[kb + 3], KEYS[kb + 4], KEYS[kb + 5], KEYS[kb + 6], KEYS[kb + 7], KEYS[kb + 8]
  local function make_ready(id)
    local score = redis.call('HGET', sc, id)
    if not score then return end
    redis.call('ZADD', ready, score, id)
    redis.call('ZADD', age, string.format('%.0f', tonumber(score) % 1e13), id)
  end
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', delayed, '-inf', now, 'LIMIT', 0, 1000)) do
    redis.call('ZREM', delayed, id)
    make_ready(id)
  end
  -- Leases that lapsed: their worker died or froze; deliver them again.
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', leased, '-inf', now, 'LIMIT', 0, 1000)) do
    redis.call('ZREM', leased, id)
    redis.call('HDEL', tk, id)
    make_ready(id)
  end
  local out = {}
  local lease = now + leaseMs
  for n = 1, max do
    local taken = redis.call('HINCRBY', meta, 'taken', 1)
    local pick
    if taken % fairness == 0 then pick = redis.call('ZRANGE', age, 0, 0) else pick = redis.call('ZRANGE', ready, 0, 0) end
    local id = pick[1]
    if not id then
      redis.call('HINCRBY', meta, 'taken', -1)
      break
    end
    redis.call('ZREM', ready, id)
    redis.call('ZREM', age, id)
    local token = ARGV[tokenAt + n - 1]
    local d = redis.call('HINCRBY', dl, id, 1)
    redis.call('HSET', tk, id, token)
    redis.call('ZADD', leased, lease, id)
    out[#out + 1] = redis.call('HGET', jobs, id) or ''
    out[#out + 1] = token
    out[#out + 1] = d
    out[#out + 1] = lease
    out[#out + 1] = id
  end
  return out
end
