-- Accept an update: check its version against the ledger, record it, and schedule its
-- message, all in one step so that a version is never recorded without its message (which
-- would make every older message "superseded" by a state that never arrives) nor the other
-- way round. It also leaves one token in the wake list, which a worker's pump waiting for
-- work pops (BLPOP); the list never holds more than one. Run by Ledger.accept (ledger.py).
--
-- KEYS[1] order hash            KEYS[2] schedule sorted set
-- KEYS[3] update-id marker      KEYS[4] wake list
-- ARGV[1] version (0: assign the order's next one)
-- ARGV[2] due time (the schedule score)
-- ARGV[3] message text before the version    ARGV[4] message text after the version
-- ARGV[5] marker TTL in milliseconds
-- ARGV[6] '1' to accept a version equal to the newest (a replay), else '0'
-- Returns {status, version}: status is 'enqueued', 'duplicate' or 'superseded'.
local seen = redis.call('GET', KEYS[3])
if seen then return {'duplicate', tonumber(seen)} end
local enq = tonumber(redis.call('HGET', KEYS[1], 'enqueued') or '0')
local dlv = tonumber(redis.call('HGET', KEYS[1], 'delivered') or '0')
local newest = math.max(enq, dlv)
local v = tonumber(ARGV[1])
if v == 0 then
  v = newest + 1
elseif v < newest or (v == newest and ARGV[6] ~= '1') or v <= dlv then
  return {'superseded', newest}
end
redis.call('HSET', KEYS[1], 'enqueued', v)
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3] .. v .. ARGV[4])
redis.call('SET', KEYS[3], v, 'PX', ARGV[5])
redis.call('LPUSH', KEYS[4], 1)
redis.call('LTRIM', KEYS[4], 0, 0)
return {'enqueued', v}
