-- Shared by every state script. An execution's keys: its hash X, its node hash S, its history list H, and its plan P.
-- bind() points the functions below at one execution; a script that handles one calls bind(KEYS[1], KEYS[2], KEYS[3])
-- first, a script that handles many binds each in turn.
-- P holds what never changes: per node its id, handler, queue, priority, trigger rule, parents and children, rate limit,
-- and the id-to-index map, plus the plan's roots and leaves. On one server it is one hash per distinct plan, shared by
-- every execution of it (X names it in 'p'); on a cluster it would sit in another slot, so there P is S itself.
-- S holds what changes, and only what has been written: a node never touched has status 0, attempt 0, no finished parents.
-- A node's state is one field of S, named by its index: its record (node_read). Its output ('o' .. index), error ('e' ..
-- index), finished-parent count ('pp' .. index) and the outcome of each edge into it ('eo' .. edge slot) are fields of
-- their own: children read outputs and joins count parents without the record.
-- Node status: 0 Pending 1 Queued 2 Running 3 Succeeded 4 Failed 5 Skipped 6 Canceled 7 AwaitingReview
-- Execution status: 0 Pending 1 Running 2 Paused 3 Succeeded 4 Failed 5 Canceled
-- Edge outcome: 1 Succeeded 2 Skipped 3 Failed 4 Canceled
-- The library's functions run many calls each: what one call sets (these, the bound execution, the lists below) begin()
-- (entry.lua) sets afresh at its start. NOW: the server's time in ms, read once per call.
local NOW
-- Lua turns a number into text with sprintf('%.14g') each time one is joined to a string or passed to redis.call, and
-- that formatting doubled the cost of the field writes here (measured: 20 HSETs of two number-suffixed fields, 44,000
-- scripts/s; with the same text already made, 96,000/s). So the time is made text once per call, and each node index once
-- (IX, kept by the library from call to call). The same holds for a number given to redis.call (Redis formats it with
-- snprintf('%.17g')): counts and other small numbers go as IX's text.
local NOWS
local IX
-- NUM is IX's inverse, text to number, for the small numbers that recur: counts, node indices, attempts, statuses,
-- argument positions. tonumber() of a text parses it twice (lua_isnumber, then lua_tonumber, strtod each time), and that
-- was 6% of the server's instructions under a wide workflow; a lookup here is a table read. Not for times or tokens: each
-- would stay. begin() drops both tables past NUMBER_LIMIT entries.
local NUM
local NUMBERS, NUMBER_LIMIT = 0, 200000
-- A hash of up to hash-max-listpack-entries fields (512 on some builds) is stored as one flat list that every HGET scans.
-- A plan's hash, and the node hash of an execution with more than a dozen nodes (about ten fields each), are read and
-- written dozens of times per node, so they get a value longer than hash-max-listpack-value (64 by default) under '~':
-- Redis then keeps them as hash tables from the start. 128 fields is where Redis's own default stops using a list.
local HASHTABLE_AT = 128
local HASHTABLE_MARK
-- EMPTY: an empty list for replies, never written to; eventsOut: whether a reply holds events (result()).
local EMPTY, eventsOut = {}, false
local X, S, H, P, events, jobs, jobIndex, execStatus, done, doneAtBind, N, watchedUntil, endWatchedUntil, retention, failFast, ids
-- Per bound execution: the node records this call has read or written (node_read), by node index.
local recs
-- Per bound execution: the outcome of each edge into a node, by edge slot, as this call wrote or read it (set_eo,
-- rule_holds): a child decided in the call that finished its parent does not read back the outcome just written.
local eos
-- Per bound execution: each job's queue fields (queues: see job()), and what started_info reads of the execution (info).
local queues, info
-- A plan hash never changes (it is named by its content's fingerprint), so on one server its fields are read once and kept
-- by the library from call to call: PLANS[plan key][field prefix][node index or id] = value, false when absent. PC is the
-- bound plan's. On a cluster the plan lives in each execution's node hash, which is not shared: there PC lasts one bind.
-- begin() drops the whole cache past PLAN_LIMIT values.
local PLANS, PLAN_VALUES, PLAN_LIMIT = {}, 0, 200000
local PC
local function use_plan(p)
  P = p
  if P == S then
    PC = {}
  else
    PC = PLANS[P]
    if not PC then
      PC = {}
      PLANS[P] = PC
    end
  end
end
-- Outputs this script wrote, per node, for the execution's result when a leaf's completion ends it.
local outputs
-- Whether this transition canceled a node: the caller revokes its runs here. Its other events reach watchers through PUBLISH
-- (below), so the reply carries the events only then.
local cancels
-- A script that applies many transitions (the batched completions) sets BATCH: it then keeps the bound execution's new
-- history entries (hist) and its done count in hand and writes each once, when it binds another execution and at its end
-- (flush), in place of one RPUSH and one HSET per transition. Other scripts write them as they go.
local BATCH = false
local hist = {}
-- With BATCH, node_write keeps the bound execution's record writes (field/value pairs of S) here too, and sync() writes
-- them in one HSET: before anything else reads S, when it binds another execution, and at its end (flush). A wide
-- execution's claim or completion batch then writes its records in one command, not one per node.
-- swpos: where in swrites each node's record waits (by node index), so a record written twice before a sync (a child
-- queued and then started for the completing worker) goes once, as its last value.
local swrites, swpos = {}, {}
local function sync()
  if #swrites > 0 then
    local w = swrites
    swrites, swpos = {}, {}
    redis.call('HSET', S, unpack(w))
  end
