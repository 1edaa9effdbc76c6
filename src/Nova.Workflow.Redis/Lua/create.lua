-- Creates the bound execution. ARGV[a + 1] onwards: n, workflow, version, input, traceparent, idemKey, failureMode, plan key,
-- retentionMs, channel, executionId, then (fused variant) the enqueue arguments, whose queue keys follow KEYS[kb].
-- The plan's fields: their count at ARGV[fieldAt], then the field/value pairs. A caller that believes the plan is stored
-- already sends none; when it is not (a new plan, a flushed server) the reply is { 3 } and the caller sends them.
-- idem: the idempotency key, or '' when there is none (on a cluster the caller claims it first). The fused variant also
-- adds the execution to the listing and active indexes, the last two keys (create_many: at its end, for all together).
-- create_many sets CREATED to a table: the ids of the executions it created wait there and go to the indexes at its end.
local CREATED
-- The roots of each plan a create of this call has read, by plan key: a batch of creates of one workflow reads them once
-- (a plan hash is not removed while a script runs).
local ROOTS
local function create(a, fieldAt, kb, idem)
  use_plan(ARGV[a + 8])
  local fields = tonumber(ARGV[fieldAt])
  local roots
  if fields == 0 then
    roots = ROOTS[P]
    if not roots then
      -- Every stored plan has roots: a plan without them is not stored.
      roots = redis.call('HGET', P, 'roots')
      if not roots then return { 3 } end
      ROOTS[P] = roots
    end
  else
    local batch = { 'HSET', P }
    for k = fieldAt + 1, fieldAt + fields do
      batch[#batch + 1] = ARGV[k]
      if #batch >= 2002 then
        redis.call(unpack(batch))
        batch = { 'HSET', P }
      end
    end
    if #batch > 2 then redis.call(unpack(batch)) end
    if fields > 2 * HASHTABLE_AT then redis.call('HSET', P, '~', HASHTABLE_MARK) end
  end
  if idem and idem ~= '' then
    local existing = redis.call('GET', idem)
    if existing then return { 1, existing } end
    redis.call('SET', idem, ARGV[a + 11], 'PX', tonumber(ARGV[a + 9]) + 604800000)
  end
  -- Every execution hash holds its status: bind found one when the execution exists.
  if execStatus then return { 2 } end
  -- A count of 0 ('done', 'rv': nodes finished, awaiting review) and an empty traceparent or idempotency key are not
  -- written: each reads as absent the same way (measured: 2% of the server's instructions under single-node workflows).
  redis.call('HSET', X, 'st', '1', 'wf', ARGV[a + 2], 'ver', ARGV[a + 3], 'n', ARGV[a + 1], 'ca', NOWS, 'in', ARGV[a + 4],
    'fm', ARGV[a + 7], 'p', P, 'ret', ARGV[a + 9], 'ch', ARGV[a + 10], 'nf', NODE_FORMAT)
  if ARGV[a + 5] ~= '' or ARGV[a + 6] ~= '' then redis.call('HSET', X, 'tp', ARGV[a + 5], 'ik', ARGV[a + 6]) end
  execStatus = 1
  N = tonumber(ARGV[a + 1])
  retention = tonumber(ARGV[a + 9])
  failFast = ARGV[a + 7] == '0'
  -- About three fields per node: its record, its output, and the count or outcomes of the edges into it.
  if N * 3 > HASHTABLE_AT then redis.call('HSET', S, '~', HASHTABLE_MARK) end
  ev(0, -1, 0)
  local list = {}
  for root in string.gmatch(roots or redis.call('HGET', P, 'roots'), '(%d+)') do list[#list + 1] = NUM[root] end
  if #list < 8 then
    for _, i in ipairs(list) do
      -- The root's queue, priority and rate limit, for the job queue() makes.
      queues[i] = { pget('q', i), pget('pr', i), pget('rl', i), '0' }
      -- A new execution's node has no record yet: none is read.
      queue(i, 1, nil, true, node_of(i, false))
    end
  else
    -- Many roots (a wide workflow): what queue() does per root, with the plan read and the records written in bulk (a
    -- new execution's nodes have none yet).
    local names, qs, prs, rls = pmany('id', list), pmany('q', list), pmany('pr', list), pmany('rl', list)
    local fields = {}
    local queued = '1|1|0|' .. NOWS .. '|||||'
    for k, i in ipairs(list) do
      ids[i] = names[k]
      queues[i] = { qs[k], prs[k], rls[k], '0' }
      local n = #fields
      fields[n + 1], fields[n + 2] = IX[i], queued
      if n + 2 >= 2500 or k == #list then
        redis.call('HSET', S, unpack(fields))
        fields = {}
      end
      ev(1, i, 1)
      job(i, 1, 0)
    end
  end
  if FUSED then
    -- Eager start: a worker of the caller's process offers a free slot on a queue (its name and a fresh lease token follow
    -- the block, '' when none). A root on that queue is then started for it at once, leased to it, and skips the claim,
    -- but only while that queue has nothing waiting: ahead of queued work it would take the slot from older jobs.
    local sb = a + 12
    local qn = NUM[ARGV[sb]]
    local offerQueue, token = ARGV[sb + qn + 6], ARGV[sb + qn + 7]
    if token ~= '' and q_waiting(kb, sb, offerQueue) then token = '' end
    if token ~= '' then info = { '', ARGV[a + 2], ARGV[a + 3] } end
    fused_enqueue(sb, kb, offerQueue, '', '', token)
    -- The reply lists no jobs: they are the plan's roots at attempt 1, which the caller makes from its own plan. A wide
    -- workflow's were five values per root, each turned into a reply value here and parsed back by the caller (measured:
    -- see the commit).
    jobs, jobIndex = {}, {}
    if CREATED then
      CREATED[#CREATED + 1] = ARGV[a + 11]
    else
      redis.call('ZADD', KEYS[#KEYS - 1], NOWS, ARGV[a + 11])
      redis.call('SADD', KEYS[#KEYS], ARGV[a + 11])
    end
  end
  return result(0, continued)
end
