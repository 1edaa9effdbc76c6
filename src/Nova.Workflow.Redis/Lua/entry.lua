-- Starts one call of a library function: its keys and arguments, the time, and nothing carried over from the call before.
-- fused: whether its transitions also enqueue their jobs and ack the completed one (fused.lua).
local function begin(keys, args, fused)
  KEYS, ARGV = keys, args
  local t = redis.call('TIME')
  NOW = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  NOWS = tostring(NOW)
  if not IX or NUMBERS > NUMBER_LIMIT then
    NUMBERS = 0
    FIELDS = {}
    IX = setmetatable({}, { __index = function(c, i)
      local s = tostring(i)
      c[i], NUMBERS = s, NUMBERS + 1
      return s
    end })
    -- An absent value (nil, false) reads as nil, as tonumber() of it would be.
    NUM = setmetatable({}, { __index = function(c, s)
      if not s then return nil end
      local v = tonumber(s)
      if v then c[s], NUMBERS = v, NUMBERS + 1 end
      return v
    end })
    HASHTABLE_MARK = string.rep('~', 80)
  end
  X = nil
  if PLAN_VALUES > PLAN_LIMIT then
    PLANS, PLAN_VALUES = {}, 0
  end
  BATCH = false
  hist = {}
  swrites, swpos = {}, {}
  cancels = false
  FUSED = fused
  continued = EMPTY
  eventsOut = false
  FLAT = nil
  SHORT = false
  acks = {}
  OFFSETS = {}
  WAITING = {}
  DEFER = nil
  LEASED = nil
  CREATED = nil
  ROOTS = {}
end