end
local function flush()
  sync()
  if #hist > 0 then
    -- Taken first: a failed write must not leave them to fail again in the next flush.
    local entries = hist
    hist = {}
    redis.call('RPUSH', H, unpack(entries))
  end
  if done ~= doneAtBind then
    redis.call('HSET', X, 'done', IX[done])
    doneAtBind = done
  end
end

-- The node hash's format, in the execution hash ('nf'): '2', one record per node (node_read). An execution without it was
-- written by an earlier build, with each part of a node's state in a field of its own ('s' .. index, 'a' .. index, ...).
local NODE_FORMAT = '2'
local LEGACY_PARTS = { 's', 'a', 'l', 'ra', 't', 'sa', 'le', 'ea', 'w' }
-- The records of nodes from .. from + count - 1 of node hash s as an earlier build kept them: false for a node with none.
local function legacy_records(s, from, count)
  local columns = {}
  for p = 1, #LEGACY_PARTS do
    local fields = {}
    for k = 1, count do fields[k] = LEGACY_PARTS[p] .. (from + k - 1) end
    columns[p] = redis.call('HMGET', s, unpack(fields))
  end
  local out = {}
  for k = 1, count do
    if columns[1][k] or columns[2][k] then
      local parts = {}
      for p = 1, #LEGACY_PARTS do parts[p] = columns[p][k] or '' end
      if parts[1] == '' then parts[1] = '0' end
      if parts[2] == '' then parts[2] = '0' end
      if parts[3] == '' then parts[3] = '0' end
      out[k] = table.concat(parts, '|')
    else
      out[k] = false
    end
  end
  return out
end
local migrate_nodes

-- Binds the execution whose keys are x, s, h: its status (nil when it does not exist), progress, settings, and fresh event
-- and job lists. One HMGET: every transition needs most of these. A script that handles many transitions (claim, the
-- batched completions) often binds the same execution again: then only the lists are fresh, and what was read stands,
-- since every change this script made to it went through these variables. rebind() forgets it (after a failed step).
-- withInfo: also read what started_info needs of the execution, in the same command (claim starts what it binds).
-- True when it bound an execution other than the one bound before.
local function bind(x, s, h, withInfo)
  cancels = false
  if x == X then
    -- A claim or completion batch binds each of its transitions: the lists are emptied in place unless a reply holds them
    -- (result()), not made anew, since most stay empty or short.
    if #events > 0 then
      if eventsOut then events = {} else for k = #events, 1, -1 do events[k] = nil end end
    end
    eventsOut = false
    if #jobs > 0 then jobs = {} end
    if next(jobIndex) then jobIndex = {} end
    return false
  end
  if X then flush() end
  X, S, H = x, s, h
  events, jobs, jobIndex, ids, queues, info, outputs, recs, eos = {}, {}, {}, {}, {}, nil, {}, {}, {}
  local v
  if withInfo then
    v = redis.call('HMGET', X, 'st', 'done', 'n', 'wu', 'ret', 'fm', 'wt', 'p', 'nf', 'in', 'wf', 'ver')
    info = { v[10], v[11], v[12] }
  else
    v = redis.call('HMGET', X, 'st', 'done', 'n', 'wu', 'ret', 'fm', 'wt', 'p', 'nf')
  end
  execStatus = NUM[v[1]]
  done = NUM[v[2]] or 0
  doneAtBind = done
  N = NUM[v[3]] or 0
  watchedUntil = tonumber(v[4]) or 0
  retention = NUM[v[5]] or 86400000
  failFast = v[6] == '0'
  endWatchedUntil = tonumber(v[7]) or 0
  use_plan(v[8] or S)
  -- An execution an earlier build wrote keeps its nodes' state in fields of their own: made records before anything reads it.
  if execStatus and v[9] ~= NODE_FORMAT then migrate_nodes() end
  return true
