-- Claim and start (one server): leases up to ARGV[1] jobs of the queue whose keys are KEYS[1..6] and starts the nodes that
-- plainly can start (queued under the job's attempt, execution running, no rate limit), each under its job's lease token.
-- ARGV: max, leaseMs, fairness interval, key prefix, worker id, then one fresh lease token per job.
-- Returns { the jobs as dequeue returns them, per job its start as start.lua returns it or false when it was not started }.
BATCH = true
local claimed = dequeue(NOW, 1, tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), 6)
local prefix, worker, leaseMs = ARGV[4], ARGV[5], tonumber(ARGV[2])
local leaseEnds = tostring(NOW + leaseMs)
-- Per job: its execution, node id, attempt, node index, whether it starts with nothing more read and its lease token, or
-- false when it is not started here. A job id is
-- "<execution id (32 hex digits)>:<node>:<attempt>", so the payload is not decoded: it is only checked to have the node
-- and queue the worker needs (JobCodec.TryParse), and searched for what the script that enqueued it wrote (fused.lua):
-- the node's index (i) and s = 1 when the node has no rate limit and no parents. JSON escapes every quote inside a string,
-- so '"i":' matches only the key.
local parsed = {}
for j = 1, #claimed, 5 do
  local payload = claimed[j]
  local exec, node, a = string.match(claimed[j + 4], '^(%x+):(.+):(%d+)$')
  if exec and #exec == 32 and string.find(payload, '"n":"[^"]') and string.find(payload, '"q":"[^"]') then
    parsed[#parsed + 1] = { exec, node, tonumber(a), string.match(payload, '"i":(%d+)'), string.find(payload, '"s":1', 1, true),
      claimed[j + 1] }
  else
    parsed[#parsed + 1] = false
  end
end
local starts = {}
-- The keys of the last job's execution: a claim often takes many jobs of one.
local lastExec, xk, sk, hk
for k = 1, #parsed do
  local start = false
  local p = parsed[k]
  if p then
    local exec = p[1]
    if exec ~= lastExec then
      local tag = prefix .. ':{' .. exec .. '}'
      lastExec, xk, sk, hk = exec, tag .. ':x', tag .. ':s', tag .. ':h'
    end
    if bind(xk, sk, hk, true) and execStatus then
      -- The records of this and the following jobs of the same execution, read in one command.
      local list = {}
      for m = k, #parsed do
        local q = parsed[m]
        if not q or q[1] ~= exec then break end
        q[4] = tonumber(q[4]) or nidx(q[2])
        list[#list + 1] = q[4]
      end
      prefetch(list)
    end
    if execStatus == 1 then
      local i = p[4] and tonumber(p[4]) or nidx(p[2])
      local r = i and node_read(i)
      if r and r[1] == 1 and tonumber(r[2]) == p[3] then
        ids[i] = p[2]
        local rl, pa = false, ''
        if not p[5] then
          rl, pa = pget('rl', i), pget('pa', i) or ''
        end
        if not rl or rl == '' then
          r[1], r[5], r[6], r[7], r[9] = 2, p[6], NOWS, leaseEnds, worker
          node_write(i, r)
          ev(2, i, p[3])
          start = result(0, started_info(i, pa))
        end
      end
    end
  end
  starts[#starts + 1] = start
end
if X then flush() end
return { claimed, starts }
