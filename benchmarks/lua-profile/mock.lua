-- Line profile of the Redis provider's function library (profile.sh runs it). Replays the library calls of a MONITOR
-- trace, in order and at their recorded times, against the library loaded in this Lua 5.1 with a mock of the Redis
-- commands it uses, and samples every PERIOD Lua VM instructions where the library is (a count hook; Redis has no debug
-- library). Time in the mock (the commands themselves, C code in Redis) is counted apart and left out of the shares.
-- What it measures is VM instructions, not time: a line that calls string.match or makes a long string costs more in
-- Redis than its share here. Usage: lua5.1 mock.lua LIBRARY MONITOR_OUTPUT [PERIOD]
cjson = require('cjson')
local LIB, TRACE, PERIOD = arg[1], arg[2], tonumber(arg[3] or '100')
local db = {}
local now = { 0, 0 }
-- A key's value (v: a hash's fields, a sorted set's scores, a list's items or a set's members); made when create is set.
local function entry(k, create)
  local e = db[k]
  if not e and create then
    e = { v = {} }
    db[k] = e
  end
  return e
end
local function zsorted(e)
  if not e.sorted then
    local a = {}
    for m, s in pairs(e.v) do a[#a + 1] = m end
    table.sort(a, function(x, y)
      local sx, sy = e.v[x], e.v[y]
      if sx ~= sy then return sx < sy end
      return x < y
    end)
    e.sorted = a
  end
  return e.sorted
end
local function parse_bound(b)
  if b == '-inf' then return -math.huge, false end
  if b == '+inf' then return math.huge, false end
  if string.sub(b, 1, 1) == '(' then return tonumber(string.sub(b, 2)), true end
  return tonumber(b), false
end
local C = {}
C.TIME = function() return { tostring(now[1]), tostring(now[2]) } end
C.HGET = function(k, f) local e = entry(k) if not e then return false end local v = e.v[f] if v == nil then return false end return v end
C.HMGET = function(k, ...)
  local e = entry(k)
  local out = {}
  local n = select('#', ...)
  for i = 1, n do
    local f = select(i, ...)
    local v = e and e.v[f]
    if v == nil then v = false end
    out[i] = v
  end
  return out
end
C.HSET = function(k, ...)
  local e = entry(k, true)
  local added = 0
  local n = select('#', ...)
  local a = { ... }
  for i = 1, n, 2 do
    local f, v = tostring(a[i]), tostring(a[i + 1])
    if e.v[f] == nil then added = added + 1 end
    e.v[f] = v
  end
  return added
end
C.HSETNX = function(k, f, v) local e = entry(k, true) if e.v[f] ~= nil then return 0 end e.v[f] = tostring(v) return 1 end
C.HDEL = function(k, ...)
  local e = entry(k)
  if not e then return 0 end
  local n = 0
  for _, f in ipairs({ ... }) do if e.v[f] ~= nil then e.v[f] = nil n = n + 1 end end
  if next(e.v) == nil then db[k] = nil end
  return n
end
C.HGETALL = function(k)
  local e = entry(k)
  local out = {}
  if e then for f, v in pairs(e.v) do out[#out + 1] = f out[#out + 1] = v end end
  return out
end
C.HINCRBY = function(k, f, by)
  local e = entry(k, true)
  local v = (tonumber(e.v[f]) or 0) + tonumber(by)
  e.v[f] = string.format('%d', v)
  return v
end
C.DEL = function(...) local n = 0 for _, k in ipairs({ ... }) do if db[k] then db[k] = nil n = n + 1 end end return n end
C.UNLINK = C.DEL
C.EXISTS = function(k) return db[k] and 1 or 0 end
C.PEXPIRE = function(k) return db[k] and 1 or 0 end
C.PERSIST = function(k) return 0 end
C.RPUSH = function(k, ...)
  local e = entry(k, true)
  for _, x in ipairs({ ... }) do e.v[#e.v + 1] = x end
  return #e.v
end
C.ZADD = function(k, ...)
  local e = entry(k, true)
  local a = { ... }
  local added = 0
  for i = 1, #a, 2 do
    local s, m = tonumber(a[i]), a[i + 1]
    if e.v[m] == nil then added = added + 1 end
    e.v[m] = s
  end
  e.sorted = nil
  return added
end
C.ZREM = function(k, ...)
  local e = entry(k)
  if not e then return 0 end
  local n = 0
  for _, m in ipairs({ ... }) do if e.v[m] ~= nil then e.v[m] = nil n = n + 1 end end
  e.sorted = nil
  if next(e.v) == nil then db[k] = nil end
  return n
end
C.ZCARD = function(k) local e = entry(k) if not e then return 0 end local n = 0 for _ in pairs(e.v) do n = n + 1 end return n end
C.ZRANGE = function(k, a, b, ws)
  local e = entry(k)
  if not e then return {} end
  local s = zsorted(e)
  a, b = tonumber(a), tonumber(b)
  if a < 0 then a = #s + a end
  if b < 0 then b = #s + b end
  local out = {}
  for i = a + 1, math.min(b + 1, #s) do
    out[#out + 1] = s[i]
    if ws then out[#out + 1] = tostring(e.v[s[i]]) end
  end
  return out
end
C.ZRANGEBYSCORE = function(k, lo, hi, ...)
  local e = entry(k)
  if not e then return {} end
  local opts = { ... }
  local ws, off, cnt = false, 0, math.huge
  local i = 1
  while i <= #opts do
    local o = string.upper(opts[i])
    if o == 'WITHSCORES' then ws = true i = i + 1
    elseif o == 'LIMIT' then off, cnt = tonumber(opts[i + 1]), tonumber(opts[i + 2]) i = i + 3
    else i = i + 1 end
  end
  local l, lx = parse_bound(tostring(lo))
  local h, hx = parse_bound(tostring(hi))
  local out, skipped, taken = {}, 0, 0
  for _, m in ipairs(zsorted(e)) do
    local s = e.v[m]
    if (s > l or (not lx and s == l)) and (s < h or (not hx and s == h)) then
      if skipped < off then skipped = skipped + 1
      elseif taken < cnt then
        taken = taken + 1
        out[#out + 1] = m
        if ws then out[#out + 1] = tostring(s) end
      end
    end
  end
  return out
end
C.ZREMRANGEBYSCORE = function() return 0 end
C.SADD = function(k, ...) local e = entry(k, true) local n = 0 for _, m in ipairs({ ... }) do if not e.v[m] then e.v[m] = true n = n + 1 end end return n end
C.SREM = function(k, ...) local e = db[k] if not e then return 0 end local n = 0 for _, m in ipairs({ ... }) do if e.v[m] then e.v[m] = nil n = n + 1 end end return n end
C.PUBLISH = function() return 0 end
C.GET = function(k) local e = db[k] return e and e.v or false end
C.SET = function(k, v) db[k] = { v = v } return { ok = 'OK' } end

local funcs = {}
redis = {}
function redis.call(cmd, ...)
  local f = C[string.upper(cmd)]
  if not f then error('mock: no ' .. cmd) end
  return f(...)
end
function redis.pcall(cmd, ...)
  local ok, r = pcall(redis.call, cmd, ...)
  if ok then return r end
  return { err = tostring(r) }
end
function redis.register_function(t, cb)
  if type(t) == 'table' then funcs[t.function_name] = t.callback else funcs[t] = cb end
end
function redis.error_reply(m) return { err = m } end
function redis.status_reply(m) return { ok = m } end
function redis.setresp() end
redis.log = function() end
redis.LOG_WARNING = 3

-- The library, its first line (#!lua) blanked so line numbers hold.
local f = io.open(LIB)
local src = f:read('*a')
f:close()
src = string.gsub(src, '^#![^\n]*', '', 1)
local chunk = assert(loadstring(src, '=lib'))
chunk()

-- MONITOR lines: `<seconds.micros> [<db> <client>] "CMD" "arg" ...`, with \", \\, \n, \r, \t and \xHH escapes; the
-- commands scripts ran (client "lua") are left out: the replay runs them again.
local ESC = { n = '\n', r = '\r', t = '\t', a = '\a', b = '\b', ['"'] = '"', ['\\'] = '\\' }
local function monitor_line(line)
  local ts, client, rest = string.match(line, '^(%d+%.%d+) %[%d+ ([^%]]+)%] (.*)$')
  if not ts or client == 'lua' then return nil end
  local out = { tonumber(ts) }
  local i, n = 1, #rest
  while i <= n do
    if string.sub(rest, i, i) == '"' then
      local buf = {}
      i = i + 1
      while i <= n do
        local j = string.find(rest, '[\\"]', i)
        if not j then break end
        buf[#buf + 1] = string.sub(rest, i, j - 1)
        i = j
        if string.sub(rest, j, j) == '"' then break end
        local d = string.sub(rest, j + 1, j + 1)
        if d == 'x' then
          buf[#buf + 1] = string.char(tonumber(string.sub(rest, j + 2, j + 3), 16))
          i = j + 4
        else
          buf[#buf + 1] = ESC[d] or d
          i = j + 2
        end
      end
      out[#out + 1] = table.concat(buf)
    end
    i = i + 1
  end
  return out
end
local lines = {}
for line in io.lines(TRACE) do
  local l = monitor_line(line)
  if l and #l > 1 then lines[#lines + 1] = l end
end
local samples, fsamples, total, mocked = {}, {}, 0, 0
local function hook()
  local info = debug.getinfo(2, 'Sl')
  total = total + 1
  if not info or info.source ~= '=lib' then
    mocked = mocked + 1
    return
  end
  samples[info.currentline] = (samples[info.currentline] or 0) + 1
  local fi = debug.getinfo(2, 'n')
  local key = (fi and fi.name or '?') .. '@' .. info.linedefined
  fsamples[key] = (fsamples[key] or 0) + 1
end
local calls, errors = 0, 0
local clock = os.clock()
for _, l in ipairs(lines) do
  local ts = l[1]
  now[1] = math.floor(ts)
  now[2] = math.floor((ts - now[1]) * 1e6)
  local cmd = string.upper(l[2])
  if cmd == 'FCALL' then
    local name = l[3]
    -- The trace's calls name the functions of the library it recorded, which is the one loaded here.
    local fn = funcs[name] or function() error('no function ' .. name .. ' in the library') end
    local nk = tonumber(l[4])
    local keys, args = {}, {}
    for i = 1, nk do keys[i] = l[4 + i] end
    for i = 5 + nk, #l do args[#args + 1] = l[i] end
    debug.sethook(hook, '', PERIOD)
    local ok, err = pcall(fn, keys, args)
    debug.sethook()
    calls = calls + 1
    if not ok then errors = errors + 1 if errors < 5 then print('error', name, err) end end
  elseif C[cmd] and cmd ~= 'TIME' then
    local a = {}
    for i = 3, #l do a[#a + 1] = l[i] end
    pcall(C[cmd], unpack(a))
  end
end
print(string.format('calls %d errors %d samples %d (mock %d, %.0f%%) cpu %.2fs', calls, errors, total, mocked, mocked * 100 / total, os.clock() - clock))
-- Source lines of the library for the report.
local srcl = {}
for s in string.gmatch(src .. '\n', '([^\n]*)\n') do srcl[#srcl + 1] = s end
local lib = total - mocked
local fl = {}
for k, v in pairs(fsamples) do fl[#fl + 1] = { k, v } end
table.sort(fl, function(a, b) return a[2] > b[2] end)
print('-- functions (self samples, % of library samples)')
-- Each with the line that defines it (a local called through a table or pcall has no name).
for i = 1, math.min(25, #fl) do
  local at = tonumber(string.match(fl[i][1], '@(%d+)$'))
  print(string.format('%6.1f%%  %-24s %s', fl[i][2] * 100 / lib, fl[i][1], string.sub(srcl[at] or '', 1, 80)))
end
local ll = {}
for k, v in pairs(samples) do ll[#ll + 1] = { k, v } end
table.sort(ll, function(a, b) return a[2] > b[2] end)
print('-- lines')
for i = 1, math.min(tonumber(os.getenv("LINES") or "40"), #ll) do print(string.format('%6.1f%%  %5d  %s', ll[i][2] * 100 / lib, ll[i][1], string.sub(srcl[ll[i][1]] or '', 1, 110))) end