end
local function rebind()
  if X then flush() end
  X = nil
end

local function nget(f, i)
  sync()
  return redis.call('HGET', S, f .. IX[i])
end
-- A node's record holds its state in one field, "status|attempt|losses|readyAt|token|startedAt|leaseEnds|endedAt|worker"
-- (endedAt may be '+' and the milliseconds after startedAt):
-- ten fields of their own cost ten field names made, sent and looked up per write, and made each transition's writes
-- two to three times dearer (measured: the reads and writes of a claim and a completion of 10,000 nodes in one script,
-- 80-230 ms as fields, 35-70 ms as records). Times are
-- Unix ms; an empty part is unset (no token, not started); the worker comes last, as the one part that is free text.
-- node_read returns it as a table: [1] the status (a number), [2] to [9] the other parts as text.
local REC_PARTS = '^(%d)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|(.*)$'
local function node_parse(v)
  if v then
    local s, a, l, ra, t, sa, le, ea, w = string.match(v, REC_PARTS)
    if s then return { tonumber(s), a, l, ra, t, sa, le, ea, w } end
  end
  -- Never written (Pending, attempt 0), or a record that does not parse (a damaged store): read as never written.
  return { 0, '0', '0', '', '', '', '', '', '' }
end
-- Node i's record, given its stored value v as read already (statuses()): kept (recs) and kept current by node_write, so
-- what this call wrote stands over what it read before.
local function node_of(i, v)
  local r = recs[i]
  if not r then
    r = node_parse(v)
    recs[i] = r
  end
  return r
end
-- Node i's record; each is read once per bound execution.
local function node_read(i)
  return recs[i] or node_of(i, redis.call('HGET', S, IX[i]))
end
-- Writes node i's record r (node_read's, changed), with any further field/value pairs of S in the same command; with
-- BATCH at the next sync().
local function node_write(i, r, ...)
  recs[i] = r
  local v = IX[r[1]] .. '|' .. r[2] .. '|' .. r[3] .. '|' .. r[4] .. '|' .. r[5] .. '|' .. r[6] .. '|' .. r[7] .. '|' .. r[8] ..
    '|' .. r[9]
  if not BATCH then
    redis.call('HSET', S, IX[i], v, ...)
    return
  end
  local n = #swrites
  local at = swpos[i]
  if at then
    swrites[at] = v
  else
    swrites[n + 1], swrites[n + 2] = IX[i], v
    n = n + 2
    swpos[i] = n
  end
  if select('#', ...) > 0 then
    local more = { ... }
    for k = 1, #more do swrites[n + k] = more[k] end
    n = n + #more
  end
  -- Lua's unpack limit.
  if n >= 1000 then sync() end
end
-- A node's status; one never written is Pending.
local function nst(i) return node_read(i)[1] end
-- The bound plan's cache of field f.
local function pcache(f)
  local c = PC[f]
  if not c then
    c = {}
    PC[f] = c
  end
  return c
end
-- A static field of the plan: f .. i for a node index i, or f .. k for a text k; false when absent. Cached (PC).
local function pget(f, i)
  local c = pcache(f)
  local v = c[i]
  if v == nil then
    if type(i) == 'number' then v = redis.call('HGET', P, f .. IX[i]) else v = redis.call('HGET', P, f .. i) end
    -- Only a value is kept: a plan stores every node field (an empty one as ''), so an absent one means a plan hash lost on
    -- a flushed server, until a create stores it again (or a node id the plan does not have).
    if v then
      c[i] = v
      PLAN_VALUES = PLAN_VALUES + 1
    end
  end
  return v
