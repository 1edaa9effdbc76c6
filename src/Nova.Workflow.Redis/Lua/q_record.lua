-- A queue's keys, from KEYS[kb]: ready (zset by score), age (a zset by sequence that earlier builds kept; the first dequeue
-- of this build deletes it), delayed (zset by due time), leased (zset by lease expiry), jobs (hash), meta (hash: the
-- sequence 'seq', the take count 'taken', the 'idle' mark, and 'fmt' = 2 once the age set is gone).
-- The ready score orders by priority, then sequence: the oldest ready job is the first of its priority's band of scores,
-- so the fairness rule finds it there (q_dequeue.lua) and no second set is kept per job.
-- The jobs hash holds one record per job, "score|deliveries|token|payload": the ready score ((9 - priority) * 1e13 +
-- sequence), how often it was leased, the current lease's token ('' when none) and the job's payload (JSON as JobCodec
-- writes it, or the short form of a job the scripts enqueued: fused.lua). With all of a job in one field, its enqueue is
-- one write, a lease rewrites it in the dequeue's one bulk HSET, and an ack is one read and one delete.
-- The dequeue also writes a field '~' with a long value (HASHTABLE_MARK, prelude.lua), never deleted: records are short,
-- and a hash of short values is kept as one flat list, which every read and write scans (measured: 3% more server
-- instructions under single-node workflows), until it holds 128 fields. The mark makes it a hash table for good, and no
-- job's id is '~'.

-- The record's parts; a record that does not parse (a corrupted store) reads as a payload nobody can parse, which the
-- worker dead-letters.
local function rec_parse(v)
  local score, dl, tk, at = string.match(v, '^(%d+)|(%d+)|(%x*)|()')
  if not score then return nil, 0, '', v end
  return score, NUM[dl], tk, string.sub(v, at)
end
local function rec(score, dl, tk, payload) return score .. '|' .. IX[dl] .. '|' .. tk .. '|' .. payload end
-- The record's lease token; nil when there is no record (v false or nil) or it does not parse.
local function rec_token(v) return v and string.match(v, '^%d+|%d+|(%x*)|') end

-- Adds (score, member) pairs to a queue's zset kept as a skip list. Redis keeps a zset of up to 128 members of up to 64
-- bytes as one flat list, which every insert walks comparing scores (each parsed back from text, strtod) and every
-- removal searches: the leased set of a busy queue hovers below 128 (claims add, completions take away). Under a wide
-- workflow of 2,000 nodes its inserts and searches were about 83M of the server's 514M instructions, 8M as a skip list
-- (callgrind; the whole run 514M -> 490M). One longer member makes Redis keep
-- the set as a skip list until it is emptied and deleted: the mark goes in with the pairs and out again at once, so no
-- reader sees it, and a set made afresh is a skip list from its first write.
local function z_add(key, ...)
  redis.call('ZADD', key, '0', HASHTABLE_MARK, ...)
  redis.call('ZREM', key, HASHTABLE_MARK)
end

-- Puts a new job in the queue whose keys start at KEYS[kb]: delayed when nb (ms) lies after now, else ready; or, given a
-- lease token, leased to it until leaseUntil (eager dispatch). False when a job with this id is there already: an id is
-- execution:node:attempt, so a repeated enqueue changes nothing.
-- A priority is 0-9 (validated at registration); one outside that range is ordered as the nearest end, so its score stays a
-- record's unsigned number.
local function q_score(pr, seq) return string.format('%.0f', (9 - math.max(0, math.min(9, pr))) * 1e13 + seq) end

local function q_put(kb, id, payload, pr, nb, now, tk, leaseUntil)
  local seq = redis.call('HINCRBY', KEYS[kb + 5], 'seq', '1')
  local score = q_score(pr, seq)
  if redis.call('HSETNX', KEYS[kb + 4], id, rec(score, tk and 1 or 0, tk or '', payload)) == 0 then return false end
  if tk then
    redis.call('ZADD', KEYS[kb + 3], leaseUntil, id)
  elseif nb > now then
    redis.call('ZADD', KEYS[kb + 2], nb, id)
  else
    z_add(KEYS[kb], score, id)
  end
  return true
end

-- Removes the job if token still holds its lease. 1 when it did.
local function q_ack(kb, id, token)
  local jobs = KEYS[kb + 4]
  if rec_token(redis.call('HGET', jobs, id)) ~= token then return 0 end
  redis.call('ZREM', KEYS[kb + 3], id)
  redis.call('HDEL', jobs, id)
  return 1
end

-- Puts new jobs, all ready now, in the queue at KEYS[kb] (ids, payloads, priorities: parallel lists), as q_put does one:
-- per 500 jobs one HMGET finds those already there, then one HINCRBY, one HSET and one ZADD put the rest. Returns how
-- many it put. Given lease tokens and lease ends (more parallel lists), puts them leased instead, as q_put does one.
local function q_put_many(kb, ids, payloads, prs, tokens, ends)
  local put = 0
  for from = 1, #ids, 500 do
    local to = math.min(from + 499, #ids)
    local have = redis.call('HMGET', KEYS[kb + 4], unpack(ids, from, to))
    local fresh = {}
    for k = from, to do
      if not have[k - from + 1] then fresh[#fresh + 1] = k end
    end
    if #fresh > 0 then
      local seq = redis.call('HINCRBY', KEYS[kb + 5], 'seq', IX[#fresh]) - #fresh
      local recs, ready = {}, {}
      for m = 1, #fresh do
        local k = fresh[m]
        local id = ids[k]
        seq = seq + 1
        local score = q_score(prs[k], seq)
        if tokens then
          recs[2 * m - 1], recs[2 * m] = id, rec(score, 1, tokens[k], payloads[k])
          ready[2 * m - 1], ready[2 * m] = ends[k], id
        else
          recs[2 * m - 1], recs[2 * m] = id, rec(score, 0, '', payloads[k])
          ready[2 * m - 1], ready[2 * m] = score, id
        end
      end
      redis.call('HSET', KEYS[kb + 4], unpack(recs))
      if tokens then z_add(KEYS[kb + 3], unpack(ready)) else z_add(KEYS[kb], unpack(ready)) end
      put = put + #fresh
    end
  end
  return put
end

-- Acks many jobs of the queue at KEYS[kb] as q_ack does one (ids, tokens: parallel lists), in three commands per 500.
local function q_ack_many(kb, ids, tokens)
  local jobs, leased = KEYS[kb + 4], KEYS[kb + 3]
  for from = 1, #ids, 500 do
    local to = math.min(from + 499, #ids)
    local records = redis.call('HMGET', jobs, unpack(ids, from, to))
    local held = {}
    for k = from, to do
      if rec_token(records[k - from + 1]) == tokens[k] then held[#held + 1] = ids[k] end
    end
    if #held > 0 then
      redis.call('ZREM', leased, unpack(held))
      redis.call('HDEL', jobs, unpack(held))
    end
  end
end
