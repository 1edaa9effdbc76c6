-- Before a worker waits for a wake-up. KEYS: ready, delayed, leased, meta. Returns { how many jobs are ready, the first
-- delayed job's due time (ms) or false, the first lease to lapse (ms) or false, the server's time (ms) }.
-- With nothing ready the queue is marked idle ('idle' in meta): the next enqueue that makes a job ready clears the mark
-- and publishes one wake-up. Enqueues while no worker waits publish nothing, which spares Redis and every subscribed
-- process a message per job. Scripts run one at a time, so an enqueue either comes before this look (and the job is
-- counted here) or after it (and finds the mark).
local T = redis.call('TIME')
local now = tonumber(T[1]) * 1000 + math.floor(tonumber(T[2]) / 1000)
local ready = redis.call('ZCARD', KEYS[1])
if ready == 0 then redis.call('HSET', KEYS[4], 'idle', '1') end
local delayed = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
local leased = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
return { ready, delayed[2] or false, leased[2] or false, now }
