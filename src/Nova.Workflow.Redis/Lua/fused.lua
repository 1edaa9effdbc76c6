-- Fused variant (single server): the script also enqueues the jobs it made ready and acks the job it
-- completed, so completion, release of children and ack are one atomic round trip.
-- KEYS from keyBase + 1: per queue its six keys (q_record.lua).
-- What every transition of one execution through one queue layout shares is one block of ARGV, given once per call however
-- many transitions use it (the batched completions send dozens of one execution): from `sb`, the queue count, the queue
-- names..., the wake prefix, the execution id (N format), the traceparent, then for eager dispatch the
-- worker id and lease ms ('' when no worker offers). A completion adds its own: the acked job's queue, id and lease token
-- ('' when there is no ack) and the lease token for eager dispatch ('' when the worker made no offer).
-- Eager dispatch: of the jobs the completion made ready on the acked job's queue (due now, not rate limited), the one of highest
-- priority is started for the completing worker and written already leased to it; `continued` describes it for the reply.
-- A job these scripts enqueue has a short payload, "~priority|index|s|traceparent", not the JSON a caller's enqueue stores
-- (JobCodec): its execution, node and attempt are its id, and its queue is the one it is in. It also carries what the
-- claim would otherwise read from the plan: the node's index, and s = 1 when the node has no rate limit and no parents, so
-- it starts with nothing more read. The JSON (about 150 bytes) was made, stored, read back, searched and rewritten with
-- each lease: the short form took 7% off the server's instructions under a wide workflow (measured: see the commit).
-- FUSED: whether this call's transitions also enqueue and ack (set by begin()).
local FUSED = false
local continued = EMPTY
-- Acks the completions of this script asked for, per queue (its key base): written together at the end (flush_acks).
local acks = {}
-- A script that applies many transitions (complete_many, create_many) sets DEFER to a table: the jobs due now that they
-- make ready then wait there, per queue, and put_due() puts them at the end with one bulk write per queue, in place of
-- one per transition. Other scripts put them as they go.
local DEFER
-- create_many sets LEASED to a table: the roots it starts for a worker (eager start) wait there, per queue, and put_leased()
-- puts them at its end with one bulk write per queue, as put_due() does the due ones. A new execution's job cannot be in
-- its queue already, so each start stands without waiting for its put to say so (a completion's eager child does wait).
local LEASED
local function put_leased()
  for o, d in pairs(LEASED) do q_put_many(o, d[1], d[2], d[3], d[4], d[5]) end
end
local function put_due(pending)
  for o, d in pairs(pending) do
    local put
    if #d[1] == 1 then
      put = q_put(o, d[1][1], d[2][1], d[3][1], 0, NOW)
    else
      put = q_put_many(o, d[1], d[2], d[3]) > 0
    end
    -- A wake-up only when a worker waits on the queue (q_idle.lua marked it idle); HDEL takes the mark.
    if put and redis.call('HDEL', KEYS[o + 5], 'idle') == 1 then redis.call('PUBLISH', d[5] .. d[4], '1') end
  end
end
local function flush_acks()
  for kb, a in pairs(acks) do q_ack_many(kb, a[1], a[2]) end
  acks = {}
end
-- The per-queue key bases of a queue layout, by its first key's index: made once per call and layout. Every block of a
-- layout names its queues alike, so a batch of creates (a block each) shares one.
local OFFSETS = {}
local function offsets_of(sb, keyBase)
  local offset = OFFSETS[keyBase]
  if not offset then
    offset = {}
    for k = 1, NUM[ARGV[sb]] do offset[ARGV[sb + k]] = keyBase + 1 + (k - 1) * 6 end
    OFFSETS[keyBase] = offset
  end
  return offset
end
-- Whether queue q of the layout has a job a claim would take now: one ready, a delayed one due or a lapsed lease, or one
-- this script holds back to put at its end (DEFER). Read once per queue and call (WAITING): a job this call starts eagerly
-- is leased, and one it makes due is in DEFER.
local WAITING = {}
local function q_waiting(keyBase, sb, q)
  local o = offsets_of(sb, keyBase)[q]
  if not o then return true end
  if DEFER and DEFER[o] then return true end
  local w = WAITING[o]
  if w == nil then
    w = redis.call('ZCARD', KEYS[o]) > 0
    if not w then
      local d = redis.call('ZRANGE', KEYS[o + 2], 0, 0, 'WITHSCORES')
      local l = redis.call('ZRANGE', KEYS[o + 3], 0, 0, 'WITHSCORES')
      w = (d[2] and tonumber(d[2]) <= NOW) or (l[2] and tonumber(l[2]) <= NOW) or false
    end
    WAITING[o] = w
  end
  return w
end
local function fused_enqueue(sb, keyBase, ackQueue, ackId, ackToken, leaseToken)
  local qn = NUM[ARGV[sb]]
  local offset = offsets_of(sb, keyBase)
  local wake, execN, tp = ARGV[sb + qn + 1], ARGV[sb + qn + 2], ARGV[sb + qn + 3]
  local worker, leaseMs = ARGV[sb + qn + 4], NUM[ARGV[sb + qn + 5]]
  local eager = 0
  if leaseToken ~= '' and execStatus == 1 then
    local best = -1
    for j = 1, #jobs, 5 do
      local pr = tonumber(jobs[j + 4])
      if tonumber(jobs[j + 2]) == 0 and jobs[j + 3] == ackQueue and pr > best then
        local rl = queues[jobIndex[j]][3]
        if not rl or rl == '' then eager, best = j, pr end
      end
    end
  end
  -- The jobs the reply lists: all but the one started here (a copy only when one was).
  local kept = eager > 0 and {} or jobs
  -- Jobs due now, per queue (its key base), put together after the loop, or at the end of the script (DEFER).
  local due = DEFER or {}
  -- The payload's end, made once per call, and only when there are jobs: most completions of a wide or single-node
  -- workflow make none.
  local tail = #jobs > 0 and '|' .. tp
  for j = 1, #jobs, 5 do
    local node, attempt, nb, q, pr = jobs[j], jobs[j + 1], tonumber(jobs[j + 2]), jobs[j + 3], tonumber(jobs[j + 4])
    local i = jobIndex[j]
    local statics = queues[i]
    local o = offset[q]
    local id = execN .. ':' .. node .. ':' .. IX[attempt]
    local s = '|0'
    if (not statics[3] or statics[3] == '') and NUM[statics[4]] == 0 then s = '|1' end
    local payload = '~' .. IX[pr] .. '|' .. IX[i] .. s .. tail
    if eager > 0 and j ~= eager then for k = 0, 4 do kept[#kept + 1] = jobs[j + k] end end
    if j == eager then
      -- Started and leased in one step: a lapsed lease makes it ready again like any other delivery.
      local expires = NOW + leaseMs
      local put = true
      if LEASED then
        local d = LEASED[o]
        if not d then
          d = { {}, {}, {}, {}, {} }
          LEASED[o] = d
        end
        local n = #d[1] + 1
        d[1][n], d[2][n], d[3][n], d[4][n], d[5][n] = id, payload, pr, leaseToken, expires
      else
        put = q_put(o, id, payload, pr, nb, NOW, leaseToken, expires)
      end
      if put then
        local r = node_read(i)
        r[1], r[5], r[6], r[7], r[9] = 2, leaseToken, NOWS, tostring(expires), worker
        node_write(i, r)
        ev(2, i, NUM[attempt])
        local info = started_info(i)
        continued = { info[1], info[2], info[3], info[4], node, attempt, q, pr, 1, expires }
      end
    elseif nb > NOW then
      q_put(o, id, payload, pr, nb, NOW)
    else
      local d = due[o]
      if not d then
        d = { {}, {}, {}, q, wake }
        due[o] = d
      end
      local n = #d[1] + 1
      d[1][n], d[2][n], d[3][n] = id, payload, pr
    end
  end
  if not DEFER then put_due(due) end
  if ackId ~= '' then
    local o = offset[ackQueue]
    local a = acks[o]
    if not a then
      a = { {}, {} }
      acks[o] = a
    end
    a[1][#a[1] + 1] = ackId
    a[2][#a[2] + 1] = ackToken
  end
  jobs = kept
end
