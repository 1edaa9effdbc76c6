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
  -- The picks go in one pass: the n-th job of this call is the oldest (age) when the queue's n-th take overall falls on
  -- the fairness interval, else the first by priority (ready). Both sets hold the same jobs, so the first `max` of each
  -- always have an untaken one while jobs remain.
  local out = {}
  local lease = now + leaseMs
  local leaseText = tostring(lease)
  -- Bounded so the bulk commands below stay within Lua's unpack limit.
  max = math.min(max, 1000)
  local taken = tonumber(redis.call('HGET', meta, 'taken')) or 0
  local byPriority = redis.call('ZRANGE', ready, 0, max - 1)
  if #byPriority == 0 then return out end
  local byAge
  local picked, ids, tokens, leases = {}, {}, {}, {}
  local p, a = 1, 1
  for n = 1, math.min(max, #byPriority) do
    local id
    if (taken + n) % fairness == 0 then
      byAge = byAge or redis.call('ZRANGE', age, 0, max - 1)
      while byAge[a] and picked[byAge[a]] do a = a + 1 end
      id = byAge[a]
    else
      while byPriority[p] and picked[byPriority[p]] do p = p + 1 end
      id = byPriority[p]
    end
    picked[id] = true
    ids[n] = id
    local token = ARGV[tokenAt + n - 1]
    tokens[#tokens + 1] = id
    tokens[#tokens + 1] = token
    leases[#leases + 1] = leaseText
    leases[#leases + 1] = id
    out[#out + 1] = false
    out[#out + 1] = token
    out[#out + 1] = redis.call('HINCRBY', dl, id, '1')
    out[#out + 1] = lease
    out[#out + 1] = id
  end
  redis.call('HINCRBY', meta, 'taken', #ids)
  redis.call('ZREM', ready, unpack(ids))
  redis.call('ZREM', age, unpack(ids))
  redis.call('HSET', tk, unpack(tokens))
  redis.call('ZADD', leased, unpack(leases))
  local payloads = redis.call('HMGET', jobs, unpack(ids))
  for n = 1, #ids do out[(n - 1) * 5 + 1] = payloads[n] or '' end
  return out
end
