-- Leases up to `max` jobs of the queue whose keys start at KEYS[kb] (q_record.lua). Due delayed jobs are promoted and
-- lapsed leases taken back first. ARGV[tokenAt + n - 1] is the fresh lease token of the n-th job. Returns (payload, token,
-- deliveries, leaseExpiresMs, id) per job.
-- The ids of up to k ready jobs, oldest (lowest sequence) first, whatever their priority. A score is
-- (9 - priority) * 1e13 + sequence, so each priority's jobs are one band of scores in sequence order: when the first and
-- the last ready job share a band, the oldest are simply the first; else the first k of each band between are merged.
local BAND = 1e13
local function oldest(ready, k)
  local first = redis.call('ZRANGE', ready, 0, 0, 'WITHSCORES')
  local last = redis.call('ZRANGE', ready, -1, -1, 'WITHSCORES')
  if #first == 0 then return {} end
  local b0, b1 = math.floor(tonumber(first[2]) / BAND), math.floor(tonumber(last[2]) / BAND)
  if b0 == b1 then return redis.call('ZRANGE', ready, 0, k - 1) end
  local seqs, ids = {}, {}
  for b = b0, b1 do
    local got = redis.call('ZRANGEBYSCORE', ready, string.format('%.0f', b * BAND), '(' .. string.format('%.0f', (b + 1) * BAND),
      'WITHSCORES', 'LIMIT', 0, k)
    for m = 1, #got, 2 do
      ids[#ids + 1] = got[m]
      seqs[got[m]] = tonumber(got[m + 1]) % BAND
    end
  end
  table.sort(ids, function(x, y) return seqs[x] < seqs[y] end)
  for m = #ids, k + 1, -1 do ids[m] = nil end
  return ids
end

local function dequeue(now, kb, max, leaseMs, fairness, tokenAt)
  local ready, delayed, leased, jobs, meta = KEYS[kb], KEYS[kb + 2], KEYS[kb + 3], KEYS[kb + 4], KEYS[kb + 5]
  -- Makes a job ready by its record's score; unlease: also clear its lapsed lease's token, so that lease's holder can no
  -- longer ack or extend it.
  local function make_ready(id, unlease)
    local v = redis.call('HGET', jobs, id)
    if not v then return end
    local score, dl, _, payload = rec_parse(v)
    if not score then return end
    if unlease then redis.call('HSET', jobs, id, rec(score, dl, '', payload)) end
    redis.call('ZADD', ready, score, id)
  end
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', delayed, '-inf', now, 'LIMIT', 0, 1000)) do
    redis.call('ZREM', delayed, id)
    make_ready(id, false)
  end
  -- Leases that lapsed: their worker died or froze; deliver them again.
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', leased, '-inf', now, 'LIMIT', 0, 1000)) do
    redis.call('ZREM', leased, id)
    make_ready(id, true)
  end
  -- The picks go in one pass: the n-th job of this call is the oldest (oldest()) when the queue's n-th take overall falls
  -- on the fairness interval, else the first by priority (ready). Both lists are of the same jobs, so the first `max` of
  -- each always have an untaken one while jobs remain.
  local out = {}
  local lease = now + leaseMs
  local leaseText = tostring(lease)
  -- Bounded so the bulk commands below stay within Lua's unpack limit.
  max = math.min(max, 1000)
  local byPriority = redis.call('ZRANGE', ready, 0, max - 1)
  if #byPriority == 0 then return out end
  local m = redis.call('HMGET', meta, 'taken', 'fmt')
  local taken = tonumber(m[1]) or 0
  -- A queue an earlier build wrote has an age set, which nothing here reads or keeps: deleted once (at the first take,
  -- so polling an empty queue writes nothing). An earlier build cannot work the queue after this one: its fairness takes
  -- read the age set. Upgrade every process together.
  if m[2] ~= '2' then
    redis.call('UNLINK', KEYS[kb + 1])
    redis.call('HSET', meta, 'fmt', '2')
  end
  local byAge
  local picked, ids, leases = {}, {}, {}
  local p, a = 1, 1
  for n = 1, math.min(max, #byPriority) do
    local id
    if (taken + n) % fairness == 0 then
      byAge = byAge or oldest(ready, max)
      while byAge[a] and picked[byAge[a]] do a = a + 1 end
      id = byAge[a]
    else
      while byPriority[p] and picked[byPriority[p]] do p = p + 1 end
      id = byPriority[p]
    end
    picked[id] = true
    ids[n] = id
    leases[#leases + 1] = leaseText
    leases[#leases + 1] = id
  end
  redis.call('HINCRBY', meta, 'taken', IX[#ids])
  redis.call('ZREM', ready, unpack(ids))
  z_add(leased, unpack(leases))
  -- Each record read, and written back leased, in one command each. A ready id without a record (a damaged store) is
  -- leased with an empty payload, so the worker dead-letters it and its ack clears it.
  local records = redis.call('HMGET', jobs, unpack(ids))
  -- With the mark (q_record.lua), in the same command.
  local writes = { '~', HASHTABLE_MARK }
  for n = 1, #ids do
    local v = records[n]
    local score, dl, payload = '0', 0, ''
    if v then
      local s, d, _, pl = rec_parse(v)
      score, dl, payload = s or '0', d, pl
    end
    dl = dl + 1
    local token = ARGV[tokenAt + n - 1]
    writes[#writes + 1] = ids[n]
    writes[#writes + 1] = rec(score, dl, token, payload)
    out[#out + 1] = payload
    out[#out + 1] = token
    out[#out + 1] = dl
    out[#out + 1] = lease
    out[#out + 1] = ids[n]
  end
  redis.call('HSET', jobs, unpack(writes))
  return out
end
