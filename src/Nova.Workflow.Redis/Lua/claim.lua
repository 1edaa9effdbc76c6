-- Claim and start (one server): leases up to ARGV[1] jobs of the queue whose keys are KEYS[1..6] and starts the nodes that
-- plainly can start (queued under the job's attempt, execution running, no rate limit), each under its job's lease token.
-- ARGV: max, leaseMs, fairness interval, key prefix, worker id, then one fresh lease token per job.
-- Returns { the jobs as dequeue returns them, per job its start as start.lua returns it or false when it was not started }.
local claimed = dequeue(NOW, 1, tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), 6)
local prefix, worker, leaseMs = ARGV[4], ARGV[5], tonumber(ARGV[2])
local leaseEnds = tostring(NOW + leaseMs)
local starts = {}
-- The keys of the last job's execution: a claim often takes many jobs of one.
local lastExec, xk, sk, hk
for j = 1, #claimed, 5 do
  local start = false
  local ok, p = pcall(cjson.decode, claimed[j])
  -- Only a payload the worker can read is started (JobCodec.TryParse needs a node and a queue).
  if ok and type(p) == 'table' and type(p.n) == 'string' and p.n ~= '' and type(p.q) == 'string' and p.q ~= '' then
    -- A job id is "<execution id (32 hex digits)>:<node>:<attempt>".
    local exec = string.sub(claimed[j + 4], 1, 32)
    if exec ~= lastExec then
      local tag = prefix .. ':{' .. exec .. '}'
      lastExec, xk, sk, hk = exec, tag .. ':x', tag .. ':s', tag .. ':h'
    end
    bind(xk, sk, hk, true)
    if execStatus == 1 then
      -- The node's index and (s = 1) that it has no rate limit and no parents, when the script that enqueued the job
      -- wrote them (fused.lua); else read from the plan.
      local i = tonumber(p.i) or nidx(p.n)
      local r = i and node_read(i)
      if r and r[1] == 1 and tonumber(r[2]) == tonumber(p.a) then
        ids[i] = p.n
        local rl, pa = false, ''
        if p.s ~= 1 then
          rl, pa = pget('rl', i), pget('pa', i) or ''
        end
        if not rl or rl == '' then
          r[1], r[5], r[6], r[7], r[9] = 2, claimed[j + 1], NOWS, leaseEnds, worker
          node_write(i, r)
          ev(2, i, tonumber(p.a))
          start = result(0, started_info(i, pa))
        end
      end
    end
  end
  starts[#starts + 1] = start
end
return { claimed, starts }
