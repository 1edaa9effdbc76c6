-- Claim and start (one server): leases up to ARGV[1] jobs of the queue whose keys are KEYS[1..6] and starts the nodes that
-- plainly can start (queued under the job's attempt, execution running, no rate limit), each under its job's lease token.
-- ARGV: max, leaseMs, fairness interval, key prefix, worker id, then one fresh lease token per job.
-- Returns { the jobs as dequeue returns them, per job its start (below) }.
BATCH = true
local claimed = dequeue(NOW, 1, NUM[ARGV[1]], NUM[ARGV[2]], NUM[ARGV[3]], 6)
local prefix, worker, leaseMs = ARGV[4], ARGV[5], NUM[ARGV[2]]
local leaseEnds = tostring(NOW + leaseMs)
-- Per job k: pe[k] its execution (false when it is not started here), pn[k] its node id, pa[k] its attempt, pi[k] its node
-- index, ps[k] whether it starts with nothing more read, pt[k] its lease token: lists, not a table per job. A job id is
-- "<execution id (32 hex digits)>:<node>:<attempt>". A job a script enqueued has the short payload fused.lua writes,
-- which holds the node's index and s (1 when the node has no rate limit and no parents). A caller's enqueue stores JSON
-- (JobCodec), which is not decoded: it is only checked to have the node and queue the worker needs (JobCodec.TryParse),
-- and searched for an index (i) and s as earlier builds wrote them there. JSON escapes every quote inside a string, so
-- '"i":' matches only the key. The keys are found by plain search (memchr, not the pattern matcher trying each
-- position); a key's value is checked or read where it was found.
local pe, pn, pa, pi, ps, pt = {}, {}, {}, {}, {}, {}
local count = 0
-- Whether the string value of the key found at k (its first quote) is not empty: '"n":"' is five characters.
local function filled(payload, k)
  local b = k and string.byte(payload, k + 5)
  return b and b ~= 34
end
for j = 1, #claimed, 5 do
  local payload = claimed[j]
  local exec, node, a = string.match(claimed[j + 4], '^(%x+):(.+):(%d+)$')
  count = count + 1
  pe[count] = false
  if exec and #exec == 32 then
    if string.byte(payload, 1) == 126 then
      -- '~': "~priority|index|s|traceparent".
      local i, s = string.match(payload, '^~%-?%d+|(%d+)|([01])|')
      if i then
        pe[count], pn[count], pa[count], pi[count], ps[count], pt[count] = exec, node, NUM[a], i, s == '1', claimed[j + 1]
      end
    elseif filled(payload, string.find(payload, '"n":"', 1, true)) and filled(payload, string.find(payload, '"q":"', 1, true)) then
      local at = string.find(payload, '"i":', 1, true)
      pe[count], pn[count], pa[count], pi[count], ps[count], pt[count] = exec, node, NUM[a],
        at and string.match(payload, '^%d+', at + 4), string.find(payload, '"s":1', 1, true), claimed[j + 1]
    end
  end
end
-- Per job: 0 when it was not started here, else its start as result() appends it (FLAT; SHORT: -2 for a start with no
-- parents of the execution the start before it started). The workflow's input, name and version go with an execution's
-- first start of the reply only ('' in the others; a workflow's name is never empty): a wide execution's input is not
-- sent once per node.
local starts = {}
FLAT = starts
SHORT = true
local lastStarted
-- The keys of the last job's execution: a claim often takes many jobs of one.
local lastExec, xk, sk, hk
for k = 1, count do
  local started = false
  local exec = pe[k]
  if exec then
    if exec ~= lastExec then
      local tag = prefix .. ':{' .. exec .. '}'
      lastExec, xk, sk, hk = exec, tag .. ':x', tag .. ':s', tag .. ':h'
    end
    if bind(xk, sk, hk, true) and execStatus then
      -- The records of this and the following jobs of the same execution, read in one command.
      local list = {}
      for m = k, count do
        if pe[m] ~= exec then break end
        pi[m] = NUM[pi[m]] or nidx(pn[m])
        list[#list + 1] = pi[m]
      end
      prefetch(list)
    end
    if execStatus == 1 then
      local i = NUM[pi[k]] or nidx(pn[k])
      local r = i and node_read(i)
      if r and r[1] == 1 and NUM[r[2]] == pa[k] then
        ids[i] = pn[k]
        local rl, parents = false, ''
        if not ps[k] then
          rl, parents = pget('rl', i), pget('pa', i) or ''
        end
        if not rl or rl == '' then
          r[1], r[5], r[6], r[7], r[9] = 2, pt[k], NOWS, leaseEnds, worker
          node_write(i, r)
          ev(2, i, pa[k])
          local x = started_info(i, parents)
          if exec == lastStarted then
            if x[4] == EMPTY then x = SAME_START else x[1], x[2], x[3] = '', '', '' end
          end
          lastStarted = exec
          started = result(0, x)
        end
      end
    end
  end
  if not started then starts[#starts + 1] = 0 end
end
if X then flush() end
return { claimed, starts }