end
local function pnum(f, i) return NUM[pget(f, i)] end
-- The index of the node with this id, or nil.
local function nidx(node) return NUM[pget('n2i:', node)] end
-- A node's id (ids: the ones this call was told, as by a job's payload).
local function nid(i) return ids[i] or pget('id', i) end
-- An event reaches a watcher through PUBLISH (result()), and the caller only when the transition canceled a node (the
-- reply then holds its events, and the caller revokes the canceled runs). So with no watcher of every event marked when
-- the execution was bound, only cancellations are kept, and the execution's end (10-12) for a waiter for the outcome,
-- which reads nothing else (RedisSignals). Most transitions of a busy server have no watcher, and an execution started and
-- waited for has only that waiter: this was two to four table writes and a node id lookup for each of them.
local function ev(code, i, attempt, msg)
  if code == 7 then
    cancels = true
  elseif watchedUntil <= NOW and (code < 10 or code > 12 or endWatchedUntil <= NOW) then
    return
  end
  events[#events + 1] = code
  if i >= 0 then events[#events + 1] = nid(i) else events[#events + 1] = '' end
  events[#events + 1] = attempt
  events[#events + 1] = msg or ''
end
local function terminal(s) return s == 3 or s == 4 or s == 5 or s == 6 end
local function finished() return execStatus == 3 or execStatus == 4 or execStatus == 5 end

-- Appends an entry (JSON) to the history: at once, or with BATCH at the next flush; 1,000 at most wait (Lua's unpack limit).
local function push_history(entry)
  if BATCH then
    hist[#hist + 1] = entry
    if #hist >= 1000 then flush() end
  else
    redis.call('RPUSH', H, entry)
  end
end

-- A history entry, {"n", "h", "a", "s", "sa", "ea", "w", "et", "em"}, made as text: its start, with the node's id and
-- handler, once per plan node (cached with the plan's fields), and a worker's part once while it is the same worker;
-- attempt and status by IX, the times as the text the caller has. cjson.encode of a table made a table per entry and
-- formatted each of its numbers (timed inside the function: 4.7 µs of a completion's 27).
local lastWorker, lastWorkerJson
local function json_text(v) if v and v ~= '' then return cjson.encode(v) end return '""' end
-- started, ended: Unix ms, as text or a number.
local function history(i, attempt, status, started, ended, worker, etype, emsg)
  local heads = pcache('hj')
  local head = heads[i]
  if not head then
    local id, handler = nid(i), pget('h', i)
    head = '{"n":' .. json_text(id) .. ',"h":' .. json_text(handler) .. ',"a":'
    -- Kept only when both were read: a plan hash lost on a flushed server is stored again by the next create (pget).
    if id and handler then
      heads[i] = head
      PLAN_VALUES = PLAN_VALUES + 1
    end
  end
  if worker ~= lastWorker then
    lastWorker, lastWorkerJson = worker, json_text(worker)
  end
  if type(started) == 'number' then started = string.format('%d', started) end
  if type(ended) == 'number' then ended = string.format('%d', ended) end
  if not started or started == '' then started = ended end
  push_history(head .. IX[attempt or 0] .. ',"s":' .. IX[status] .. ',"sa":' .. started .. ',"ea":' .. ended .. ',"w":' ..
    lastWorkerJson .. ',"et":' .. json_text(etype) .. ',"em":' .. json_text(emsg) .. '}')
end

-- Field f .. index of key for every index in list (f = '': the node records), one HMGET per 1,000 fields (Lua's unpack
-- limit): a join reads all its parents and the end of an execution all its nodes, thousands of HGETs otherwise. A field
-- that is not there reads false. Unsynced: the caller knows no write this call holds back (swrites) is among them, as
-- for the records of nodes not in recs, since node_write keeps each record it holds back there.
-- FIELDS[f]: the field names f .. index, made once each like IX's text (begin() drops them with IX): a snapshot or the
-- end of a large execution names thousands per call. Once: the names are made for this call only, as for the plan's
-- fields, read once per plan (PLANS keeps their values): kept, they were four strings per node of every large plan left
-- in the library's memory, which each garbage collection of it walks (a 10,000-node plan's were 40,000 of its 9.6 MB).
local FIELDS
local function many(key, f, list, unsynced, once)
  if key == S and not unsynced then sync() end
  local out, fields, n, o = {}, {}, 0, 0
  local names = IX
  if once and f ~= '' then
    names = setmetatable({}, { __index = function(_, i) return f .. IX[i] end })
  elseif f ~= '' then
    names = FIELDS[f]
    if not names then
      names = setmetatable({}, { __index = function(c, i)
        local s = f .. IX[i]
        c[i], NUMBERS = s, NUMBERS + 1
        return s
      end })
      FIELDS[f] = names
    end
  end
  for k = 1, #list do
    n = n + 1
    fields[n] = names[list[k]]
    if n == 1000 or k == #list then
      local v = redis.call('HMGET', key, unpack(fields, 1, n))
      -- Counted: #out per value searched the table's size each time.
      for m = 1, n do out[o + m] = v[m] end
      o = o + n
      n = 0
    end
  end
  return out
end
-- The status of every node index in list, and their stored records (many() reads them, 1,000 per command), for node_of.
-- Only the records not in recs are read (their stored value is nil here: node_of takes recs' over it).
local function statuses(list)
  local out, need, at, v = {}, {}, {}, {}
  for k = 1, #list do
    if not recs[list[k]] then
      need[#need + 1] = list[k]
      at[#need] = k
    end
  end
  if #need > 0 then
    local read = many(S, '', need, true)
    for m = 1, #need do v[at[m]] = read[m] end
  end
  for k = 1, #list do
    local r = recs[list[k]]
    if r then
      out[k] = r[1]
    else
      -- The record's first character; 0 (Pending) when there is none or it is no digit, as node_parse reads it.
      local d = v[k] and string.byte(v[k], 1)
      if d and d >= 48 and d <= 57 and string.byte(v[k], 2) == 124 then out[k] = d - 48 else out[k] = 0 end
    end
  end
  return out, v
end
-- Reads the records of the node indices in list not read yet in one command (many()): a batch that handles many nodes of
-- one execution reads them together, not one HGET each.
local function prefetch(list)
  local need = {}
  for k = 1, #list do
    local i = list[k]
    if i and not recs[i] then need[#need + 1] = i end
  end
  if #need < 2 then return end
  local v = many(S, '', need, true)
  for k = 1, #need do node_of(need[k], v[k]) end
end
-- Makes the bound execution's nodes records (legacy_records), 500 nodes per command, and marks its format: once, by the first
-- script of this build to bind it. An earlier build cannot read what this one writes: upgrade every process together.
migrate_nodes = function()
  for from = 0, N - 1, 500 do
    local count = math.min(500, N - from)
    local recsOf = legacy_records(S, from, count)
    local writes, gone = {}, {}
    for k = 1, count do
      if recsOf[k] then
        writes[#writes + 1] = IX[from + k - 1]
        writes[#writes + 1] = recsOf[k]
      end
      for p = 1, #LEGACY_PARTS do gone[#gone + 1] = LEGACY_PARTS[p] .. (from + k - 1) end
    end
    if #writes > 0 then redis.call('HSET', S, unpack(writes)) end
    redis.call('HDEL', S, unpack(gone))
  end
  redis.call('HSET', X, 'nf', NODE_FORMAT)
end
-- The plan's field f of every node index in list, as pget reads one: those not cached yet in one HMGET per 1,000.
local function pmany(f, list)
  local c = pcache(f)
  local out, missing = {}, {}
  for k = 1, #list do
    local v = c[list[k]]
    if v == nil then missing[#missing + 1] = list[k] else out[k] = v end
  end
  if #missing > 0 then
    local read = many(P, f, missing, false, true)
    for m = 1, #missing do
      if read[m] then c[missing[m]] = read[m] end
    end
    PLAN_VALUES = PLAN_VALUES + #missing
    local at = 0
    for k = 1, #list do
      if out[k] == nil then
        at = at + 1
        out[k] = read[at]
      end
    end
  end
  return out
end
-- The indices from, from + 1, ..., from + count - 1.
local function span(from, count)
  local t = {}
  for k = 1, count do t[k] = from + k - 1 end
  return t
end

-- A job to enqueue: node id, attempt, not-before (ms, 0 = now), queue, priority. jobIndex maps its place in jobs to the node.
-- queues[i]: the node's queue, priority, rate limit and parent count, read once (the fused enqueue puts the last two in
-- the job's payload, for the claim).
local function job(i, attempt, notBefore)
  local qp = queues[i]
  if not qp then
    qp = { pget('q', i), pget('pr', i), pget('rl', i), pget('pc', i) }
    queues[i] = qp
  end
  jobIndex[#jobs + 1] = i
  jobs[#jobs + 1] = nid(i)
  jobs[#jobs + 1] = attempt
  jobs[#jobs + 1] = notBefore
  jobs[#jobs + 1] = qp[1]
  jobs[#jobs + 1] = qp[2]
end

-- r: the node's record, when the caller has changed it (it is written here); ...: further field/value pairs of S to write.
local function queue(i, attempt, notBefore, emitQueued, r, ...)
  r = r or node_read(i)
  r[1], r[2], r[3], r[4], r[5] = 1, IX[attempt], '0', notBefore and tostring(notBefore) or NOWS, ''
  node_write(i, r, ...)
  if emitQueued then ev(1, i, attempt) end
  if execStatus == 1 then job(i, attempt, notBefore or 0) end
end

-- r: the node's record, when the caller has changed it (it is written here); ...: further field/value pairs of S to write.
local function finish(i, status, code, msg, r, ...)
  r = r or node_read(i)
  -- Ready-at, token and lease end mean nothing once a node has ended: cleared, the record is short again (end_exec), and
  -- shorter still with the end written as '+' and the milliseconds since the start, when the node started.
  r[1], r[4], r[5], r[7] = status, '', '', ''
  local started = tonumber(r[6])
  if started and started <= NOW then r[8] = '+' .. string.format('%d', NOW - started) else r[8] = NOWS end
  node_write(i, r, ...)
  done = done + 1
  ev(code, i, NUM[r[2]] or 0, msg)
end

-- Writes the outcome o of the edge in slot `slot` (eos keeps it for rule_holds).
local function set_eo(slot, o)
  eos[slot] = o
  redis.call('HSET', S, 'eo' .. IX[slot], IX[o])
end

local function rule_holds(c)
  local pc = pnum('pc', c)
  if pc == 0 then return true end
  local ps = pnum('ps', c)
  local succ, failed = 0, 0
  -- The outcomes this call has not written or read yet are read in one command.
  local unknown
  for slot = ps, ps + pc - 1 do
    if not eos[slot] then
      unknown = unknown or {}
      unknown[#unknown + 1] = slot
    end
  end
  if unknown then
    local read = many(S, 'eo', unknown)
    for k = 1, #unknown do eos[unknown[k]] = NUM[read[k]] or 0 end
  end
  for slot = ps, ps + pc - 1 do
    local o = eos[slot]
    if o == 1 then succ = succ + 1 elseif o == 3 or o == 4 then failed = failed + 1 end
  end
  local r = pnum('r', c)
  if r == 1 then return true
  elseif r == 2 then return succ > 0
  elseif r == 3 then return failed > 0
  elseif r == 4 then return failed == 0
  else return succ == pc end
end

-- Applies the trigger rule of a node whose parents are all done; true when it was skipped.
local function decide(c)
  if rule_holds(c) then
    queue(c, (NUM[node_read(c)[2]] or 0) + 1, nil, true)
    return false
  end
  finish(c, 5, 6)
  return true
end

-- Tells the children of a finished node how its edges ended (taken: '1'/'0' per outgoing edge, or false).
-- A node's 'ch' lists per child "index:edge slot:the child's parent count".
-- status: the start node's status when the caller has just written it.
local function propagate(start, taken, status)
  -- A leaf (most nodes of a wide workflow) tells no one.
  if pget('ch', start) == '' then return end
  local stack, takens = { start }, { taken }
  while #stack > 0 do
    local n = table.remove(stack)
    local tk = table.remove(takens)
    local st
    if n == start and status then st = status else st = nst(n) end
    local ch = pget('ch', n)
    if ch and ch ~= '' then
      local k = 0
      for cs, ps, pcs in string.gmatch(ch, '(%d+):(%d+):(%d+)') do
        local c = NUM[cs]
        k = k + 1
        local o
        if st == 3 then
          if tk and string.sub(tk, k, k) == '0' then o = 2 else o = 1 end
        elseif st == 4 then o = 3
        elseif st == 6 then o = 4
        else o = 2 end
        set_eo(NUM[ps], o)
        if nst(c) == 0 then
          -- 'pp': how many of its parents have finished; a child of one parent is ready now, with nothing counted (a
          -- retry sets 'pp' itself, control.lua).
          local pc = NUM[pcs]
          if (pc == 1 or redis.call('HINCRBY', S, 'pp' .. cs, '1') == pc) and decide(c) then
            stack[#stack + 1] = c
            takens[#takens + 1] = false
          end
        end
      end
    end
  end
end

-- Redis keeps a small hash as one compact list until a value longer than hash-max-listpack-value (64 bytes by default)
-- arrives, and never goes back: a running node's record (its lease token, times and worker) makes the node hash a hash
-- table, about 1,900 bytes more per finished 10-node execution (measured). So a finished execution with few nodes has its
-- node hash written anew once its records are short again (finish()): read, deleted and written back in one script, it
-- is a compact list again, unless a value (a large output, a long worker id) is still too long.
-- The record writes this call still holds (swrites) go in the same rewrite, not in a write of their own before the read.
local function compact_nodes()
  if N * 3 > HASHTABLE_AT then return end
  local all = redis.call('HGETALL', S)
  if #swrites > 0 then
    local at = {}
    for k = 1, #all, 2 do at[all[k]] = k end
    for k = 1, #swrites, 2 do
      local f = swrites[k]
      local m = at[f]
      if not m then
        m = #all + 1
        at[f], all[m] = m, f
      end
      all[m + 1] = swrites[k + 1]
    end
  end
  if #all == 0 or #all > 2 * HASHTABLE_AT then return end
  for k = 2, #all, 2 do
    if #all[k] > 64 then return end
  end
  swrites, swpos = {}, {}
  redis.call('DEL', S)
  redis.call('HSET', S, unpack(all))
end

-- field, value: one more field of the execution hash to write in the same command (its output or error), or nil. The
-- done count goes in that command too.
local function end_exec(status, code, msg, field, value)
  execStatus = status
  compact_nodes()
  doneAtBind = done
  -- The history list must exist before its expiry is set.
  flush()
  if field then
    redis.call('HSET', X, 'st', IX[status], 'ea', NOWS, 'rv', '0', 'done', IX[done], field, value)
  else
    redis.call('HSET', X, 'st', IX[status], 'ea', NOWS, 'rv', '0', 'done', IX[done])
  end
  ev(code, -1, 0, msg)
  local ret = IX[retention]
  redis.call('PEXPIRE', X, ret)
  redis.call('PEXPIRE', S, ret)
  redis.call('PEXPIRE', H, ret)
end

local function cancel_unfinished()
  local sts, stored = statuses(span(0, N))
  for i = 0, N - 1 do
    local s = sts[i + 1]
    if not terminal(s) then
      local r = node_of(i, stored[i + 1])
      if s == 2 then history(i, tonumber(r[2]) or 0, 6, r[6] ~= '' and r[6] or NOWS, NOWS, r[9], false, false) end
      finish(i, 6, 7, nil, r)
    end
  end
end

-- r: the node's record, when the caller has changed it (it is written here).
local function fail_node(i, errJson, msg, r)
  finish(i, 4, 5, msg, r, 'e' .. IX[i], errJson)
  if failFast then
    cancel_unfinished()
    end_exec(4, 11, msg, 'err', errJson)
  else
    propagate(i, false)
  end
end

local function check_finished()
  if finished() or done < N then return end
  local sts = statuses(span(0, N))
  for i = 0, N - 1 do
    if sts[i + 1] == 4 then
      local e = nget('e', i)
      local ok, decoded = pcall(cjson.decode, e)
      end_exec(4, 11, ok and decoded.m or '', 'err', e)
      return
    end
  end
  local leaves = pget('leaves', '')
  local out
  local single = string.match(leaves, '^(%d+)$')
  if single then
    -- The leaf's output, as this script wrote it when it completed the leaf just now.
    out = outputs[tonumber(single)] or nget('o', single)
  else
    local succeeded = {}
    for ls in string.gmatch(leaves, '(%d+)') do
      local leaf = NUM[ls]
      if sts[leaf + 1] == 3 then succeeded[#succeeded + 1] = leaf end
    end
    -- Joined once, from its pieces: no text made per leaf.
    local outs, names, parts = many(S, 'o', succeeded), pmany('id', succeeded), { '{' }
    for k = 1, #succeeded do
      local o = outs[k]
      if not o or o == '' then o = 'null' end
      local m = #parts
      parts[m + 1], parts[m + 2], parts[m + 3], parts[m + 4] = k > 1 and ',"' or '"', names[k], '":', o
    end
    parts[#parts + 1] = '}'
    out = table.concat(parts)
  end
  end_exec(3, 10, '', out and 'out', out)
end

-- Persists counters, publishes to watchers, and returns the transition.
-- What a worker needs to run a started node: workflow input, workflow name and version, succeeded parents' outputs.
-- pa: the node's parents when the caller has read them.
local function started_info(i, pa)
  -- A root's empty list is the shared EMPTY: callers only read it.
  local parents = EMPTY
  pa = pa or pget('pa', i)
  if pa and pa ~= '' then
    parents = {}
    local list, succeeded = {}, {}
    for ps in string.gmatch(pa, '(%d+)') do list[#list + 1] = NUM[ps] end
    local sts = statuses(list)
    for k = 1, #list do
      if sts[k] == 3 then succeeded[#succeeded + 1] = list[k] end
    end
    -- The outputs this call wrote (a chain's child started by the worker that finished its parent) are not read back; a
    -- null one was not stored, and reads as absent ('').
    local unread = {}
    for k = 1, #succeeded do
      if not outputs[succeeded[k]] then unread[#unread + 1] = succeeded[k] end
    end
    local read, names, at = #unread > 0 and many(S, 'o', unread), pmany('id', succeeded), 0
    for k = 1, #succeeded do
      local o = outputs[succeeded[k]]
      if o then
        if o == 'null' then o = '' end
      else
        at = at + 1
        o = read[at] or ''
      end
      parents[#parents + 1] = names[k]
      parents[#parents + 1] = o
    end
  end
  info = info or redis.call('HMGET', X, 'in', 'wf', 'ver')
  return { info[1], info[2], info[3], parents }
end

-- FLAT: set by the scripts that answer many transitions (claim, complete_many, create_many) to their reply list. result()
-- then appends its transition there and returns true (CODE: its code). Redis turns a reply of nested lists into its
-- protocol at a price per list (it looks up seven type fields in each and opens a deferred length; measured under a wide
-- workflow: 8% of the server's instructions with a list per transition and three inside it), so a batch answers with one
-- flat list: per transition its length L, then L values: code, done, total, status, now, the event count and events, the
-- job count and jobs, then the extra values, of which a list (the parents' outputs) goes as its length and its values.
-- flat_add appends a short reply ({ 1 }, { -1, message }) the same way: its length, then its values.
-- SHORT: set by the scripts whose callers read the short forms (claim, complete_many). Most transitions there say nothing
-- but that they happened: a completion of a leaf (code 0, no events or jobs returned, no eager start), and a start of the
-- execution the start before it in the reply started, with no parents (SAME_START as its extra). Those go as one value in
-- place of the eight to twelve above: -1 and -2 (ScriptResults.Next). Measured: see the commit.
local FLAT, CODE, SHORT
local SAME_START = {}
-- Appends list to out after position n, as its length and then its values; returns the last position written.
local function put_list(out, n, list)
  out[n + 1] = #list
  for k = 1, #list do out[n + 1 + k] = list[k] end
  return n + 1 + #list
end
local function flat_add(out, list) put_list(out, #out, list) end
local function result(code, extra)
  if not BATCH then flush() end
  -- Watchers of every event mark 'wu'; waiters for the outcome alone mark 'wt' and get the script that ends the execution.
  if #events > 0 and (watchedUntil > NOW or (endWatchedUntil > NOW and finished())) then
    redis.call('PUBLISH', redis.call('HGET', X, 'ch'), cjson.encode({ d = done, n = N, t = NOW, e = events }))
  end
  local e = cancels and events or EMPTY
  if FLAT then
    local out = FLAT
    if SHORT and code == 0 and e == EMPTY and #jobs == 0 and (not extra or extra == EMPTY or extra == SAME_START) then
      out[#out + 1] = extra == SAME_START and -2 or -1
      CODE = code
      return true
    end
    if extra == SAME_START then extra = { '', '', '', EMPTY } end
    local at = #out + 1
    out[at] = 0
    out[at + 1], out[at + 2], out[at + 3], out[at + 4], out[at + 5] = code, done, N, execStatus or -1, NOW
    local n = put_list(out, put_list(out, at + 5, e), jobs)
    if extra then
      for k = 1, #extra do
        local v = extra[k]
        if type(v) == 'table' then
          n = put_list(out, n, v)
        else
          n = n + 1
          out[n] = v
        end
      end
    end
    out[at] = n - at
    CODE = code
    return true
  end
  -- A list the reply holds is not reused (bind()): the reply is made from it when the script ends.
  eventsOut = cancels
  return { code, done, N, execStatus or -1, e, #jobs > 0 and jobs or EMPTY, extra or EMPTY, NOW }
end
